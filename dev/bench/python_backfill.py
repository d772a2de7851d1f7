#!/usr/bin/env python3
"""The seeds' approach (seed 003), faithfully but runnable: `helpers.scan` on the legacy index,
the tag rewrite cutover does, `helpers.parallel_bulk` into the target.

Kept from the seed's script: a match_all `scan` (size 1000, scroll 3m), a generator that
transforms hit by hit, `parallel_bulk` with the default thread_count (4), chunk_size 1000,
max_chunk_bytes 15 MiB, request_timeout 180, raise_on_error False, failures counted (the seed
sent them to statsd; there is no statsd here, so they are counted in process and printed), and
two clients of different majors, exactly as the seed paired `elasticsearch` (1.x, old cluster)
with `elasticsearch6` (new cluster):

  - `elasticsearch==7.17.12` reads the 7.17 legacy cluster;
  - `elasticsearch9==9.2.1` writes the 9.x target. The 7.17 client cannot: it checks the
    product with `GET /`, which these 9.x nodes do not serve (405).

Added, because the migration needs them and cutover does them too: `version=True` on the scan
and external versions on every write (`_version` of the hit, `version_type: external`), and the
hit's `_routing` carried over. The transform is cutover's tag rewrite (schema/src/rewrite*.rs):
`actions.tags` -> `tags: [{"keyToValue": escape(key) + ":" + value, "value": value}]`, key
escaping `\\` -> `\\\\` and `:` -> `\\:`, numbers and booleans as their JSON text, nulls
dropped, arrays flattened, nested objects flattened into dotted keys, sorted by (key, value),
deduplicated, always present; `actions` is dropped when the tag map was all it held.

  python_backfill.py copy SOURCE_URL TARGET_URL SOURCE_INDEX TARGET_INDEX   # the contender
  python_backfill.py dump SOURCE_URL SOURCE_INDEX DIR [DOCS_PER_FILE]
      # untimed helper for the bulk ceiling: writes the target-form bulk bodies (NDJSON, with
      # the same external versions and routing, no _index: POST them to /INDEX/_bulk) to
      # DIR/bulk-00000.ndjson, ...
  python_backfill.py upserts SOURCE_URL SOURCE_INDEX OUT
      # untimed helper for the replay benchmark: one `key<TAB>upsert envelope` line per legacy
      # document (for kafka's ConsoleProducer)
  python_backfill.py prepare SOURCE_URL SOURCE_INDEX DIR OUT
      # both of the above in one scan (what dev/bench.sh runs)

`copy` prints one JSON line: docs ok/failed, elapsed seconds, docs/s, and this process's CPU
seconds.
"""
import json
import os
import resource
import sys
import time

from elasticsearch import Elasticsearch
from elasticsearch.helpers import scan

QUERY_MATCH_ALL = {"query": {"match_all": {}}}
SCAN_SIZE = 1000
SCAN_SCROLL = "3m"
BULK_SIZE = 1000
THREAD_COUNT = 4
REQUEST_TIMEOUT = 180
MAX_CHUNK_BYTES = 15 * 1024 * 1024
RAISE_ON_ERROR = False

LEGACY_PATH = ("actions", "tags")
TARGET_FIELD = "tags"


def escape_key(key):
    return key.replace("\\", "\\\\").replace(":", "\\:")


def value_text(value):
    # Strings as is; numbers and booleans as their JSON text (`5`, `true`), what a keyword
    # legacy field indexed. (Floats would differ from serde_json's form only for exotic
    # spellings; the generated data has none.)
    if isinstance(value, str):
        return value
    return json.dumps(value)


def tag_entries(value, key, out):
    if value is None:
        return
    if isinstance(value, list):
        for v in value:
            tag_entries(v, key, out)
    elif isinstance(value, dict):
        for k, v in value.items():
            tag_entries(v, key + "." + k, out)
    else:
        out.append((key, value_text(value)))


def transform_source(source):
    """legacy _source -> target _source (cutover's TagRewrite::to_target for the default paths)."""
    parent = source.get(LEGACY_PATH[0])
    tags = None
    if parent is None:
        source.pop(LEGACY_PATH[0], None)
    elif isinstance(parent, dict):
        tags = parent.pop(LEGACY_PATH[1], None)
        if not parent:
            del source[LEGACY_PATH[0]]
    else:
        raise ValueError("tags are not an object")
    if TARGET_FIELD in source:
        raise ValueError("target field collision")
    pairs = []
    for key, value in (tags or {}).items():
        tag_entries(value, key, pairs)
    source[TARGET_FIELD] = [
        {"keyToValue": escape_key(k) + ":" + v, "value": v} for k, v in sorted(set(pairs))
    ]
    return source


