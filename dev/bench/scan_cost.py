#!/usr/bin/env python3
"""The legacy's full scan alone: read every document of an index, discard it.

  scan_cost.py LEGACY_URL INDEX FORM SLICES [SIZE]

Measures what one full read costs the legacy cluster, for the copy limit (run under
measure.py, which takes the legacy node's CPU-seconds). FORM is one of the reads cutover can
use on Elasticsearch 7.17:

  pit-shard-doc   PIT + search_after sorted on `_shard_doc` (the cheapest PIT order: Lucene
                  doc order within each shard)
  pit-seqno       PIT + search_after sorted on `[_seq_no, _shard_doc]` (what `backfill copy`
                  sends today: resumable by `_seq_no`)
  scroll-doc      sliced scroll sorted on `_doc`

Every form reads SLICES slices in parallel threads (one PIT or scroll per slice; PIT slices cut
on `_seq_no` as backfill cuts them, which is whole shards when SLICES <= shards; scroll slices
on the default field), pages of SIZE (default 1000) with `version: true`,
`track_total_hits: false` (PIT only: a scroll refuses it), and `filter_path` trimming the
response to ids, sources, versions, routing and sort values (plus the cursor). The client does as little as it can: one keep-alive
http.client connection per slice, hits counted by a byte search, the last sort values cut from
the end of the body; it never decodes a page. Prints one JSON line: docs, pages, elapsed
seconds, client CPU seconds, the index's query and fetch times during the scan (from its
`_stats/search`, per-index figures that other users of the node do not inflate); exits 1 when the count read differs from the index's `_count`.
"""
import http.client
import json
import re
import resource
import sys
import threading
import time
from urllib.parse import urlsplit

FILTER = "filter_path=pit_id,_scroll_id,_shards.failed,hits.hits._id,hits.hits._source,hits.hits._version,hits.hits._routing,hits.hits.sort"
SORT_TAIL = re.compile(rb'"sort":(\[[^\]]*\])\}\]\}\}?$')


class Conn:
    def __init__(self, url):
        u = urlsplit(url)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=300)

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        self.c.request(method, path, body=data, headers={"Content-Type": "application/json"})
        r = self.c.getresponse()
        out = r.read()
        if r.status != 200:
            raise RuntimeError("%s %s: HTTP %d %s" % (method, path, r.status, out[:300]))
        return out


def check(page):
    if b'"failed":0' not in page[:200] and b'"_shards"' in page[:200]:
        raise RuntimeError("shard failures: %s" % page[:300])


def read_pit(url, index, form, slice_id, slices, size, counts):
    c = Conn(url)
    pit = json.loads(c.call("POST", "/%s/_pit?keep_alive=2m" % index))["id"]
    sort = [{"_shard_doc": "asc"}] if form == "pit-shard-doc" else \
        [{"_seq_no": {"order": "asc", "unmapped_type": "long"}}, {"_shard_doc": "asc"}]
    body = {"size": size, "version": True, "track_total_hits": False, "sort": sort,
            "pit": {"id": pit, "keep_alive": "2m"}}
    if slices > 1:
        body["slice"] = {"field": "_seq_no", "id": slice_id, "max": slices}
    n = pages = 0
    while True:
        page = c.call("POST", "/_search?" + FILTER, body)
        check(page)
        k = page.count(b'"_id":')
        if k == 0:
            break
        n += k
        pages += 1
        m = SORT_TAIL.search(page)
        if not m:
            raise RuntimeError("no sort values at the end of the page: %s" % page[-300:])
        body["search_after"] = json.loads(m.group(1))
        # The PIT id may change between pages: cut it from the head of the body.
        pm = re.match(rb'\{"pit_id":"([^"]+)"', page)
        if pm:
            body["pit"]["id"] = pm.group(1).decode()
    c.call("DELETE", "/_pit", {"id": body["pit"]["id"]})
    counts[slice_id] = (n, pages)


def read_scroll(url, index, slice_id, slices, size, counts):
    c = Conn(url)
    body = {"size": size, "version": True, "sort": ["_doc"]}  # track_total_hits: false is refused with a scroll
    if slices > 1:
        body["slice"] = {"id": slice_id, "max": slices}
    page = c.call("POST", "/%s/_search?scroll=2m&%s" % (index, FILTER), body)
    n = pages = 0
    sid = None
    while True:
        check(page)
        sid = re.match(rb'\{"_scroll_id":"([^"]+)"', page).group(1).decode()
        k = page.count(b'"_id":')
        if k == 0:
            break
        n += k
        pages += 1
        page = c.call("POST", "/_search/scroll?" + FILTER, {"scroll": "2m", "scroll_id": sid})
    c.call("DELETE", "/_search/scroll", {"scroll_id": [sid]})
    counts[slice_id] = (n, pages)


def search_ms(url, index):
    """The index's own query and fetch times (ms, summed over shards): what this scan cost the
    legacy node in search work, unlike its CPU unaffected by other users of the node."""
    t = json.loads(Conn(url).call("GET", "/%s/_stats/search" % index))["_all"]["total"]["search"]
    return t["query_time_in_millis"], t["fetch_time_in_millis"]


def main(url, index, form, slices, size="1000"):
    slices, size = int(slices), int(size)
    if form not in ("pit-shard-doc", "pit-seqno", "scroll-doc"):
        sys.exit(__doc__)
    expected = json.loads(Conn(url).call("GET", "/%s/_count" % index))["count"]
    search0 = search_ms(url, index)
    counts = {}
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    errors = []

    def run(i):
        try:
            if form == "scroll-doc":
                read_scroll(url, index, i, slices, size, counts)
            else:
                read_pit(url, index, form, i, slices, size, counts)
        except Exception as e:  # reported below, the run fails
            errors.append("slice %d: %s" % (i, e))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(slices)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    docs = sum(n for n, _ in counts.values())
    search1 = search_ms(url, index)
    print(json.dumps({"form": form, "ok": docs, "expected": expected, "pages": sum(p for _, p in counts.values()),
                      "slices": slices, "elapsed_s": round(elapsed, 3), "docs_per_s": round(docs / elapsed, 1),
                      "client_cpu_s": round(cpu, 2),
                      "index_search_ms": sum(search1) - sum(search0),
                      "index_query_ms": search1[0] - search0[0], "index_fetch_ms": search1[1] - search0[1],
                      "errors": errors[:3]}))
    return 0 if docs == expected and not errors else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
