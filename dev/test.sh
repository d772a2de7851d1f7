#!/usr/bin/env bash
# Runs every test of cutover against real services: brings Kafka and both Elasticsearch
# clusters up if needed (dev/services.sh up is idempotent), then runs the whole workspace's
# tests. This is the README's test command and exactly what .ci/run calls.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
dev/install-deps.sh
# One style, checked first: rustfmt.toml's format and clippy with warnings as errors.
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
dev/services.sh up
eval "$(dev/services.sh env)"
export RUST_BACKTRACE=1
# Two cores: run the slow end-to-end binaries with limited parallelism so timeouts stay honest.
# End-to-end tests run the real binaries (kill -9, SIGTERM): build them first.
cargo build --workspace --bins --locked
# The version-pair tests (tests/version_pairs.rs) need Elasticsearch 6.8 and OpenSearch 2.x:
# those two servers are started for that binary only, in its own step, and stopped after.
# A test that hangs (a product waiting out a sick cluster, as it should, with nobody to heal it)
# must fail the run with its name printed, not run into CI's time limit: each step has a
# deadline far above its usual time (`TEST_DEADLINE`, default 40m; the pairs step 15m).
# Compile first, outside the deadline.
cargo test --workspace --locked --no-run
status=0
timeout --kill-after=30s "${TEST_DEADLINE:-40m}" \
  cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-4}" --skip version_pair_ || status=$?
[ "$status" = 124 ] && echo "dev/test.sh: the suite ran past ${TEST_DEADLINE:-40m}: a test hangs (see 'has been running for over 60 seconds' above)" >&2
trap 'dev/services.sh down opensearch legacy6' EXIT
dev/services.sh up legacy6 opensearch
timeout --kill-after=30s 15m cargo test --locked --test version_pairs --no-fail-fast -- --test-threads=2 || status=$?
exit "$status"