def transform_item(item, index_target):
    action = {
        "_index": index_target,
        "_id": item["_id"],
        "_version": item["_version"],
        "_version_type": "external",
        "_source": transform_source(item["_source"]),
    }
    if "_routing" in item:
        action["_routing"] = item["_routing"]
    return action


def transformed_stream(es_source, index_source, index_target):
    for item in scan(es_source, query=QUERY_MATCH_ALL, index=index_source, size=SCAN_SIZE,
                     scroll=SCAN_SCROLL, version=True):
        yield transform_item(item, index_target)


def copy(source_url, target_url, index_source, index_target):
    # Imported here so `dump` and `upserts` need only the 7.x client.
    from elasticsearch9 import Elasticsearch as Elasticsearch9
    from elasticsearch9.helpers import parallel_bulk

    es_source = Elasticsearch(source_url, timeout=REQUEST_TIMEOUT)
    es_target = Elasticsearch9(target_url).options(request_timeout=REQUEST_TIMEOUT)
    ok_count = fail_count = 0
    first_error = None
    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    actions = transformed_stream(es_source, index_source, index_target)
    for ok, item in parallel_bulk(es_target, actions, thread_count=THREAD_COUNT, chunk_size=BULK_SIZE,
                                  max_chunk_bytes=MAX_CHUNK_BYTES, raise_on_error=RAISE_ON_ERROR):
        if ok:
            ok_count += 1
        else:
            fail_count += 1
            first_error = first_error or item
    elapsed = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(json.dumps({"ok": ok_count, "failed": fail_count, "elapsed_s": round(elapsed, 3),
                      "docs_per_s": round(ok_count / elapsed, 1), "client_cpu_s": round(cpu, 2),
                      "first_error": first_error}))
    return 0 if fail_count == 0 else 1


def upsert_line(hit, index_source):
    """`key<TAB>envelope`: the legacy document as the upsert command that would have written it."""
    env = {"op": "upsert", "id": hit["_id"], "index": index_source, "version": hit["_version"], "doc": hit["_source"]}
    if "_routing" in hit:
        env["routing"] = hit["_routing"]
    return hit["_id"] + "\t" + json.dumps(env, separators=(",", ":"), ensure_ascii=False) + "\n"


def bulk_lines(hit):
    """The target-form bulk action + source lines of one legacy hit (no _index)."""
    a = transform_item(hit, None)
    meta = {"_id": a["_id"], "version": a["_version"], "version_type": "external"}
    if "_routing" in a:
        meta["routing"] = a["_routing"]
    return (json.dumps({"index": meta}, separators=(",", ":")) + "\n"
            + json.dumps(a["_source"], separators=(",", ":"), ensure_ascii=False) + "\n")


def prepare(source_url, index_source, out_dir=None, upserts_out=None, per_file=BULK_SIZE):
    """One scan of the legacy index writing the bulk bodies (out_dir) and/or the upsert lines."""
    es_source = Elasticsearch(source_url, timeout=REQUEST_TIMEOUT)
    buf, n_docs, n_files, n_bytes = [], 0, 0, 0
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)

    def flush():
        nonlocal buf, n_files, n_bytes
        if buf:
            data = "".join(buf).encode()
            with open(os.path.join(out_dir, "bulk-%05d.ndjson" % n_files), "wb") as f:
                f.write(data)
            n_files += 1
            n_bytes += len(data)
            buf = []

    up = open(upserts_out, "w") if upserts_out else None
    for hit in scan(es_source, query=QUERY_MATCH_ALL, index=index_source, size=SCAN_SIZE,
                    scroll=SCAN_SCROLL, version=True):
        n_docs += 1
        if up:
            up.write(upsert_line(hit, index_source))
        if out_dir:
            buf.append(bulk_lines(hit))
            if n_docs % per_file == 0:
                flush()
    if out_dir:
        flush()
    if up:
        up.close()
    print(json.dumps({"docs": n_docs, "files": n_files, "bytes": n_bytes,
                      "upserts_bytes": os.path.getsize(upserts_out) if upserts_out else 0}))


def dump(source_url, index_source, out_dir, per_file=BULK_SIZE):
    prepare(source_url, index_source, out_dir, None, per_file)


def upserts(source_url, index_source, out):
    prepare(source_url, index_source, None, out)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "copy":
        sys.exit(copy(*args))
    elif cmd == "dump":
        dump(*args[:3], *(int(a) for a in args[3:]))
    elif cmd == "upserts":
        upserts(*args)
    elif cmd == "prepare":
        prepare(*args)
    else:
        sys.exit(__doc__)
