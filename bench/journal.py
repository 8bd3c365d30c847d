"""Journal benchmark: fleetlog's SQLite journal next to the eventsourcing library.

Run from the repository root::

    python bench/journal.py            # full run (1,000,000-event journal)
    python bench/journal.py --quick    # smaller numbers, for a smoke test

Prints one JSON object. Both libraries write to SQLite in WAL mode with
``synchronous=FULL`` (eventsourcing's SQLite pool switches to WAL and leaves SQLite's
default FULL; the run checks and reports it), one transaction and one fsync per
append. For eventsourcing the fair equivalent of one durable append is one
``insert_events`` call with one stored event on its application recorder: no aggregate
or mapper overhead, so the comparison favours eventsourcing slightly.
``raw_sqlite_append_eps`` is the ceiling on this disk: a bare INSERT + COMMIT per row.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from journal import NewEvent
from journal.sqlite import SQLiteJournal

PAYLOAD = {"host": "node-0042", "step": "drain", "attempt": 1, "ok": True}


def bench_raw_sqlite(path: str, n: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, stream TEXT, payload TEXT)")
    text = json.dumps(PAYLOAD)
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (stream, payload) VALUES (?, ?)", (f"s{i % 100}", text))
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - start
    conn.close()
    return n / elapsed


def bench_fleetlog_single(path: str, n: int) -> float:
    with SQLiteJournal(path) as j:
        events = [[NewEvent("step.started", dict(PAYLOAD, i=i))] for i in range(n)]
        for _ in range(50):  # warm up statement caches
            j.append("warm", [NewEvent("x")])
        start = time.perf_counter()
        for i in range(n):
            j.append(f"host/{i % 100}", events[i])
        elapsed = time.perf_counter() - start
        assert j.verify().ok
    return n / elapsed


def bench_fleetlog_group(path: str, threads: int, per_thread: int) -> tuple[float, float]:
    with SQLiteJournal(path) as j:
        barrier = threading.Barrier(threads + 1)

        def work(k: int) -> None:
            events = [NewEvent("step.started", dict(PAYLOAD, i=i)) for i in range(per_thread)]
            barrier.wait()
            for i in range(per_thread):
                j.append(f"host/{k}-{i % 20}", [events[i]])

        workers = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for w in workers:
            w.start()
        barrier.wait()
        start = time.perf_counter()
        for w in workers:
            w.join()
        elapsed = time.perf_counter() - start
        n = threads * per_thread
        batch = j.stats.appends / max(j.stats.commits, 1)
        assert j.head() == n and j.verify().ok
    return n / elapsed, batch


def bench_eventsourcing(path: str, n: int) -> tuple[float, str]:
    from eventsourcing.persistence import InfrastructureFactory, StoredEvent

    env = {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": path}
    factory: Any = InfrastructureFactory.construct(env)
    recorder = factory.application_recorder()
    recorder.create_table()
    state = json.dumps(PAYLOAD).encode()
    ids = [uuid.uuid4() for _ in range(100)]
    stored = [
        StoredEvent(
            originator_id=ids[i % 100],
            originator_version=i // 100 + 1,
            topic="bench:StepStarted",
            state=state,
        )
        for i in range(n)
    ]
    with factory.datastore.get_connection(commit=False) as conn:
        cursor = conn.cursor()
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
    start = time.perf_counter()
    for event in stored:
        recorder.insert_events([event])
    elapsed = time.perf_counter() - start
    factory.close()
    return n / elapsed, f"{mode}/{sync}"


def build_big(path: str, events: int, streams: int) -> tuple[SQLiteJournal, float]:
    j = SQLiteJournal(path)
    start = time.perf_counter()
    per_append = 5  # like a small transition: several events per append
    j.append_batch_unchecked(
        (
            (
                f"host/{(k // per_append) % streams:05d}",
                [NewEvent("step.succeeded", dict(PAYLOAD, i=k + m)) for m in range(per_append)],
            )
            for k in range(0, events, per_append)
        ),
        chunk=50_000,
    )
    return j, time.perf_counter() - start


def bench_replay(j: SQLiteJournal) -> tuple[float, float]:
    loads = json.loads
    start = time.perf_counter()
    n = 0
    for row in j.read_all_rows(columns=("seq", "stream", "version", "type", "payload")):
        loads(row[4])
        n += 1
    lean = time.perf_counter() - start
    start = time.perf_counter()
    m = sum(1 for _ in j.read_all())
    full = time.perf_counter() - start
    assert n == m == j.head()
    return lean, full


def bench_stream(j: SQLiteJournal, streams: int) -> float:
    names = [f"host/{i:05d}" for i in range(0, streams, max(streams // 50, 1))]
    for name in names[:5]:
        j.read_stream(name)
    start = time.perf_counter()
    for name in names:
        assert j.read_stream(name)
    return (time.perf_counter() - start) / len(names) * 1000


def bench_verify(j: SQLiteJournal) -> float:
    start = time.perf_counter()
    report = j.verify()
    elapsed = time.perf_counter() - start
    assert report.ok
    return report.events / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--dir", help="where to put the databases (default: a temp dir)")
    args = parser.parse_args()
    n = 1_000 if args.quick else 5_000
    big_events, big_streams = (100_000, 1_000) if args.quick else (1_000_000, 10_000)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="fleetlog-bench-") as tmp:
        d = Path(tmp)
        raw = bench_raw_sqlite(str(d / "raw.db"), n)
        single = bench_fleetlog_single(str(d / "single.db"), n)
        es, es_mode = bench_eventsourcing(str(d / "es.db"), n)
        group, batch = bench_fleetlog_group(str(d / "group.db"), 8, n // 2)
        big, build_s = build_big(str(d / "big.db"), big_events, big_streams)
        with big:
            lean, full = bench_replay(big)
            stream_ms = bench_stream(big, big_streams)
            verify = bench_verify(big)
    result = {
        "fleetlog_append_eps": round(single),
        "eventsourcing_append_eps": round(es),
        "fleetlog_vs_eventsourcing": round(single / es, 2),
        "raw_sqlite_append_eps": round(raw),
        "group_append_eps": round(group),
        "group_threads": 8,
        "group_mean_batch": round(batch, 2),
        "replay_events": big_events,
        "replay_streams": big_streams,
        "build_s": round(build_s, 2),
        "replay_1m_s": round(lean, 3),
        "replay_1m_events_s": round(full, 3),
        "stream_state_ms": round(stream_ms, 3),
        "verify_eps": round(verify),
        "eventsourcing_mode": es_mode,
        "fleetlog_mode": "wal/FULL",
        "appends_measured": n,
        "quick": args.quick,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
