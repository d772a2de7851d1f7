#!/usr/bin/env bash
# Runs every test of cutover against real services: brings Kafka and both Elasticsearch
# clusters up if needed (dev/services.sh up is idempotent), then runs the whole workspace's
# tests. This is the README's test command and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dev/install-deps.sh
dev/services.sh up
eval "$(dev/services.sh env)"
export RUST_BACKTRACE=1
# Two cores: run the slow end-to-end binaries with limited parallelism so timeouts stay honest.
# End-to-end tests run the real binaries (kill -9, SIGTERM): build them first.
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-4}"
