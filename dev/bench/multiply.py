#!/usr/bin/env python3
"""Derives the big-phase data from the default-size data, K times over, under new ids.

  multiply.py index LEGACY_URL SOURCE UPSERTS.tsv DEST K   # the legacy documents, K copies
  multiply.py upserts IN.tsv OUT.tsv DEST K                 # the upsert envelopes, the same copies

Copy k (1..K) of every document of SOURCE is written to DEST as `<id>~k` with its routing and
its version (`version_type: external`), into an index created with SOURCE's shards and mappings
(the documents come from the upsert envelopes, which hold each legacy document's `_source`,
`_version` and routing as scanned): the big index has the same shape (tag keys, sizes,
routing, versions) as the default one at K times the size, in a minute or two instead of the
ten a legacy-indexer simulation of 1M documents takes. (The integ-test-zip servers have no
`_reindex` module.) The envelopes get the same ids and name DEST, so the indexer replays
exactly DEST's documents.
"""
import concurrent.futures
import json
import sys
import urllib.request


def call(method, url, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=3600) as r:
        return json.load(r)


def index(url, source, tsv, dest, k):
    definition = call("GET", "%s/%s" % (url, source))[source]
    settings = definition["settings"]["index"]
    call("PUT", "%s/%s" % (url, dest), {
        "settings": {"number_of_shards": settings["number_of_shards"], "number_of_replicas": 0,
                     "refresh_interval": "-1"},
        "mappings": definition["mappings"],
    })

    def bodies():
        with open(tsv) as f:
            envs = [json.loads(line.split("\t", 1)[1]) for line in f]
        for n in range(1, k + 1):
            lines = []
            for env in envs:
                meta = {"_index": dest, "_id": "%s~%d" % (env["id"], n), "version": env["version"], "version_type": "external"}
                if "routing" in env:
                    meta["routing"] = env["routing"]
                lines.append(json.dumps({"index": meta}))
                lines.append(json.dumps(env["doc"], separators=(",", ":"), ensure_ascii=False))
                if len(lines) >= 4000:
                    yield ("\n".join(lines) + "\n").encode()
                    lines = []
            if lines:
                yield ("\n".join(lines) + "\n").encode()

    def post(body):
        req = urllib.request.Request(url + "/_bulk?filter_path=errors,items.*.error", data=body, method="POST",
                                     headers={"Content-Type": "application/x-ndjson"})
        with urllib.request.urlopen(req, timeout=600) as r:
            answer = json.load(r)
        if answer.get("errors"):
            sys.exit("bulk into %s: %s" % (dest, json.dumps(answer["items"][:3])))

    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        for _ in pool.map(post, bodies()):
            pass
    call("PUT", "%s/%s/_settings" % (url, dest), {"index": {"refresh_interval": settings.get("refresh_interval", "1s")}})
    call("POST", "%s/%s/_refresh" % (url, dest))


def upserts(src, out, dest, k):
    with open(src) as f, open(out, "w") as o:
        lines = f.readlines()
        for n in range(1, k + 1):
            for line in lines:
                key, env = line.rstrip("\n").split("\t", 1)
                env = json.loads(env)
                env["id"] = "%s~%d" % (env["id"], n)
                env["index"] = dest
                o.write("%s~%d\t%s\n" % (key, n, json.dumps(env, separators=(",", ":"), ensure_ascii=False)))


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "index":
        index(args[0], args[1], args[2], args[3], int(args[4]))
    elif cmd == "upserts":
        upserts(args[0], args[1], args[2], int(args[3]))
    else:
        sys.exit(__doc__)
