#!/usr/bin/env bash
# The main job: a real migration on generated data, services brought up for you.
#
#   1. starts Kafka and both Elasticsearch clusters (dev/services.sh up);
#   2. plays a live legacy system (cutover-demo): a legacy 7.17 index with a dynamic tag map and
#      a command topic, history first;
#   3. simulates retention: the oldest half of the topic is deleted (kafka DeleteRecords), so
#      replay alone cannot rebuild history;
#   4. creates the target index (backfill create-index), starts the indexer from offset zero in
#      its own group, and runs the backfill copy (the target in bulk-load settings), while live
#      traffic keeps arriving;
#   5. backfill finalize: the legacy index's refresh_interval and replicas back on the target
#      (the indexer's gate stays closed until then);
#   6. waits for the indexer's readiness gate (lag 0), stops it with SIGTERM, and proves the
#      result with backfill verify (document by document, plus query parity).
#
# Sizes: DOCS, HISTORY, LIVE, RATE (environment), e.g. DOCS=100000 HISTORY=300000 dev/migrate.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
dev/install-deps.sh
dev/services.sh up
eval "$(dev/services.sh env)"

echo "== building release binaries"
cargo build --release --locked --workspace --bins -q
BIN=$ROOT/target/release
RUN=$(date +%s)
LEGACY_INDEX=items-$RUN
TARGET_INDEX=items-v2-$RUN
TOPIC=commands-$RUN
GROUP=cutover-indexer-$RUN
WORK=$ROOT/.dev-state/migrate-$RUN
mkdir -p "$WORK"
DOCS=${DOCS:-20000} HISTORY=${HISTORY:-60000} LIVE=${LIVE:-10000} RATE=${RATE:-500}

echo "== legacy system: $LEGACY_INDEX on $CUTOVER_LEGACY_URL, topic $TOPIC ($HISTORY commands of history, then $LIVE live at $RATE/s)"
"$BIN/cutover-demo" --index "$LEGACY_INDEX" --topic "$TOPIC" --docs "$DOCS" --history "$HISTORY" \
  --live "$LIVE" --rate "$RATE" --history-done-file "$WORK/history-done" >"$WORK/legacy.log" 2>&1 &
LEGACY_PID=$!
trap 'kill $LEGACY_PID 2>/dev/null || true; [ -n "${INDEXER_PID:-}" ] && kill $INDEXER_PID 2>/dev/null || true' EXIT
until [ -f "$WORK/history-done" ]; do
  kill -0 $LEGACY_PID 2>/dev/null || { cat "$WORK/legacy.log"; echo "legacy system failed"; exit 1; }
  sleep 1
done
cat "$WORK/legacy.log"

echo "== retention: deleting the oldest half of every partition of $TOPIC"
offsets=$(dev/services.sh kafka-tool org.apache.kafka.tools.GetOffsetShell --bootstrap-server "$CUTOVER_KAFKA" --topic "$TOPIC" --time -1)
python3 - "$TOPIC" "$WORK/delete-records.json" <<PY
import json, sys
topic, out = sys.argv[1], sys.argv[2]
parts = []
for line in """$offsets""".split():
    t, p, end = line.rsplit(":", 2)
    parts.append({"topic": t, "partition": int(p), "offset": int(end) // 2})
json.dump({"version": 1, "partitions": parts}, open(out, "w"))
PY
dev/services.sh kafka-tool org.apache.kafka.tools.DeleteRecordsCommand --bootstrap-server "$CUTOVER_KAFKA" \
  --offset-json-file "$WORK/delete-records.json" | sed 's/^/   /'

COMMON=(--legacy-url "$CUTOVER_LEGACY_URL" --target-url "$CUTOVER_TARGET_URL")
echo "== backfill create-index $TARGET_INDEX"
"$BIN/backfill" create-index "${COMMON[@]}" --source-index "$LEGACY_INDEX" --target-index "$TARGET_INDEX"

echo "== indexer: replaying $TOPIC from the oldest retained offset (group $GROUP)"
"$BIN/indexer" "${COMMON[@]}" --brokers "$CUTOVER_KAFKA" --topic "$TOPIC" --group "$GROUP" \
  --version-source field:version --legacy-version _version --merge-absent ignore --index-map "$LEGACY_INDEX=$TARGET_INDEX" \
  --metrics-addr 127.0.0.1:9464 >"$WORK/indexer.log" 2>&1 &
INDEXER_PID=$!

echo "== backfill copy (while live traffic and replay run)"
"$BIN/backfill" copy "${COMMON[@]}" --source-index "$LEGACY_INDEX" --target-index "$TARGET_INDEX" \
  --legacy-version _version --brokers "$CUTOVER_KAFKA" --job "$LEGACY_INDEX-$RUN" --failures-file "$WORK/failures.jsonl" \
  --metrics-addr 127.0.0.1:9465 --summary-json "$WORK/copy-summary.json"

echo "== backfill finalize (restores the settings the copy's bulk load turned off; required before reads switch)"
"$BIN/backfill" finalize "${COMMON[@]}" --source-index "$LEGACY_INDEX" --target-index "$TARGET_INDEX" \
  --report-json "$WORK/finalize.json"

echo "== waiting for live traffic to end and the indexer to catch up"
wait $LEGACY_PID
tail -n 1 "$WORK/legacy.log"
for _ in $(seq 1 300); do
  if curl -fsS 127.0.0.1:9464/ready >"$WORK/ready.json" 2>/dev/null; then break; fi
  sleep 1
done
echo "   indexer ready: $(cat "$WORK/ready.json")"
grep -E '^cutover_indexer_records_total' <(curl -fsS 127.0.0.1:9464/metrics) | sed 's/^/   /' || true
kill -TERM $INDEXER_PID; wait $INDEXER_PID; INDEXER_PID=

echo "== backfill verify (document by document, then query parity)"
"$BIN/backfill" verify "${COMMON[@]}" --source-index "$LEGACY_INDEX" --target-index "$TARGET_INDEX" \
  --legacy-version _version --parity --report-json "$WORK/verify.json"
echo "== migrated $LEGACY_INDEX -> $TARGET_INDEX: converged. Reports in $WORK"
