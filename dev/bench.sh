#!/usr/bin/env bash
# Benchmarks, side by side in one run, written to BENCHMARKS.md at the repository root.
#
#   dev/bench.sh
#
# 1. services up (idempotent), release binaries, the Python venv (.dev-state/bench-venv,
#    pinned by dev/bench/requirements.txt);
# 2. data: cutover-demo writes a legacy 7.17 index (dynamic tag map) and its command topic;
#    untimed, the legacy documents are also dumped as target-form bulk bodies (for the ceiling)
#    and as upsert envelopes produced to a fresh topic (for the replay benchmark);
# 3. contenders, one at a time (never in parallel: 2 cores), each into a fresh target index made
#    by `backfill create-index`, each followed by refresh + _count == legacy count (else fail):
#      python      dev/bench/python_backfill.py: the seeds' scan + parallel_bulk
#      backfill-*  cutover's `backfill copy`, defaults and the tuned flags of BACKFILL_TUNED
#      ceiling-N   dev/bench/bulk_ceiling.py: pre-encoded bodies POSTed on N connections
#      indexer     cutover's `indexer` replaying the upsert topic from zero, and Kafka's own
#                  ConsumerPerformance on the same topic
# 4. dev/bench/report.py writes BENCHMARKS.md (figures, ratios, machine, reproduce command).
#
# Environment: DOCS (distinct ids, default 150000) and HISTORY (commands, default 450000) size
# the data (the defaults leave ~100k live documents); BACKFILL_TUNED (default
# "--slices 4 --bulk-concurrency 8"; empty to skip); CEILING_CONNECTIONS (default "2 4 8");
# REPLAY=0 skips the indexer part; KEEP=1 keeps the indices and topics it created.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
DOCS=${DOCS:-150000} HISTORY=${HISTORY:-450000} TAG_KEYS=${TAG_KEYS:-600}
BACKFILL_TUNED=${BACKFILL_TUNED---slices 4 --bulk-concurrency 8}
CEILING_CONNECTIONS=${CEILING_CONNECTIONS:-2 4 8}
REPLAY=${REPLAY:-1} KEEP=${KEEP:-0} IDLE_SECS=1

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: FAILED: %s\n' "$*" >&2; exit 1; }

dev/services.sh up >&2
eval "$(dev/services.sh env)"
L=$CUTOVER_LEGACY_URL T=$CUTOVER_TARGET_URL K=$CUTOVER_KAFKA

say "building release binaries"
cargo build --release --locked --workspace --bins -q
BIN=$ROOT/target/release

VENV=$ROOT/.dev-state/bench-venv
if ! "$VENV/bin/python" -c 'import elasticsearch, elasticsearch9' 2>/dev/null; then
  say "creating $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r dev/bench/requirements.txt
fi
PY=$VENV/bin/python

RUN=$(date +%s)
WORK=$ROOT/.dev-state/bench-$RUN
mkdir -p "$WORK/results"
LEGACY=bench-legacy-$RUN TOPIC=bench-commands-$RUN UPSERTS=bench-upserts-$RUN
CREATED_INDICES=() CREATED_TOPICS=("$TOPIC")
cleanup() {
  [ "$KEEP" = 1 ] && return
  for i in "${CREATED_INDICES[@]}"; do curl -fsS -XDELETE "$T/$i" >/dev/null 2>&1 || true; done
  curl -fsS -XDELETE "$L/$LEGACY" >/dev/null 2>&1 || true
  for t in "${CREATED_TOPICS[@]}"; do
    dev/services.sh kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$K" --delete --topic "$t" >/dev/null 2>&1 || true
  done
}
trap cleanup EXIT
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)

say "data: cutover-demo --docs $DOCS --history $HISTORY --live 0 -> $LEGACY, $TOPIC"
"$BIN/cutover-demo" --index "$LEGACY" --topic "$TOPIC" --docs "$DOCS" --history "$HISTORY" --live 0 \
  --tag-keys "$TAG_KEYS" >"$WORK/demo.log" 2>&1 || { cat "$WORK/demo.log"; die "cutover-demo"; }
