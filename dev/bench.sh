#!/usr/bin/env bash
# Benchmarks, side by side in one run, written to BENCHMARKS.md at the repository root.
#
#   dev/bench.sh
#
# 1. services up (idempotent), release binaries, the Python venv ($CUTOVER_STATE/bench-venv,
#    pinned by dev/bench/requirements.txt, recreated when an import fails);
# 2. data: cutover-demo's legacy indexer writes a legacy 7.17 index (its dynamic tag map made
#    as the legacy service made it; --no-topic: its command topic, which nothing here reads, is
#    not produced); untimed, one scan of the legacy index dumps the documents as target-form
#    bulk bodies (for the ceiling) and as upsert envelopes, produced to a fresh topic (for the
#    replays);
# 3. ROUNDS rounds (default 3), interleaved: round 1 of every contender, then round 2, ...; each
#    writing contender into a fresh target index made by `backfill create-index`, each followed
#    by refresh + _count == legacy count (else the run fails):
#      scan-*       dev/bench/scan_cost.py: the legacy's full scan alone, read and discard, in
#                   each form cutover can use on 7.17 (PIT on _shard_doc, PIT on
#                   [_seq_no, _shard_doc], sliced scroll on _doc), each with pages of 1000 and
#                   of 2000 (FORM:SIZE): the legacy CPU of a copy's read
#      python       dev/bench/python_backfill.py: the seeds' scan + parallel_bulk
#      backfill-*   cutover's `backfill copy`, defaults (and the flags of BACKFILL_TUNED if set);
#                   `backfill finalize` afterwards when the binary has it, timed on its own
#      verify       cutover's `backfill verify` (defaults) of the target the default backfill
#                   just wrote (so both clusters hold the same documents): its JSON report must
#                   say converged, with every document scanned on both sides (else the run fails)
#      tscan-*      dev/bench/scan_cost.py on that same target index (before it is dropped), in
#                   the forms of TARGET_SCAN_FORMS: the target's CPU of a full read, which with
#                   the legacy's cheapest gives the two-scan limit verify is measured against
#      ceiling-N    dev/bench/bulk_ceiling.py: pre-encoded bodies POSTed on N connections
#                   (N:DOCS: bodies of DOCS documents, default 1000)
#      indexer      cutover's `indexer` replaying the upsert topic from zero: whole process (wall
#                   minus the idle wait) and its working time (first record received to last
#                   completed, from its summary at the clean stop: timed as the ceiling is)
#      pyreplay     dev/bench/python_replay.py: confluent-kafka + parallel_bulk on the same topic
#    then, once, Kafka's own ConsumerPerformance on the topic (context);
# 4. BIG phase (BIG=1): a second legacy index of >= 1M documents, `backfill copy` (defaults),
#    `backfill verify` of that copy (converged, as above) and `indexer` once each, for their
#    peak RSS at that size (and their rates, as context);
# 5. dev/bench/report.py writes BENCHMARKS.md (medians with min-max, the copy limit and the
#    two-scan limit and how they are derived, the ratios, peak RSS at both sizes, machine,
#    per-phase timings, reproduce command). Each phase's wall time is printed at the end.
#
# Environment: DOCS (distinct ids, default 1450000) and HISTORY (commands, default 725000) size
# the data: the defaults leave ~310k live legacy documents (live ~= DOCS * 0.77 *
# (1 - exp(-0.65 * HISTORY / DOCS)) for cutover-demo's mix of 50% upserts, 35% merges, 15%
# deletes; generation costs about one legacy write per command, and HISTORY = DOCS / 2 needs
# ~2.3 commands per live document, against ~2.7 at HISTORY = DOCS, while nearly a quarter of
# the documents touched still get more than one command); BIG=0 skips the big phase, BIG_MIN
# (default 1000000) is its least size (the default index copied ceil(BIG_MIN / N) times);
# ROUNDS (default 3);
# BACKFILL_TUNED (flags of a second backfill contender, default empty: none; the tuned variant
# of earlier runs was no faster than the defaults); CEILING_CONNECTIONS (default "2 4 2:2000");
# SCAN_FORMS (default: each of pit-shard-doc pit-seqno scroll-doc, plain (pages of 1000) and
# with :2000); TARGET_SCAN_FORMS (default "pit-shard-doc:2000 scroll-doc:2000", the forms that
# were cheapest on the legacy; the cheapest of them on the target is used); REPLAY=0 skips the indexer and
# Python replays; KEEP=1 keeps the indices and topics it created.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$(pwd)
STATE=${CUTOVER_STATE:-$ROOT/.dev-state}
DOCS=${DOCS:-1450000} HISTORY=${HISTORY:-725000} TAG_KEYS=${TAG_KEYS:-600}
BIG=${BIG:-1} BIG_MIN=${BIG_MIN:-1000000}
ROUNDS=${ROUNDS:-3}
BACKFILL_TUNED=${BACKFILL_TUNED:-}
CEILING_CONNECTIONS=${CEILING_CONNECTIONS:-2 4 2:2000}
SCAN_FORMS=${SCAN_FORMS:-pit-shard-doc pit-seqno scroll-doc pit-shard-doc:2000 pit-seqno:2000 scroll-doc:2000}
TARGET_SCAN_FORMS=${TARGET_SCAN_FORMS:-pit-shard-doc:2000 scroll-doc:2000}
REPLAY=${REPLAY:-1} KEEP=${KEEP:-0} IDLE_SECS=1

