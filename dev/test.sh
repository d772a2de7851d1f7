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
# The version-pair tests (tests/version_pairs.rs) need older and newer servers than the rest:
# each group of pairs runs in a step of its own, with only the servers it needs started for it
# and stopped after, in turn (two cores: never all of them at once).
# A test that hangs (a product waiting out a sick cluster, as it should, with nobody to heal it)
# must fail the run with its name printed, not run into CI's time limit: each step has a
# deadline far above its usual time (`TEST_DEADLINE`, default 40m; the pairs step 15m).
# Compile first, outside the deadline.
cargo test --workspace --locked --no-run
status=0
timeout --kill-after=30s "${TEST_DEADLINE:-40m}" \
  cargo test --workspace --locked --no-fail-fast -- --test-threads="${TEST_THREADS:-4}" --skip version_pair_ || status=$?
[ "$status" = 124 ] && echo "dev/test.sh: the suite ran past ${TEST_DEADLINE:-40m}: a test hangs (see 'has been running for over 60 seconds' above)" >&2
# pair_step "SERVERS" FILTER...: starts SERVERS, runs the version-pair tests matching a FILTER,
# stops SERVERS.
pair_step() {
  local servers=$1; shift
  # Expanded now on purpose: the trap stops this step's servers.
  # shellcheck disable=SC2086,SC2064
  trap "dev/services.sh down $servers" EXIT
  # shellcheck disable=SC2086
  dev/services.sh up $servers
  local started=$SECONDS
  timeout --kill-after=30s 15m cargo test --locked --test version_pairs --no-fail-fast -- --test-threads=2 "$@" || status=$?
  echo "dev/test.sh: version pairs on [$servers] took $((SECONDS - started))s" >&2
  # shellcheck disable=SC2086
  dev/services.sh down $servers
  trap - EXIT
}
steps=(
  "legacy6 opensearch|version_pair_es68_ version_pair_es717_to_opensearch2 version_pair_opensearch2_"
  "legacy5 target8|version_pair_es56_ version_pair_es717_to_es819"
  "opensearch3|version_pair_es717_to_opensearch3"
  "legacy2 target6|version_pair_es24_"
)
# Every version-pair test must fall in a step: one that matches no filter would never run.
all_filters=$(for s in "${steps[@]}"; do echo "${s#*|}"; done | tr '\n' ' ')
for t in $(cargo test --locked --test version_pairs -- --list 2>/dev/null | sed -n 's/: test$//p'); do
  matched=
  for f in $all_filters; do case $t in *"$f"*) matched=1 ;; esac; done
  [ -n "$matched" ] || { echo "dev/test.sh: $t is in no version-pair step: add it to one" >&2; status=1; }
done
for s in "${steps[@]}"; do
  # shellcheck disable=SC2086
  pair_step "${s%%|*}" ${s#*|}
done
exit "$status"
