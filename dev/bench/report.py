#!/usr/bin/env python3
"""Writes BENCHMARKS.md from the result files dev/bench.sh leaves in its work directory.

  report.py WORK_DIR OUT.md

Every contender ran ROUNDS times, interleaved; results/NAME.rR.json is round R of NAME (see
measure.py for the fields). Each figure is the median over the rounds, shown with its min-max.
"""
import glob
import json
import os
import re
import statistics
import sys


def fmt(x, nd=0):
    return "" if x is None else f"{x:,.{nd}f}"


class Runs:
    """The rounds of one contender."""

    def __init__(self, work, name):
        self.name = name
        self.recs = []
        for p in sorted(glob.glob(os.path.join(work, "results", name + ".r*.json"))):
            with open(p) as f:
                self.recs.append(json.load(f))

    def __bool__(self):
        return bool(self.recs)

    def inner(self, rec):
        try:
            return json.loads(rec["stdout_tail"])
        except Exception:
            return {}

    def values(self, f):
        return [v for v in (f(r) for r in self.recs) if v is not None]

    def stat(self, f):
        v = self.values(f)
        return (statistics.median(v), min(v), max(v)) if v else None

    def med(self, f):
        s = self.stat(f)
        return s[0] if s else None

    def server(self, key):
        return self.med(lambda r: r["servers_cpu_s"].get(key))


def span(s, nd=0):
    """median (min-max)"""
    if s is None:
        return ""
    m, lo, hi = s
    if len(set([lo, hi])) == 1:
        return f"{fmt(m, nd)}"
    return f"{fmt(m, nd)} ({fmt(lo, nd)}–{fmt(hi, nd)})"


