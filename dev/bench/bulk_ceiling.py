#!/usr/bin/env python3
"""Elasticsearch's own bulk ceiling: POST pre-encoded bulk bodies, nothing else.

  bulk_ceiling.py TARGET_URL INDEX DIR CONNECTIONS

Reads every DIR/bulk-*.ndjson into memory first (untimed), then times CONNECTIONS threads,
each with its own keep-alive HTTP/1.1 connection (http.client, standard library), taking the
next body from a shared queue and POSTing it to /INDEX/_bulk. The response is checked for
`"errors":false` in its first bytes (Elasticsearch writes that key first) and only parsed when
it is not, so the client does almost nothing but socket I/O (its CPU is printed to prove it).
Prints one JSON line: docs, elapsed seconds, docs/s, client CPU seconds; exits 1 on any item
error.
"""
import glob
import http.client
import json
import os
import queue
import resource
import sys
import threading
import time
from urllib.parse import urlsplit


def main(url, index, directory, connections):
    connections = int(connections)
    u = urlsplit(url)
    bodies = []
    for path in sorted(glob.glob(os.path.join(directory, "bulk-*.ndjson"))):
        with open(path, "rb") as f:
            data = f.read()
        bodies.append((data, data.count(b"\n") // 2))
    work = queue.SimpleQueue()
    for b in bodies:
        work.put(b)
    errors, done = [], [0]
    lock = threading.Lock()
    path = "/%s/_bulk" % index

    def worker():
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=180)
        while True:
            try:
                body, n = work.get_nowait()
            except queue.Empty:
                break
            conn.request("POST", path, body=body, headers={"Content-Type": "application/x-ndjson"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 200 or b'"errors":false' not in data[:64]:
                if resp.status != 200:
                    errors.append("HTTP %d: %s" % (resp.status, data[:300]))
                else:
                    items = json.loads(data)["items"]
                    bad = [i for i in items if list(i.values())[0]["status"] >= 300]
                    errors.append("%d item errors, first: %s" % (len(bad), bad[:1]))
                    n -= len(bad)
            with lock:
                done[0] += n
        conn.close()

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(json.dumps({"ok": done[0], "connections": connections, "requests": len(bodies),
                      "elapsed_s": round(elapsed, 3), "docs_per_s": round(done[0] / elapsed, 1),
                      "client_cpu_s": round(cpu, 2), "errors": errors[:3]}))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