curl -fsS -XPOST "$L/$LEGACY/_refresh" >/dev/null
N=$(curl -fsS "$L/$LEGACY/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
[ "$N" -gt 0 ] || die "empty legacy index"
say "legacy index: $N documents"

say "untimed: target-form bulk bodies (ceiling) and upsert envelopes (replay)"
DUMP=$("$PY" dev/bench/python_backfill.py dump "$L" "$LEGACY" "$WORK/bulk")
"$PY" dev/bench/python_backfill.py upserts "$L" "$LEGACY" "$WORK/upserts.tsv" >/dev/null

count_check() { # INDEX NAME: refresh, compare _count with N, then drop the index (frees the node for the next contender)
  curl -fsS -XPOST "$T/$1/_refresh" >/dev/null
  local c; c=$(curl -fsS "$T/$1/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')
  [ "$c" = "$N" ] || die "$2 wrote $c documents into $1, expected $N"
  say "$2: count check ok ($c)"
  [ "$KEEP" = 1 ] || curl -fsS -XDELETE "$T/$1" >/dev/null
}
fresh_target() { # INDEX
  CREATED_INDICES+=("$1")
  "$BIN/backfill" create-index --legacy-url "$L" --target-url "$T" --source-index "$LEGACY" --target-index "$1" \
    >"$WORK/create-$1.log" 2>&1 || { cat "$WORK/create-$1.log" >&2; die "create-index $1"; }
}
PIDS=.dev-state/legacy/pid,.dev-state/target/pid
measure() { python3 dev/bench/measure.py "$WORK/results/$1.json" "$1" "$2" -- "${@:3}"; }

# --- contenders, one at a time -------------------------------------------------------------
say "contender: python scan + parallel_bulk"
fresh_target "bench-py-$RUN"
measure python "$PIDS" "$PY" dev/bench/python_backfill.py copy "$L" "$T" "$LEGACY" "bench-py-$RUN" >&2 || die "python copy"
count_check "bench-py-$RUN" python

declare -A FLAGS=([backfill-default]="")
[ -n "$BACKFILL_TUNED" ] && FLAGS[backfill-tuned]=$BACKFILL_TUNED
for name in backfill-default backfill-tuned; do
  [ -n "${FLAGS[$name]+x}" ] || continue
  say "contender: cutover backfill copy ${FLAGS[$name]:-(defaults)}"
  idx=bench-$name-$RUN
  fresh_target "$idx"
  # shellcheck disable=SC2086
  measure "$name" "$PIDS" "$BIN/backfill" copy --legacy-url "$L" --target-url "$T" --source-index "$LEGACY" \
    --target-index "$idx" --legacy-version _version --checkpoint-dir "$WORK/ckpt-$name" \
    --failures-file "$WORK/failures-$name.jsonl" --progress off --no-metrics --summary-json "$WORK/summary-$name.json" \
    ${FLAGS[$name]} >&2 || die "$name"
  count_check "$idx" "$name"
done

for c in $CEILING_CONNECTIONS; do
  say "contender: Elasticsearch bulk ceiling, $c connections"
  idx=bench-ceiling-$c-$RUN
  fresh_target "$idx"
  measure "ceiling-$c" "$PIDS" python3 dev/bench/bulk_ceiling.py "$T" "$idx" "$WORK/bulk" "$c" >&2 || die "ceiling $c"
  count_check "$idx" "ceiling-$c"
done

PERF=null
if [ "$REPLAY" = 1 ]; then
  say "untimed: producing $N upsert commands to $UPSERTS"
  CREATED_TOPICS+=("$UPSERTS")
  dev/services.sh kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$K" --create --topic "$UPSERTS" \
    --partitions 3 >/dev/null
  dev/services.sh kafka-tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$K" --topic "$UPSERTS" \
    --reader-property parse.key=true --reader-property key.separator=$'\t' \
    --command-property linger.ms=20 --command-property batch.size=262144 <"$WORK/upserts.tsv" >/dev/null
  say "contender: cutover indexer replay (from zero, --exit-when-idle-secs $IDLE_SECS)"
  idx=bench-indexer-$RUN
  fresh_target "$idx"
  measure indexer "$PIDS,.dev-state/kafka/pid" "$BIN/indexer" --brokers "$K" --legacy-url "$L" --target-url "$T" \
    --topic "$UPSERTS" --group "bench-indexer-$RUN" --version-source field:version --legacy-version _version --merge-absent ignore \
    --index-map "$LEGACY=$idx" --exit-when-idle-secs "$IDLE_SECS" --metrics-addr 127.0.0.1:0 \
    >"$WORK/indexer.log" 2>&1 || { tail "$WORK/indexer.log"; die "indexer"; }
  count_check "$idx" indexer
  say "ceiling: Kafka ConsumerPerformance on $UPSERTS"
  dev/services.sh kafka-tool org.apache.kafka.tools.ConsumerPerformance --bootstrap-server "$K" --topic "$UPSERTS" \
    --num-records "$N" --group "bench-perf-$RUN" >"$WORK/consumer-perf.txt" 2>&1 || die "ConsumerPerformance"
  PERF=$(python3 - "$WORK/consumer-perf.txt" "$N" <<'PY'
import json, sys
lines = [l for l in open(sys.argv[1]) if l[:1].isdigit()]
f = [x.strip() for x in lines[-1].split(",")]
n = int(f[4])
assert n >= int(sys.argv[2]), "ConsumerPerformance consumed %d" % n
ms = (float(f[6]) + float(f[7])) / 1000  # rebalance + fetch time
print(json.dumps({"records": n, "nmsg_sec": float(f[5]), "fetch_nmsg_sec": float(f[9]), "elapsed_s": ms}))
PY
)
fi

# --- report --------------------------------------------------------------------------------
CMD=dev/bench.sh
for v in DOCS HISTORY TAG_KEYS BACKFILL_TUNED CEILING_CONNECTIONS REPLAY; do
  case "$v=${!v}" in DOCS=150000|HISTORY=450000|TAG_KEYS=600|"BACKFILL_TUNED=--slices 4 --bulk-concurrency 8"|"CEILING_CONNECTIONS=2 4 8"|REPLAY=1) ;;
    *) CMD="$v='${!v}' $CMD" ;; esac