say() { printf '== %s\n' "$*" >&2; }
die() { printf 'bench: FAILED: %s\n' "$*" >&2; exit 1; }

T_START=$(date +%s) T_PHASE=$T_START PHASE=setup
PHASES=()
phase() { # NAME: closes the running phase (its wall seconds recorded), opens the next
  local now; now=$(date +%s)
  PHASES+=("$PHASE=$((now - T_PHASE))")
  say "phase $PHASE took $((now - T_PHASE)) s; now: $1"
  PHASE=$1 T_PHASE=$now
}

dev/services.sh up >&2
eval "$(dev/services.sh env)"
L=$CUTOVER_LEGACY_URL T=$CUTOVER_TARGET_URL K=$CUTOVER_KAFKA

say "building release binaries"
cargo build --release --locked --workspace --bins -q
BIN=$ROOT/target/release

VENV=$STATE/bench-venv
if ! "$VENV/bin/python" -c 'import elasticsearch, elasticsearch9, confluent_kafka' 2>/dev/null; then
  say "creating $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r dev/bench/requirements.txt
fi
PY=$VENV/bin/python

RUN=$(date +%s)
WORK=$STATE/bench-$RUN
mkdir -p "$WORK/results"
LEGACY=bench-legacy-$RUN UPSERTS=bench-upserts-$RUN BIG_LEGACY=bench-legacy-big-$RUN BIG_UPSERTS=bench-upserts-big-$RUN
CREATED_INDICES=() CREATED_TOPICS=()
cleanup() {
  [ "$KEEP" = 1 ] && return
  for i in "${CREATED_INDICES[@]}"; do curl -fsS -XDELETE "$T/$i" >/dev/null 2>&1 || true; done
  curl -fsS -XDELETE "$L/$LEGACY,$BIG_LEGACY?ignore_unavailable=true" >/dev/null 2>&1 || true
  rm -rf "$WORK"/bulk* "$WORK"/upserts*.tsv "$WORK"/ckpt-*
  [ ${#CREATED_TOPICS[@]} -gt 0 ] || return 0
  dev/services.sh kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$K" --delete \
    --topic "$(IFS="|"; echo "${CREATED_TOPICS[*]}")" >/dev/null 2>&1 || true  # a regex: one JVM for all
}
trap cleanup EXIT
LOADAVG=$(cut -d' ' -f1-3 /proc/loadavg)
json_field() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(eval("d"+sys.argv[1]))' "$1"; }

make_legacy() { # INDEX DOCS HISTORY LOG: cutover-demo's history, --live 0; prints the live count
  # --no-topic: the legacy indexer applies every command as usual, but the command topic is not
  # produced (nothing here reads it: the replays read the upsert topic made from the index).
  say "data: cutover-demo --docs $2 --history $3 --live 0 --no-topic -> $1"
  "$BIN/cutover-demo" --index "$1" --docs "$2" --history "$3" --live 0 --no-topic \
    --tag-keys "$TAG_KEYS" >"$4" 2>&1 || { cat "$4" >&2; die "cutover-demo"; }
  curl -fsS -XPOST "$L/$1/_refresh" >/dev/null
  curl -fsS "$L/$1/_count" | json_field '["count"]'
}
produce_upserts() { # FILE TOPIC
  CREATED_TOPICS+=("$2")
  dev/services.sh kafka-tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$K" --create --topic "$2" \
    --partitions 3 >/dev/null
  dev/services.sh kafka-tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$K" --topic "$2" \
    --reader-property parse.key=true --reader-property key.separator=$'\t' \
    --command-property linger.ms=20 --command-property batch.size=262144 <"$1" >/dev/null
}

count_check() { # INDEX NAME EXPECTED [keep]: refresh, compare _count, then drop the index
  # (frees the node) unless `keep` (the caller reads it further and drops it with drop_target)
  curl -fsS -XPOST "$T/$1/_refresh" >/dev/null
  local c; c=$(curl -fsS "$T/$1/_count" | json_field '["count"]')
  [ "$c" = "$3" ] || die "$2 wrote $c documents into $1, expected $3"
  say "$2: count check ok ($c)"
  [ "${4:-}" = keep ] || drop_target "$1"
}
drop_target() { [ "$KEEP" = 1 ] || curl -fsS -XDELETE "$T/$1" >/dev/null; }
fresh_target() { # INDEX SOURCE_INDEX
  CREATED_INDICES+=("$1")
  "$BIN/backfill" create-index --legacy-url "$L" --target-url "$T" --source-index "$2" --target-index "$1" \
    >"$WORK/create-$1.log" 2>&1 || { cat "$WORK/create-$1.log" >&2; die "create-index $1"; }
  # Every contender writes under the bulk-load settings `backfill copy` puts the target in during
  # a migration (no refresh, no replicas, until `backfill finalize`), so all pay the same indexing.
  curl -fsS -XPUT "$T/$1/_settings" -H 'Content-Type: application/json' \
    -d '{"index": {"refresh_interval": "-1", "number_of_replicas": 0}}' >/dev/null
}
PIDS=$STATE/legacy/pid,$STATE/target/pid
measure() { python3 dev/bench/measure.py "$WORK/results/$1.json" "$1" "$2" -- "${@:3}"; }

# `backfill finalize` (restores the settings a bulk-loading copy changed), when this build has it:
# run after each copy, timed on its own, with those of the copy's connection flags it accepts.
FINALIZE_FLAGS=()
if FHELP=$("$BIN/backfill" finalize --help 2>/dev/null); then
  for f in --legacy-url --target-url --source-index --target-index; do
    grep -q -- "$f" <<<"$FHELP" && FINALIZE_FLAGS+=("$f")
  done
  say "backfill has finalize (flags used: ${FINALIZE_FLAGS[*]})"
fi
finalize() { # RESULT_NAME SOURCE TARGET_INDEX
  [ ${#FINALIZE_FLAGS[@]} -gt 0 ] || return 0
  local args=() f
  for f in "${FINALIZE_FLAGS[@]}"; do
    case $f in --legacy-url) args+=("$f" "$L") ;; --target-url) args+=("$f" "$T") ;;
      --source-index) args+=("$f" "$2") ;; --target-index) args+=("$f" "$3") ;; esac
  done
  measure "$1" "$PIDS" "$BIN/backfill" finalize "${args[@]}" >&2 || die "backfill finalize $3"
}