def main(work, out):
    with open(os.path.join(work, "meta.json")) as f:
        meta = json.load(f)
    n, cores = meta["docs"], meta["nproc"]
    idle = meta["indexer_idle_secs"]

    def outer_rate(docs):
        return lambda r: docs / r["elapsed_s"]

    def indexer_rate(docs):
        return lambda r: docs / (r["elapsed_s"] - idle)

    def inner_rate(runs, docs):
        return lambda r: docs / runs.inner(r)["elapsed_s"]

    def work_span(r):
        # The indexer's working time (first record received to last completed, from its summary
        # at the clean stop): timed as the ceiling's inner phase is, start-up and exit left out.
        return r["work"]["span_s"] if r.get("work") else None

    def work_rate(docs):
        return lambda r: docs / work_span(r) if work_span(r) else None

    rows = []  # label, runs, rate fn, note

    scans = {form: Runs(work, "scan-" + form) for form in meta["scan_forms"]}
    scans = {k: v for k, v in scans.items() if v}
    py = Runs(work, "python")
    backfills = [(name, Runs(work, name)) for name in ("backfill-default", "backfill-tuned")]
    backfills = [(name, r) for name, r in backfills if r]
    finalize = Runs(work, "finalize-backfill-default")
    ver = Runs(work, "verify")
    tscans = {form: Runs(work, "tscan-" + form) for form in meta.get("target_scan_forms", [])}
    tscans = {k: v for k, v in tscans.items() if v}
    ceilings = [(c, Runs(work, f"ceiling-{c}")) for c in meta["ceiling_connections"]]
    ceilings = [(c, r) for c, r in ceilings if r]
    idx = Runs(work, "indexer")
    pyr = Runs(work, "pyreplay")
    perf = meta.get("consumer_perf")

    form_names = {
        "pit-shard-doc": "PIT + `search_after`, sort `_shard_doc`",
        "pit-seqno": "PIT + `search_after`, sort `[_seq_no, _shard_doc]`",
        "scroll-doc": "sliced scroll, sort `_doc`",
    }

    def page_size(form):  # FORM or FORM:SIZE
        return int(form.split(":")[1]) if ":" in form else 1000

    def form_label(form):
        return f"{form_names.get(form.split(':')[0], form)}, pages of {page_size(form)}"

    def ceiling_label(c):  # CONNECTIONS or CONNECTIONS:DOCS
        conns, _, docs = c.partition(":")
        return f"{conns} connections, bodies of {docs or 1000}"

    for form, runs in scans.items():
        rows.append((f"legacy scan alone: {form_label(form)}", runs, inner_rate(runs, n),
                     f"{meta['legacy_shards']} slices, size {page_size(form)}, `filter_path`; read and discarded", "inner"))
    rows.append(("Python `scan` + `parallel_bulk` (seed 003)", py, outer_rate(n),
                 "4 threads, chunk 1000, scroll size 1000", "outer"))
    for name, runs in backfills:
        flags = meta["backfill_flags"].get(name, "")
        note = "defaults" if not flags else ""
        if name == "backfill-default" and finalize:
            note += f"; then `backfill finalize`: {span(finalize.stat(lambda r: r['elapsed_s']), 2)} s, not in the rate"
        rows.append((f"cutover `backfill copy` {flags or '(defaults)'}", runs, outer_rate(n), note, "outer"))
    if ver:
        rows.append(("cutover `backfill verify` (defaults)", ver, outer_rate(n),
                     "of the round's `backfill copy` target, after `finalize`; converged, every document read on both "
                     "sides; docs/s = legacy documents / wall time", "outer"))
    for form, runs in tscans.items():
        rows.append((f"target scan alone: {form_label(form)}", runs, inner_rate(runs, n),
                     f"on the round's `backfill copy` target; {runs.inner(runs.recs[0]).get('slices')} slices, size "
                     f"{page_size(form)}, `filter_path`; read and discarded", "inner"))
    for c, runs in ceilings:
        rows.append((f"ES bulk ceiling, {ceiling_label(c)}", runs, inner_rate(runs, n),
                     "pre-encoded target-form bodies, no scan, no transform", "inner"))
    if idx:
        rows.append(("cutover `indexer` replay of the upsert topic", idx, indexer_rate(n),
                     f"whole process: wall time minus the {idle} s idle wait; kafka CPU {fmt(idx.server('kafka'), 1)} s", "outer"))
        if idx.values(work_rate(n)):
            fixed = idx.stat(lambda r: r["elapsed_s"] - idle - work_span(r) if work_span(r) else None)
            rows.append(("cutover `indexer` replay, working time", idx, work_rate(n),
                         "first record received to last completed (the indexer's summary at its clean stop), timed as "
                         f"the ceiling is; start-up and exit, left out here, took {span(fixed, 2)} s; client CPU is the whole process's",
                         "work"))
    if pyr:
        t = pyr.inner(pyr.recs[0])
        rows.append(("Python replay: `confluent-kafka` + `parallel_bulk`", pyr, outer_rate(n),
                     f"{t.get('threads')} threads, chunk {t.get('chunk')}, consume batch {t.get('consume_batch')}; "
                     f"kafka CPU {fmt(pyr.server('kafka'), 1)} s", "outer"))

    def rate(runs, fn):
        return runs.med(fn)

    # The figures the ratios use.
    py_rate = rate(py, outer_rate(n)) if py else None
    bf_runs = dict(backfills).get("backfill-default")
    bf_rate = rate(bf_runs, outer_rate(n)) if bf_runs else None
    best_c, best_ceiling = None, None
    for c, runs in ceilings:
        r = rate(runs, inner_rate(runs, n))
        if best_ceiling is None or r > best_ceiling[0]:
            best_c, best_ceiling = c, (r, runs)
    ceiling_rate = best_ceiling[0] if best_ceiling else None
    ingest_cpu = best_ceiling[1].server("target") if best_ceiling else None
    scan_cpu = {form: runs.server("legacy") for form, runs in scans.items()}
    cheapest = min(scan_cpu, key=scan_cpu.get) if scan_cpu else None
    limit = None
    if cheapest and ingest_cpu:
        limit = n / ((scan_cpu[cheapest] + ingest_cpu) / cores)
    # The two-scan limit: the legacy's and the target's cheapest full reads, on the same cores.
    tscan_cpu = {form: runs.server("target") for form, runs in tscans.items()}
    tcheapest = min(tscan_cpu, key=tscan_cpu.get) if tscan_cpu else None
    two_scan = None
    if cheapest and tcheapest:
        two_scan = n / ((scan_cpu[cheapest] + tscan_cpu[tcheapest]) / cores)
    ver_rate = rate(ver, outer_rate(n)) if ver else None
    idx_rate = rate(idx, indexer_rate(n)) if idx else None
    idx_work = rate(idx, work_rate(n)) if idx and idx.values(work_rate(n)) else None
    pyr_rate = rate(pyr, outer_rate(n)) if pyr else None

    L = []
    L.append("# Benchmarks\n")
    L.append(f"Generated by `dev/bench.sh` on {meta['date']} (run `{meta['run']}`). All contenders ran in that one run, "
             f"on the same legacy index, in {meta['rounds']} interleaved rounds (round 1 of every contender, then round 2, "
             "...), so drift on the machine hits all alike; every figure is the **median of the rounds, with min–max in "
             "brackets**. Each writing contender wrote into a fresh target index created by `backfill create-index` "
             "(same mapping and settings) and put in the bulk-load settings `backfill copy` uses during a migration "
             "(`refresh_interval: -1`, 0 replicas, until `backfill finalize`), so every contender pays the same indexing; "
             "after each, the target was refreshed and its `_count` checked against the "
             "legacy count (the run fails otherwise).\n")
    L.append("## Reproduce\n")
    L.append("```sh\n" + meta["command"] + "\n```\n")
    L.append("(`dev/bench.sh` brings the services up if needed, builds the release binaries, creates the Python "
             "venv under `$CUTOVER_STATE/bench-venv` (default `.dev-state/bench-venv`) from "
             "`dev/bench/requirements.txt`, and rewrites this file. `BIG=0` skips the ≥ 1M-document phase, `ROUNDS`, "
             "`DOCS`/`HISTORY`, `BIG_MIN` resize; see the header of `dev/bench.sh`.)\n")
    L.append("## Machine and data\n")
    L.append(f"- {meta['nproc']} CPUs ({meta['cpu_model']}), {meta['mem_gib']} GiB RAM, load average before the run: {meta['loadavg']}")
    L.append(f"- legacy Elasticsearch {meta['legacy_version']} (`:9200`), target Elasticsearch {meta['target_version']} "
             f"(`:9201`, integ-test-zip), Apache Kafka {meta['kafka_version']}, all on this machine, single nodes, "
             "0 replicas; the benchmark clients run on the same cores")
    L.append(f"- data: `cutover-demo --docs {meta['demo_docs']} --history {meta['demo_history']} --live 0` "
             f"→ legacy index with **{fmt(n)} documents** ({meta['legacy_shards']} primary shards, "
             f"{fmt(meta['legacy_store_bytes'] / 1e6, 1)} MB on disk); target form as bulk bodies: "
             f"{fmt(meta['target_ndjson_bytes'] / 1e6, 1)} MB NDJSON ({meta['target_ndjson_files']} requests of ≤1000 docs); "
             f"upsert topic: {fmt(meta['upsert_topic_bytes'] / 1e6, 1)} MB of envelopes (3 partitions)")
    if meta.get("big_docs"):
        L.append(f"- big phase: the legacy index copied {meta['big_copies']} times under new ids (versions and "
                 f"routing kept; `dev/bench/multiply.py`) → **{fmt(meta['big_docs'])} documents**, and its upserts the same "
                 "way, for peak RSS at that size")
    L.append(f"- `--tag-keys {meta['tag_keys']}`: every legacy document has 0–5 tags from that many keys (plus keys with `:` and `\\`), "
             "so the legacy mapping has hundreds of dynamic fields (written by cutover-demo's legacy indexer, as the "
             "legacy service did); every target document has the `tags` pair array\n")

    L.append("## Ratios\n")
    L.append("Computed from the medians below; the per-round column is the same ratio within each round "
             "(min–max), which drift between rounds does not touch.\n")
    L.append("| ratio | value | per round | goal (issue 10 unless noted) |\n|---|---:|---:|---:|")

    def per_round(a_runs, a_fn, b_runs, b_fn):
        ra, rb = a_runs.values(a_fn), b_runs.values(b_fn)
        v = [x / y for x, y in zip(ra, rb)]
        return f"{min(v):.2f}–{max(v):.2f}" if len(v) > 1 else ""

    if idx_rate and ceiling_rate:
        cr = best_ceiling[1]
        if idx_work:
            L.append(f"| indexer / ES bulk ceiling | **{idx_work / ceiling_rate:.2f}** | "
                     f"{per_round(idx, work_rate(n), cr, inner_rate(cr, n))} | ≥ 0.8 |")
            L.append(f"| (context) indexer whole process / ES bulk ceiling | {idx_rate / ceiling_rate:.2f} | "
                     f"{per_round(idx, indexer_rate(n), cr, inner_rate(cr, n))} | |")
        else:
            L.append(f"| indexer / ES bulk ceiling | **{idx_rate / ceiling_rate:.2f}** | "
                     f"{per_round(idx, indexer_rate(n), cr, inner_rate(cr, n))} | ≥ 0.8 |")
    if bf_rate and limit:
        L.append(f"| backfill / copy limit | **{bf_rate / limit:.2f}** | | ≥ 0.8 |")
    if ver_rate and two_scan:
        # Per round: verify's rate against the limit from that round's two cheapest scans.
        def round_limit(rnd):
            lg = [r["servers_cpu_s"].get("legacy") for r in scans[cheapest].recs if r["name"].endswith(f".r{rnd}")]
            tg = [r["servers_cpu_s"].get("target") for r in tscans[tcheapest].recs if r["name"].endswith(f".r{rnd}")]
            return n / ((lg[0] + tg[0]) / cores) if lg and tg and lg[0] and tg[0] else None
        v = [n / r["elapsed_s"] / lim for r in ver.recs
             for lim in [round_limit(r["name"].rsplit(".r", 1)[1])] if lim]
        pr = f"{min(v):.2f}–{max(v):.2f}" if len(v) > 1 else ""
        L.append(f"| verify / two-scan limit | **{ver_rate / two_scan:.2f}** | {pr} | ≥ 0.7 (issue 31) |")
    if bf_rate and py_rate:
        L.append(f"| backfill / Python scan+parallel_bulk | **{bf_rate / py_rate:.2f}×** | "
                 f"{per_round(bf_runs, outer_rate(n), py, outer_rate(n))} | ≥ 3× |")
    if idx_rate and pyr_rate:
        L.append(f"| indexer / Python replay | **{idx_rate / pyr_rate:.2f}×** | "
                 f"{per_round(idx, indexer_rate(n), pyr, outer_rate(n))} | ≥ 3× |")
    L.append("")
    if idx_work:
        L.append("`indexer / ES bulk ceiling` compares working times: the ceiling's timed phase (first request to "
                 "last response, its bodies already in memory) and the indexer's (first record received to last "
                 "completed). The context row under it puts the indexer's whole process (start-up, group join, "
                 "first fetch and exit included) against the same ceiling. `indexer / Python replay` compares "
                 "whole processes on both sides.\n")
    if idx and bf_runs:
        ic = idx.med(lambda r: r["client_cpu_s"]) / n * 1e6
        bc = bf_runs.med(lambda r: r["client_cpu_s"]) / n * 1e6
        L.append(f"Client CPU per document (goal: the indexer's no higher than the backfill's): indexer "
                 f"**{ic:.1f} µs**, backfill **{bc:.1f} µs** ({ic / bc:.2f}×).")
    if idx and ingest_cpu:
        # On shared cores every CPU-second the indexer's side spends is one the target does not
        # get; the ceiling's client spends almost none. The bound assumes both runs keep the cores
        # as busy; the line after it says how busy each did.
        e_idx, c_idx, k_idx = idx.server("target"), idx.med(lambda r: r["client_cpu_s"]), idx.server("kafka") or 0.0
        share = ingest_cpu / (e_idx + c_idx + k_idx)
        room = (ingest_cpu / 0.8 - e_idx - k_idx) / n * 1e6
        L.append(f"\nWhat bounds `indexer / ES bulk ceiling` here: the indexer, Kafka and the target share the "
                 f"{cores} cores, and the replay costs them {e_idx:.1f} target + {c_idx:.1f} indexer + {k_idx:.1f} Kafka "
                 f"CPU-s where the ceiling's documents cost the target {ingest_cpu:.1f}: with the cores as busy in both "
                 f"runs the ratio could reach at most {ingest_cpu:.1f} / {e_idx + c_idx + k_idx:.1f} = **{share:.2f}**. At "
                 f"this run's target cost, 0.8 at equal core use needs the indexer's client CPU at or below "
                 f"**{room:.1f} µs** per document" + (" (no client CPU would do)." if room <= 0 else "."))
        busy = []
        cr = best_ceiling[1]
        c_el = cr.med(lambda r: cr.inner(r)["elapsed_s"])
        if c_el:
            busy.append(f"the ceiling's timed phase {100 * (ingest_cpu + cr.med(lambda r: cr.inner(r).get('client_cpu_s', 0))) / (c_el * cores):.0f}%")
        if idx_work:
            w_el = idx.med(work_span)
            busy.append(f"the indexer's working time {100 * (e_idx + c_idx + k_idx) / (w_el * cores):.0f}%")
        w_all = idx.med(lambda r: r["elapsed_s"] - idle)
        busy.append(f"the indexer's whole process {100 * (e_idx + c_idx + k_idx) / (w_all * cores):.0f}%")
        L.append("How busy each kept the cores (all CPU of the run over the timed window): " + ", ".join(busy) + ".\n")
    ctx = []
    if bf_rate and ceiling_rate:
        ctx.append(f"backfill / ES bulk ceiling {bf_rate / ceiling_rate:.2f}")
    if py_rate and ceiling_rate:
        ctx.append(f"Python scan+parallel_bulk / ES bulk ceiling {py_rate / ceiling_rate:.2f}")
    if idx_rate and perf:
        ctx.append(f"indexer / Kafka `ConsumerPerformance` {idx_rate / perf['nmsg_sec']:.2f}")
    if ctx:
        L.append("Context: " + "; ".join(ctx) + ".")
    L.append("")

    if limit:
        L.append("## The copy limit of this machine\n")
        L.append(f"A copy must pay at least the legacy's cheapest full read and the target's cheapest ingest of the same "
                 f"documents, on the same {cores} cores. Both were measured alone in this run: the cheapest scan form "
                 f"({form_label(cheapest)}) cost the legacy node **{scan_cpu[cheapest]:.1f} CPU-s** "
                 f"(median), and the bulk ceiling ({ceiling_label(best_c)}, the fastest variant) cost the target node "
                 f"**{ingest_cpu:.1f} CPU-s** (median). So:\n")
        L.append(f"copy limit = documents / ((scan CPU + ingest CPU) / cores) = {fmt(n)} / (({scan_cpu[cheapest]:.1f} + "
                 f"{ingest_cpu:.1f}) / {cores}) = **{fmt(limit)} docs/s**\n")
        L.append("It leaves out the copier's own CPU (decode, transform, encode): a copier on a third host would "
                 "not take it from the clusters, here it does, so on this machine the limit is an upper bound no "
                 "copy quite reaches, and `backfill / copy limit` says how close the backfill comes.\n")
        L.append("Legacy CPU of a full scan, by form (what each read costs the legacy node; the cheapest is used "
                 "above):\n")
        L.append("| scan form | legacy ES CPU s | index query+fetch s | of which fetch | docs/s | scan client CPU s | target ES CPU s |\n"
                 "|---|---:|---:|---:|---:|---:|---:|")

        def fetch_share(runs):
            def one(rec):
                scan = runs.inner(rec)
                if not scan.get("index_search_ms") or scan.get("index_fetch_ms") is None:
                    return None  # older runs recorded only the sum
                return 100 * scan["index_fetch_ms"] / scan["index_search_ms"]
            return runs.med(one)

        shares = {}
        for form, runs in scans.items():
            mark = " (cheapest)" if form == cheapest else ""
            shares[form] = fetch_share(runs)
            share = f"{shares[form]:.0f}%" if shares[form] else "–"
            L.append(f"| {form_label(form)}{mark} | {span(runs.stat(lambda r: r['servers_cpu_s'].get('legacy')), 1)} | "
                     f"{span(runs.stat(lambda r: (runs.inner(r).get('index_search_ms') or None) and runs.inner(r)['index_search_ms'] / 1000), 1)} | "
                     f"{share} | {span(runs.stat(inner_rate(runs, n)))} | {fmt(runs.med(lambda r: r['client_cpu_s']), 1)} | "
                     f"{fmt(runs.server('target'), 1)} |")
        L.append("\n(CPU columns are node-wide: other work on a node during a scan counts too, so the target "
                 "column, which a scan should leave near zero, shows how quiet the machine was; the index's own "
                 "query + fetch time, from its `_stats/search`, is a second view that others' work on other "
                 "indices does not inflate.)")
        known = [v for v in shares.values() if v]
        if known:
            L.append(f"\nIn every form, fetching the hits (loading each document's stored `_source`, routing and "
                     f"version, and writing them out) is {min(known):.0f}–{max(known):.0f}% of the legacy's search time; "
                     f"the forms differ in the query part (sorting, `search_after`) and in how the fetch reads the "
                     f"stored fields. So what a copy costs the legacy is mostly the documents it reads, whatever the "
                     f"request asks.")
        # The form `backfill copy` reads with: [_seq_no, _shard_doc] at its default page size.
        own = "pit-seqno:2000" if "pit-seqno:2000" in scan_cpu else "pit-seqno"
        if cheapest and own in scan_cpu and cheapest != own:
            L.append(f"\nThe cheapest form costs the legacy {scan_cpu[cheapest] / scan_cpu[own]:.2f}× what "
                     f"{form_label(own)} (the `backfill copy` read at the time of writing) costs.")
        L.append("")

    if two_scan:
        ts = tscan_cpu[tcheapest]
        L.append("## The two-scan limit of this machine (verify)\n")
        L.append(f"`backfill verify` must read every document of both clusters with its source (it compares the "
                 f"transformed legacy document with the target's, field by field), so it pays at least each cluster's "
                 f"cheapest full read, on the same {cores} cores. The legacy's is the one above: "
                 f"{form_label(cheapest)}, **{scan_cpu[cheapest]:.1f} CPU-s** of the legacy node (median). The target's "
                 f"was measured alone in this run too, with the same reader (`dev/bench/scan_cost.py`) on the index the "
                 f"round's `backfill copy` had just written and `backfill verify` had just checked: "
                 f"{form_label(tcheapest)}, **{ts:.1f} CPU-s** of the target node (median). So, as the copy limit is "
                 f"derived:\n")
        L.append(f"two-scan limit = documents / ((legacy scan CPU + target scan CPU) / cores) = {fmt(n)} / "
                 f"(({scan_cpu[cheapest]:.1f} + {ts:.1f}) / {cores}) = **{fmt(two_scan)} docs/s**\n")
        L.append("It leaves out verify's own CPU (decoding both sides, the transform, hashing, sorting and joining the "
                 "digests). Verify reads each document once per side (a sliced walk with `_source` of each, at the same "
                 "time; only documents the join flags are read again, by id), so `verify / two-scan limit` says how "
                 "close verify comes to the cheapest reads, its own work included.\n")
        e_l, e_t, c_v = ver.server("legacy"), ver.server("target"), ver.med(lambda r: r["client_cpu_s"])
        if e_l is not None and e_t is not None:
            L.append(f"Verify's own run cost the legacy node **{e_l:.1f}** CPU-s ({e_l / scan_cpu[cheapest]:.2f}× its "
                     f"cheapest scan), the target node **{e_t:.1f}** ({e_t / ts:.2f}× its cheapest scan) and the "
                     f"verify process **{c_v:.1f}** (medians); the cores were "
                     f"{100 * (e_l + e_t + c_v) / (ver.med(lambda r: r['elapsed_s']) * cores):.0f}% busy over its wall time.\n")
        L.append("Target CPU of a full scan, by form (the cheapest is used above):\n")
        L.append("| scan form | target ES CPU s | index query+fetch s | docs/s | scan client CPU s | legacy ES CPU s |\n"
                 "|---|---:|---:|---:|---:|---:|")
        for form, runs in tscans.items():
            mark = " (cheapest)" if form == tcheapest else ""
            L.append(f"| {form_label(form)}{mark} | {span(runs.stat(lambda r: r['servers_cpu_s'].get('target')), 1)} | "
                     f"{span(runs.stat(lambda r: (runs.inner(r).get('index_search_ms') or None) and runs.inner(r)['index_search_ms'] / 1000), 1)} | "
                     f"{span(runs.stat(inner_rate(runs, n)))} | {fmt(runs.med(lambda r: r['client_cpu_s']), 1)} | "
                     f"{fmt(runs.server('legacy'), 1)} |")
        L.append("")

    L.append("## Results\n")
    L.append("docs/s = legacy documents / elapsed wall time of the whole process (start to exit; for the ceiling "
             "and the scans, their timed phase only, the ceiling's bodies already in memory; for the indexer's "
             "working time, first record received to last completed). CPU columns are "
             "CPU-seconds used during the run by the client process tree, the legacy node and the target node "
             "(read from `/proc`); peak RSS is the client process's own (`ru_maxrss`). All medians of "
             f"{meta['rounds']} rounds, min–max in brackets.\n")
    L.append("| contender | docs/s | elapsed s | client CPU s | legacy ES CPU s | target ES CPU s | peak RSS MB | notes |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for label, runs, fn, note, kind in rows:
        el = {"inner": lambda r: runs.inner(r)["elapsed_s"], "work": work_span}.get(kind, lambda r: r["elapsed_s"])
        cpu = (lambda r: runs.inner(r)["client_cpu_s"]) if kind == "inner" else (lambda r: r["client_cpu_s"])
        L.append(f"| {label} | {span(runs.stat(fn))} | {fmt(runs.med(el), 2)} | {fmt(runs.med(cpu), 1)} | "
                 f"{fmt(runs.server('legacy'), 1)} | {fmt(runs.server('target'), 1)} | "
                 f"{fmt(runs.med(lambda r: r.get('max_rss_kb', 0) / 1024))} | {note} |")
    if perf:
        L.append(f"| Kafka `ConsumerPerformance` on the same topic (once) | {fmt(perf['nmsg_sec'])} | {fmt(perf['elapsed_s'], 2)} "
                 f"| | | | | fetch-only rate (without group join) {fmt(perf['fetch_nmsg_sec'])}/s |")
    L.append("")

    L.append("## Memory: peak RSS of the binaries at two sizes\n")
    L.append("| binary | legacy documents | peak RSS MB | docs/s (context) |\n|---|---:|---:|---:|")
    big_bf, big_idx, big_ver = Runs(work, "big-backfill-default"), Runs(work, "big-indexer"), Runs(work, "big-verify")
    big = meta.get("big_docs") or 0
    for label, runs, docs, fn in (("`backfill copy` (defaults)", bf_runs, n, outer_rate(n)),
                                  ("`backfill copy` (defaults)", big_bf, big, outer_rate(big)),
                                  ("`backfill verify` (defaults)", ver, n, outer_rate(n)),
                                  ("`backfill verify` (defaults)", big_ver, big, outer_rate(big)),
                                  ("`indexer` replay", idx, n, indexer_rate(n)),
                                  ("`indexer` replay", big_idx, big, indexer_rate(big))):
        if runs:
            rss = runs.stat(lambda r: r.get("max_rss_kb", 0) / 1024)
            L.append(f"| {label} | {fmt(docs)} | {span(rss)} | {span(runs.stat(fn))} |")
    L.append("\nGoal (issue 10): each < 200 MB and not growing with N; `backfill verify` (issue 31): flat in N.\n")

    L.append("## Run time by phase\n")
    L.append("| phase | wall s |\n|---|---:|")
    for name, secs in meta["phases"]:
        if secs:
            L.append(f"| {name} | {secs} |")
    L.append(f"| total | {sum(s for _, s in meta['phases'])} |\n")

    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "discussion.md")) as f:
        L.append(f.read().replace("{{WORK}}", meta["work_rel"]))
    text = "\n".join(L).rstrip() + "\n"
    text = re.sub(r"\n{3,}", "\n\n", text)
    with open(out, "w") as f:
        f.write(text)


if __name__ == "__main__":
    main(*sys.argv[1:])