done
python3 - "$WORK/meta.json" <<PY
import json, os, sys
def kv(path, key):
    for line in open(path):
        if line.startswith(key): return line.split(":", 1)[1].strip()
dump = json.loads('''$DUMP''')
tuned = '''$BACKFILL_TUNED'''
meta = {
  "run": "$RUN", "date": "$(date -u +%Y-%m-%dT%H:%MZ)", "docs": $N, "demo_docs": $DOCS, "demo_history": $HISTORY,
  "tag_keys": $TAG_KEYS, "nproc": $(nproc), "cpu_model": kv("/proc/cpuinfo", "model name") or "unknown",
  "mem_gib": round(int(kv("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1), "loadavg": "$LOADAVG",
  "legacy_version": "$(curl -fsS "$L" | python3 -c 'import json,sys; print(json.load(sys.stdin)["version"]["number"])')",
  "target_version": "$(curl -fsS "$T/_nodes/_local?filter_path=nodes.*.version" | python3 -c 'import json,sys; print(list(json.load(sys.stdin)["nodes"].values())[0]["version"])')",
  "kafka_version": "$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' dev/kafka/pom.xml)",
  "legacy_shards": $(curl -fsS "$L/$LEGACY/_settings" | python3 -c 'import json,sys; print(list(json.load(sys.stdin).values())[0]["settings"]["index"]["number_of_shards"])'),
  "legacy_store_bytes": $(curl -fsS "$L/_cat/indices/$LEGACY?h=pri.store.size&bytes=b" | tr -d '[:space:]'),
  "target_ndjson_bytes": dump["bytes"], "target_ndjson_files": dump["files"],
  "upsert_topic_bytes": os.path.getsize("$WORK/upserts.tsv"),
  "backfill_flags": {"backfill-default": "", "backfill-tuned": tuned},
  "ceiling_connections": [int(c) for c in "$CEILING_CONNECTIONS".split()],
  "consumer_perf": json.loads('''$PERF'''), "indexer_idle_secs": $IDLE_SECS,
  "command": '''$CMD''',
  "work_rel": os.path.relpath("$WORK", "$ROOT"),
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
python3 dev/bench/report.py "$WORK" BENCHMARKS.md
say "wrote BENCHMARKS.md (raw results in ${WORK#$ROOT/})"
sed -n '/^## Results/,/^## What each/p' BENCHMARKS.md | sed '$d'
