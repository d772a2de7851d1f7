#!/usr/bin/env python3
"""The seeds' approach for replay: the indexer's Python peer.

  python_replay.py BROKERS TOPIC GROUP TARGET_URL TARGET_INDEX

A `confluent-kafka` consumer in a new group (`auto.offset.reset: earliest`, so it starts from
offset zero) feeds `elasticsearch9.helpers.parallel_bulk`: every `upsert` envelope becomes an
index action with the command's version as an external version (`version_type: external`) and
its routing, its legacy `doc` rewritten to the target form by the same tag rewrite as
python_backfill.py (cutover's TagRewrite::to_target); a `delete` becomes a versioned delete.
(The bench's replay topic holds only upserts; a `merge` needs a read of the legacy document,
which this peer does not do, so it stops on one rather than write something wrong.)

Tuned, within the approach: the consumer is polled with `consume(num_messages=CONSUME_BATCH)`
rather than one `poll()` per message, with large fetches (`fetch.min.bytes` 1 MiB,
`max.partition.fetch.bytes` 8 MiB, a deep pre-fetch queue); `parallel_bulk` gets THREADS
threads (2 cores: more threads only contend for the GIL) and chunks of CHUNK actions;
version conflicts (409: the target already has that version or a newer one) count as done, as
they do for the indexer. (A sweep on 64k documents, on a busy 2-core machine: 8 threads were
slower than 4; 2 or 4 threads, chunks of 500, 1000 or 2000 and consume batches of 2000 or 5000
were within the noise of each other, so the chunk matches the indexer's batch, 2000.) Offsets are
committed as the bulk results come back (`parallel_bulk` yields them in input order), asynchronously, and once more synchronously at the end: nothing
is committed before its write was acknowledged.

It stops when caught up: every partition's consumed position has reached the high watermark
read when it started. Prints one JSON line: docs ok/failed, elapsed seconds, docs/s, client CPU
seconds. Environment: REPLAY_THREADS (default 4), REPLAY_CHUNK (default 2000),
REPLAY_CONSUME_BATCH (default 2000).
"""
import json
import os
import resource
import sys
import time
from collections import deque

from confluent_kafka import Consumer, TopicPartition
from elasticsearch9 import Elasticsearch
from elasticsearch9.helpers import parallel_bulk

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from python_backfill import transform_source  # noqa: E402  (the same tag rewrite)

THREADS = int(os.environ.get("REPLAY_THREADS", "4"))
CHUNK = int(os.environ.get("REPLAY_CHUNK", "2000"))
CONSUME_BATCH = int(os.environ.get("REPLAY_CONSUME_BATCH", "2000"))
REQUEST_TIMEOUT = 180
MAX_CHUNK_BYTES = 15 * 1024 * 1024


def main(brokers, topic, group, target_url, target_index):
    consumer = Consumer({
        "bootstrap.servers": brokers,
        "group.id": group,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
        "fetch.min.bytes": 1 << 20,
        "fetch.wait.max.ms": 100,
        "max.partition.fetch.bytes": 8 << 20,
        "fetch.max.bytes": 64 << 20,
        "queued.max.messages.kbytes": 256 << 10,
    })
    parts = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    high = {}
    for p in parts:
        _, hi = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
        if hi > 0:
            high[p] = hi
    es = Elasticsearch(target_url).options(request_timeout=REQUEST_TIMEOUT)
    consumer.subscribe([topic])

    marks = deque()  # (actions yielded so far, {partition: next offset}) at each consumed batch's end
    position = {}

    def actions():
        n = 0
        while any(position.get(p, 0) < hi for p, hi in high.items()):
            msgs = consumer.consume(num_messages=CONSUME_BATCH, timeout=1.0)
            for m in msgs:
                if m.error():
                    raise RuntimeError("kafka: %s" % m.error())
                env = json.loads(m.value())
                op = env["op"]
                a = {"_index": target_index, "_id": env["id"], "_version": env["version"], "_version_type": "external"}
                if env.get("routing") is not None:
                    a["_routing"] = env["routing"]
                if op == "upsert":
                    a["_source"] = transform_source(env["doc"])
                elif op == "delete":
                    a["_op_type"] = "delete"
                else:
                    raise RuntimeError("op %r needs a read of the legacy document; this peer replays upserts and deletes" % op)
                position[m.partition()] = m.offset() + 1
                n += 1
                yield a
            if msgs:
                marks.append((n, dict(position)))

    ok = failed = done = 0
    first_error = None

    def commit(pos, asynchronous):
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in pos.items()], asynchronous=asynchronous)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.monotonic()
    for good, item in parallel_bulk(es, actions(), thread_count=THREADS, chunk_size=CHUNK,
                                    max_chunk_bytes=MAX_CHUNK_BYTES, raise_on_error=False):
        done += 1
        if good or list(item.values())[0].get("status") == 409:
            ok += 1
        else:
            failed += 1
            first_error = first_error or item
        while marks and marks[0][0] <= done:
            _, pos = marks.popleft()
            if failed == 0:
                commit(pos, True)
    if failed == 0 and position:
        commit(position, False)
    elapsed = time.monotonic() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    consumer.close()
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    print(json.dumps({"ok": ok, "failed": failed, "elapsed_s": round(elapsed, 3),
                      "docs_per_s": round(ok / elapsed, 1) if elapsed else None, "client_cpu_s": round(cpu, 2),
                      "threads": THREADS, "chunk": CHUNK, "consume_batch": CONSUME_BATCH, "first_error": first_error}))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