run_backfill() { # NAME SOURCE N ROUND VERIFY FLAGS...: VERIFY names the verify of the copy
  # (`-`: none); with a name, the copy is verified, then read by the target scans when the
  # name is `verify` (the rounds), before its index is dropped
  local name=$1 src=$2 n=$3 r=$4 v=$5; shift 5
  # One copy job per run (its Kafka group keeps the checkpoints; the topic goes at the end).
  local idx=bench-$name-$RUN-$r
  CREATED_TOPICS+=("cutover-backfill.$idx")
  say "[$r] contender: cutover backfill copy ${*:-(defaults)}"
  fresh_target "$idx" "$src"
  measure "$name.r$r" "$PIDS" "$BIN/backfill" copy --legacy-url "$L" --target-url "$T" --source-index "$src" \
    --target-index "$idx" --legacy-version _version --brokers "$K" --job "$idx" \
    --failures-file "$WORK/failures-$name-$r.jsonl" --progress off --no-metrics \
    --summary-json "$WORK/summary-$name-$r.json" "$@" >&2 || die "$name"
  finalize "finalize-$name.r$r" "$src" "$idx"
  if [ "$v" = - ]; then
    count_check "$idx" "$name" "$n"
    return
  fi
  count_check "$idx" "$name" "$n" keep
  run_verify "$v" "$src" "$idx" "$n" "$r"
  [ "$v" != verify ] || target_scans "$idx" "$r"
  drop_target "$idx"
}
run_verify() { # NAME SOURCE TARGET_INDEX N ROUND: `backfill verify` (defaults); converged, or the run fails
  local rep=$WORK/verify-$1-$5.json
  say "[$5] contender: cutover backfill verify $2 -> $3"
  measure "$1.r$5" "$PIDS" "$BIN/backfill" verify --legacy-url "$L" --target-url "$T" --source-index "$2" \
    --target-index "$3" --legacy-version _version --report-json "$rep" >&2 || die "backfill verify $3 did not converge (or failed)"
  # The report's own figures, kept with the measurement; a verify that did not read every
  # document on both sides fails the run as a divergence would.
  python3 - "$WORK/results/$1.r$5.json" "$rep" "$4" <<'PY' || die "backfill verify $3: report not converged or incomplete ($rep)"
import json, sys
res, rep, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with open(rep) as f:
    r = json.load(f)
if not (r["converged"] and r["legacy_docs_scanned"] == n and r["target_docs_scanned"] == n):
    sys.exit("converged %s, legacy %d, target %d docs scanned, expected %d" % (
        r["converged"], r["legacy_docs_scanned"], r["target_docs_scanned"], n))
with open(res) as f:
    rec = json.load(f)
rec["verify"] = {k: r[k] for k in ("converged", "legacy_docs_scanned", "target_docs_scanned", "rechecks", "elapsed_secs")}
with open(res, "w") as f:
    json.dump(rec, f)
PY
  say "$1: converged ($4 documents on each side)"
}
target_scans() { # INDEX ROUND: the target's full scan alone, in each of TARGET_SCAN_FORMS
  local shards form size
  shards=$(curl -fsS "$T/$1/_settings" | json_field '.popitem()[1]["settings"]["index"]["number_of_shards"]')
  for form in $TARGET_SCAN_FORMS; do
    size=${form#*:}; [ "$size" != "$form" ] || size=1000
    say "[$2] target scan alone: ${form%%:*}, $shards slices, pages of $size"
    measure "tscan-$form.r$2" "$PIDS" python3 dev/bench/scan_cost.py "$T" "$1" "${form%%:*}" "$shards" "$size" >&2 \
      || die "target scan $form"
  done
}
run_indexer() { # NAME SOURCE TOPIC N ROUND
  local idx=bench-$1-$RUN-$5
  say "[$5] contender: cutover indexer replay of $3 (from zero, --exit-when-idle ${IDLE_SECS}s)"
  fresh_target "$idx" "$2"
  measure "$1.r$5" "$PIDS,$STATE/kafka/pid" "$BIN/indexer" --brokers "$K" --legacy-url "$L" --target-url "$T" \
    --topic "$3" --group "bench-$1-$RUN-$5" --version-source field:version --legacy-version _version \
    --merge-absent ignore --index-map "$2=$idx" --exit-when-idle "${IDLE_SECS}s" --metrics-addr 127.0.0.1:0 \
    --log-format json >"$WORK/$1-$5.log" 2>&1 || { tail "$WORK/$1-$5.log" >&2; die "indexer"; }
  count_check "$idx" "$1" "$4"
  # The indexer's own summary at its clean stop (records, span_secs: first record received to
  # last completed), kept with the measurement: its working time, as the ceiling's is timed.
  python3 - "$WORK/results/$1.r$5.json" "$WORK/$1-$5.log" <<'PY' || die "no summary line in the indexer's log"
import json, sys
res, log = sys.argv[1], sys.argv[2]
stop = [json.loads(l)["fields"] for l in open(log) if '"indexer stopped cleanly"' in l]
with open(res) as f:
    rec = json.load(f)
rec["work"] = {"records": stop[-1]["records"], "span_s": stop[-1]["span_secs"]}
with open(res, "w") as f:
    json.dump(rec, f)
PY
}

# --- phase 1: data at the default size -----------------------------------------------------
phase data
N=$(make_legacy "$LEGACY" "$DOCS" "$HISTORY" "$WORK/demo.log")
[ "$N" -gt 0 ] || die "empty legacy index"
say "legacy index: $N documents ($(grep "^history" "$WORK/demo.log"))"
phase prepare
say "untimed: target-form bulk bodies (ceiling) and upsert envelopes (replays), one scan"
DUMP=$("$PY" dev/bench/python_backfill.py prepare "$L" "$LEGACY" "$WORK/bulk" "$WORK/upserts.tsv")
# Bodies of k * 1000 documents for the ceiling variants that ask for them (N:DOCS).
for c in $CEILING_CONNECTIONS; do
  docs=${c#*:}; [ "$docs" != "$c" ] && [ ! -d "$WORK/bulk-$docs" ] || continue
  python3 - "$WORK/bulk" "$WORK/bulk-$docs" "$((docs / 1000))" <<'PY'
import os, sys
src, dst, k = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(dst)
files = sorted(os.listdir(src))
for i in range(0, len(files), k):
    with open(os.path.join(dst, "bulk-%05d.ndjson" % (i // k)), "wb") as out:
        for f in files[i:i + k]:
            with open(os.path.join(src, f), "rb") as part:
                out.write(part.read())
PY
done
[ "$REPLAY" = 1 ] && { say "untimed: producing $N upsert commands to $UPSERTS"; produce_upserts "$WORK/upserts.tsv" "$UPSERTS"; }
SHARDS=$(curl -fsS "$L/$LEGACY/_settings" | json_field '.popitem()[1]["settings"]["index"]["number_of_shards"]')

# --- phase 2: the contenders, ROUNDS interleaved rounds --------------------------------------
for r in $(seq 1 "$ROUNDS"); do
  phase "round-$r"
  for form in $SCAN_FORMS; do
    size=${form#*:}; [ "$size" != "$form" ] || size=1000
    say "[$r] legacy scan alone: ${form%%:*}, $SHARDS slices, pages of $size"
    measure "scan-$form.r$r" "$PIDS" python3 dev/bench/scan_cost.py "$L" "$LEGACY" "${form%%:*}" "$SHARDS" "$size" >&2 \
      || die "scan $form"
  done

  say "[$r] contender: python scan + parallel_bulk"
  fresh_target "bench-py-$RUN-$r" "$LEGACY"
  measure "python.r$r" "$PIDS" "$PY" dev/bench/python_backfill.py copy "$L" "$T" "$LEGACY" "bench-py-$RUN-$r" >&2 \
    || die "python copy"
  count_check "bench-py-$RUN-$r" python "$N"

  run_backfill backfill-default "$LEGACY" "$N" "$r" verify
  # shellcheck disable=SC2086
  [ -z "$BACKFILL_TUNED" ] || run_backfill backfill-tuned "$LEGACY" "$N" "$r" - $BACKFILL_TUNED

  for c in $CEILING_CONNECTIONS; do
    say "[$r] contender: Elasticsearch bulk ceiling, $c connections"
    idx=bench-ceiling-${c/:/x}-$RUN-$r
    fresh_target "$idx" "$LEGACY"
    docs=${c#*:}; bodies=$WORK/bulk; [ "$docs" = "$c" ] || bodies=$WORK/bulk-$docs
    measure "ceiling-$c.r$r" "$PIDS" python3 dev/bench/bulk_ceiling.py "$T" "$idx" "$bodies" "${c%%:*}" >&2 || die "ceiling $c"
    count_check "$idx" "ceiling-$c" "$N"
  done

  if [ "$REPLAY" = 1 ]; then
    run_indexer indexer "$LEGACY" "$UPSERTS" "$N" "$r"
    say "[$r] contender: Python replay (confluent-kafka + parallel_bulk)"
    idx=bench-pyreplay-$RUN-$r
    fresh_target "$idx" "$LEGACY"
    measure "pyreplay.r$r" "$PIDS,$STATE/kafka/pid" "$PY" dev/bench/python_replay.py "$K" "$UPSERTS" \
      "bench-pyreplay-$RUN-$r" "$T" "$idx" >&2 || die "python replay"
    count_check "$idx" pyreplay "$N"
  fi
done

PERF=null
if [ "$REPLAY" = 1 ]; then
  phase consumer-perf
  say "context: Kafka ConsumerPerformance on $UPSERTS"
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

# Facts about the default-size data, read before its index is dropped.
LEGACY_STORE=$(curl -fsS "$L/_cat/indices/$LEGACY?h=pri.store.size&bytes=b" | tr -d '[:space:]')
UPSERT_BYTES=$(stat -c %s "$WORK/upserts.tsv")
rm -rf "$WORK"/bulk*

# --- phase 3: the big size, backfill and indexer once each (peak RSS) ------------------------
# The big index is the default one's documents BIG_COPIES times over under new ids (versions and
# routing kept: dev/bench/multiply.py), so both sizes have the same shape.
BIG_N=0 BIG_COPIES=0
if [ "$BIG" = 1 ]; then
  phase big-data
  BIG_COPIES=$(( (BIG_MIN + N - 1) / N ))
  CREATED_INDICES+=("$BIG_LEGACY")
  say "data: $BIG_COPIES copies of $LEGACY -> $BIG_LEGACY"
  python3 dev/bench/multiply.py index "$L" "$LEGACY" "$WORK/upserts.tsv" "$BIG_LEGACY" "$BIG_COPIES" || die "multiply index"
  BIG_N=$(curl -fsS "$L/$BIG_LEGACY/_count" | json_field '["count"]')
  [ "$BIG_N" = $(( N * BIG_COPIES )) ] || die "big legacy index has $BIG_N documents, expected $(( N * BIG_COPIES ))"
  say "big legacy index: $BIG_N documents"
  phase big-prepare
  if [ "$REPLAY" = 1 ]; then
    python3 dev/bench/multiply.py upserts "$WORK/upserts.tsv" "$WORK/upserts-big.tsv" "$BIG_LEGACY" "$BIG_COPIES"
    produce_upserts "$WORK/upserts-big.tsv" "$BIG_UPSERTS"
    rm -f "$WORK/upserts-big.tsv"
  fi
  [ "$KEEP" = 1 ] || curl -fsS -XDELETE "$L/$LEGACY" >/dev/null  # free the legacy node for the big runs
  phase big-run
  run_backfill big-backfill-default "$BIG_LEGACY" "$BIG_N" 1 big-verify
  [ "$REPLAY" = 1 ] && run_indexer big-indexer "$BIG_LEGACY" "$BIG_UPSERTS" "$BIG_N" 1
fi
rm -f "$WORK/upserts.tsv"
phase report

# --- report --------------------------------------------------------------------------------
CMD=dev/bench.sh
for v in DOCS HISTORY TAG_KEYS BIG BIG_MIN ROUNDS BACKFILL_TUNED CEILING_CONNECTIONS SCAN_FORMS TARGET_SCAN_FORMS REPLAY; do
  case "$v=${!v}" in DOCS=1450000|HISTORY=725000|TAG_KEYS=600|BIG=1|BIG_MIN=1000000|ROUNDS=3|"BACKFILL_TUNED="|"CEILING_CONNECTIONS=2 4 2:2000"|"SCAN_FORMS=pit-shard-doc pit-seqno scroll-doc pit-shard-doc:2000 pit-seqno:2000 scroll-doc:2000"|"TARGET_SCAN_FORMS=pit-shard-doc:2000 scroll-doc:2000"|REPLAY=1) ;;
    *) CMD="$v='${!v}' $CMD" ;; esac
done
export RUN N DOCS HISTORY TAG_KEYS BIG_N BIG_MIN BIG_COPIES ROUNDS LOADAVG DUMP PERF BACKFILL_TUNED \
  CEILING_CONNECTIONS SCAN_FORMS TARGET_SCAN_FORMS IDLE_SECS CMD WORK ROOT SHARDS LEGACY_STORE UPSERT_BYTES L T
export PHASES_TXT="${PHASES[*]} report=0" FINALIZE_FLAGS_TXT="${FINALIZE_FLAGS[*]}"
export LEGACY_VERSION TARGET_VERSION
LEGACY_VERSION=$(curl -fsS "$L" | json_field '["version"]["number"]')
TARGET_VERSION=$(curl -fsS "$T/_nodes/_local?filter_path=nodes.*.version" | json_field '["nodes"].popitem()[1]["version"]')
python3 - "$WORK/meta.json" <<'PY'
import json, os, sys
e = os.environ
def kv(path, key):
    for line in open(path):
        if line.startswith(key): return line.split(":", 1)[1].strip()
dump = json.loads(e["DUMP"])
work = e["WORK"]
rel = os.path.relpath(work, e["ROOT"])
meta = {
  "run": e["RUN"], "date": __import__("time").strftime("%Y-%m-%dT%H:%MZ", __import__("time").gmtime()),
  "docs": int(e["N"]), "demo_docs": int(e["DOCS"]), "demo_history": int(e["HISTORY"]),
  "big_docs": int(e["BIG_N"]), "big_min": int(e["BIG_MIN"]), "big_copies": int(e["BIG_COPIES"]),
  "rounds": int(e["ROUNDS"]), "tag_keys": int(e["TAG_KEYS"]), "nproc": os.cpu_count(),
  "cpu_model": kv("/proc/cpuinfo", "model name") or "unknown",
  "mem_gib": round(int(kv("/proc/meminfo", "MemTotal").split()[0]) / 2**20, 1), "loadavg": e["LOADAVG"],
  "legacy_version": e["LEGACY_VERSION"], "target_version": e["TARGET_VERSION"],
  "kafka_version": next((l.split("<kafka.version>")[1].split("<")[0] for l in open("dev/kafka/pom.xml") if "<kafka.version>" in l), "?"),
  "legacy_shards": int(e["SHARDS"]), "legacy_store_bytes": int(e["LEGACY_STORE"]),
  "target_ndjson_bytes": dump["bytes"], "target_ndjson_files": dump["files"],
  "upsert_topic_bytes": int(e["UPSERT_BYTES"]),
  "backfill_flags": {"backfill-default": "", "backfill-tuned": e["BACKFILL_TUNED"]},
  "ceiling_connections": e["CEILING_CONNECTIONS"].split(),
  "scan_forms": e["SCAN_FORMS"].split(), "target_scan_forms": e["TARGET_SCAN_FORMS"].split(),
  "finalize_flags": e["FINALIZE_FLAGS_TXT"],
  "consumer_perf": json.loads(e["PERF"]), "indexer_idle_secs": int(e["IDLE_SECS"]),
  "phases": [[p.split("=")[0], int(p.split("=")[1])] for p in e["PHASES_TXT"].split()],
  "command": e["CMD"],
  "work_rel": rel if not rel.startswith("..") else "$CUTOVER_STATE/" + os.path.basename(work),
}
json.dump(meta, open(sys.argv[1], "w"), indent=1)
PY
python3 dev/bench/report.py "$WORK" BENCHMARKS.md
say "wrote BENCHMARKS.md (raw results in $WORK)"
sed -n '/^## Results/,/^## What each/p' BENCHMARKS.md | sed '$d'
say "phases (wall seconds): ${PHASES[*]}; total $(($(date +%s) - T_START)) s"
