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
``raw_sqlite_append_eps`` is the ceiling on this disk: a bare INSERT + COMMIT per row;
``schema_sqlite_append_eps`` the same on fleetlog's own table, indexes and row format
(the ceiling for any append that keeps the journal's schema);
``disk_fdatasync_per_s`` is the disk alone (a 4 KiB overwrite + ``fdatasync``).

Durable appends are bound by fsync latency, which on a shared VM drifts by 10x within
seconds. So the single-append contenders (the disk alone, bare SQLite, fleetlog,
eventsourcing) run side by side, interleaved in blocks of ``--block`` appends (default
100, rotating who goes first), and each rate is its appends over its own summed time:
a slow spell of the disk lands on all of them alike, and the ratios stay meaningful
even when the absolute numbers do not. Every contender first does ``WARM`` untimed
appends. With ``T`` threads each waiting for its own durable append, no design can
exceed ``T x raw_sqlite_append_eps`` (every append waits for at least one fsync):
``group_ceiling_eps``; the group measure runs ``--rounds`` times (median).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetlog.journal import Event, NewEvent
from fleetlog.journal.sqlite import SQLiteJournal

PAYLOAD = {"host": "node-0042", "step": "drain", "attempt": 1, "ok": True}
# Untimed durable appends before each timed single-append run, for every contender
# alike: enough for SQLite to fill the WAL (1,000 pages), checkpoint, and start reusing
# the file. A fresh WAL grows on every commit, and an fdatasync that also has to extend
# the file costs more than one that overwrites; a long-lived journal is in the latter
# state, so that is the state measured.
WARM = 1_100


def _remove_db(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path + suffix)


Append = Callable[[int], None]


def fdatasync_contender(path: str) -> tuple[Append, Callable[[], None]]:
    """The disk alone: overwrite one 4 KiB block in place and fdatasync it."""
    fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    block = b"x" * 4096
    os.write(fd, block)
    os.fsync(fd)

    def one(i: int) -> None:
        os.pwrite(fd, block, 0)
        os.fdatasync(fd)

    def close() -> None:
        os.close(fd)
        os.unlink(path)

    return one, close


def raw_sqlite_contender(path: str) -> tuple[Append, Callable[[], None]]:
    """Bare SQLite: one INSERT + COMMIT per row, no index besides the rowid."""
    _remove_db(path)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, stream TEXT, payload TEXT)")
    text = json.dumps(PAYLOAD)

    def one(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (stream, payload) VALUES (?, ?)", (f"s{i % 100}", text))
        conn.execute("COMMIT")

    return one, conn.close


def schema_sqlite_contender(path: str, n: int) -> tuple[Append, Callable[[], None]]:
    """Bare SQLite on fleetlog's own schema: the same table, indexes and triggers
    (created by ``SQLiteJournal``), and rows as fleetlog stores them (ids, times, hashes
    computed ahead, untimed), one INSERT + COMMIT each. What is left between this and
    ``fleetlog`` is fleetlog's own work per append; what is between this and
    ``raw_sqlite`` is the schema's (three indexes, a 600-byte row: more pages per
    commit), which the journal's guarantees need (unique event ids, unique stream
    versions, idempotent submits)."""
    _remove_db(path)
    SQLiteJournal(path).close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    rows = []
    prev = "0" * 64
    for i in range(n + WARM):
        payload = json.dumps(dict(PAYLOAD, i=i), sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(f"{prev}{i}{payload}".encode()).hexdigest()
        at = f"2026-01-01T00:00:{i // 1_000_000:02d}.{i % 1_000_000:06d}+00:00"
        rows.append(
            (
                i + 1,
                str(uuid.uuid4()),
                f"host/{i % 100}",
                i // 100 + 1,
                "step.started",
                None,
                None,
                None,
                "bench",
                "bench-host",
                at,
                payload,
                prev,
                digest,
            )
        )
        prev = digest
    insert = f"INSERT INTO events ({', '.join(Event.COLUMNS)}) VALUES ({', '.join('?' * 14)})"

    def one(i: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(insert, rows[i])
        conn.execute("COMMIT")

    return one, conn.close


def fleetlog_contender(path: str, n: int) -> tuple[Append, Callable[[], None]]:
    _remove_db(path)
    j = SQLiteJournal(path)
    events = [[NewEvent("step.started", dict(PAYLOAD, i=i))] for i in range(n + WARM)]

    def one(i: int) -> None:
        j.append(f"host/{i % 100}", events[i])

    def close() -> None:
        assert j.verify().ok
        j.close()

    return one, close


def eventsourcing_contender(path: str, n: int) -> tuple[Append, Callable[[], None], str]:
    """One ``insert_events`` call with one stored event on the application recorder."""
    from eventsourcing.persistence import InfrastructureFactory, StoredEvent

    _remove_db(path)
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
        for i in range(n + WARM)
    ]
    with factory.datastore.get_connection(commit=False) as conn:
        cursor = conn.cursor()
        cursor.execute("PRAGMA journal_mode")
        mode = cursor.fetchone()[0]
        cursor.execute("PRAGMA synchronous")
        sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]

    def one(i: int) -> None:
        recorder.insert_events([stored[i]])

    return one, factory.close, f"{mode}/{sync}"


def bench_single(d: Path, n: int, block: int) -> tuple[dict[str, float], dict[str, float], str]:
    """Durable single appends of every contender, interleaved in blocks of ``block``
    appends (rotating who goes first), so a slow spell of the disk hits all of them
    alike. Returns (appends/s over the whole run, worst block/best block spread), and
    eventsourcing's journal mode."""
    es_one, es_close, es_mode = eventsourcing_contender(str(d / "es.db"), n)
    contenders: dict[str, tuple[Append, Callable[[], None]]] = {
        "fdatasync": fdatasync_contender(str(d / "fsync.bin")),
        "raw_sqlite": raw_sqlite_contender(str(d / "raw.db")),
        "schema_sqlite": schema_sqlite_contender(str(d / "schema.db"), n),
        "fleetlog": fleetlog_contender(str(d / "single.db"), n),
        "eventsourcing": (es_one, es_close),
    }
    names = list(contenders)
    spent = dict.fromkeys(names, 0.0)
    for name in names:  # WARM untimed appends each (see WARM)
        one = contenders[name][0]
        for i in range(WARM):
            one(i)
    clock = time.perf_counter
    for k, first in enumerate(range(WARM, WARM + n, block)):
        last = min(first + block, WARM + n)
        for name in names[k % len(names) :] + names[: k % len(names)]:
            one = contenders[name][0]
            start = clock()
            for i in range(first, last):
                one(i)
            spent[name] += clock() - start
    for _one, close in contenders.values():
        close()
    return {name: n / spent[name] for name in names}, spent, es_mode


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


def build_fleet(path: str, resources: int) -> tuple[SQLiteJournal, int]:
    """A journal shaped like real use: kvm_host resources, each created and then taken
    through four transitions of ten steps (started/succeeded pairs), ~93 events each."""
    j = SQLiteJournal(path)
    cycle = [
        ("validate", "discovered", "ready"),
        ("configure_exascale", "ready", "exascale_ready"),
        ("unconfigure_exascale", "exascale_ready", "ready"),
        ("configure_exascale", "ready", "exascale_ready"),
    ]

    def events(r: int) -> list[NewEvent]:
        out = [
            NewEvent(
                "resource.created",
                {"kind": "kvm_host", "state": "discovered", "params": {"host": f"n{r}"}},
            )
        ]
        for trigger, src, dst in cycle:
            out.append(
                NewEvent(
                    "transition.started",
                    {"trigger": trigger, "from": src, "to": dst, "plan": []},
                    correlation_id=f"t{r}{trigger}{src}",
                )
            )
            for k in range(10):
                step = {"step": f"s{k}", "attempt": 1}
                out.append(NewEvent("step.started", step))
                out.append(NewEvent("step.succeeded", dict(step, output="ok")))
            out.append(
                NewEvent("transition.completed", {"trigger": trigger, "from": src, "to": dst})
            )
        return out

    j.append_batch_unchecked(
        ((f"kvm_host/n{r}", events(r)) for r in range(resources)), chunk=50_000
    )
    return j, j.head()


def bench_engine_replay(j: SQLiteJournal, resources: int) -> tuple[float, float]:
    """The engine's own fold (checks included): the whole fleet, and one resource."""
    from fleetlog.engine.model import load_registry, load_resource, replay_all

    registry = load_registry()
    start = time.perf_counter()
    fleet = replay_all(j, registry)
    whole = time.perf_counter() - start
    assert len(fleet) == resources
    assert all(r.state == "exascale_ready" for r in fleet.values())
    names = [f"kvm_host/n{i}" for i in range(0, resources, max(resources // 50, 1))]
    start = time.perf_counter()
    for name in names:
        rec = load_resource(j, registry, name, use_snapshots=False)
        assert rec is not None and rec.state == "exascale_ready"
    one = (time.perf_counter() - start) / len(names) * 1000
    return whole, one


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "not installed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run")
    parser.add_argument("--dir", help="where to put the databases (default: a temp dir)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="runs of the group-commit measure (median)"
    )
    parser.add_argument(
        "--block", type=int, default=100, help="appends per interleaved block (single appends)"
    )
    args = parser.parse_args()
    n = 1_000 if args.quick else 5_000
    threads = 8
    big_events, big_streams = (100_000, 1_000) if args.quick else (1_000_000, 10_000)
    med = statistics.median
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="fleetlog-bench-") as tmp:
        d = Path(tmp)
        rates, _spent, es_mode = bench_single(d, n, args.block)
        group, batch = [], []
        for _ in range(max(args.rounds, 1)):
            g, b = bench_fleetlog_group(str(d / "group.db"), threads, n // 2)
            _remove_db(str(d / "group.db"))
            group.append(g)
            batch.append(b)
        big, build_s = build_big(str(d / "big.db"), big_events, big_streams)
        with big:
            lean, full = bench_replay(big)
            stream_ms = bench_stream(big, big_streams)
            verify = bench_verify(big)
        fleet_resources = big_events // 93
        fleet, fleet_events = build_fleet(str(d / "fleet.db"), fleet_resources)
        with fleet:
            engine_replay_s, resource_state_ms = bench_engine_replay(fleet, fleet_resources)
    single, es, raw = rates["fleetlog"], rates["eventsourcing"], rates["raw_sqlite"]
    group_ceiling = threads * raw
    result = {
        "fleetlog_append_eps": round(single),
        "eventsourcing_append_eps": round(es),
        "fleetlog_vs_eventsourcing": round(single / es, 2),
        "raw_sqlite_append_eps": round(raw),
        "fleetlog_vs_raw_sqlite": round(single / raw, 2),
        "eventsourcing_vs_raw_sqlite": round(es / raw, 2),
        "schema_sqlite_append_eps": round(rates["schema_sqlite"]),
        "fleetlog_vs_schema_sqlite": round(single / rates["schema_sqlite"], 2),
        "schema_sqlite_vs_raw_sqlite": round(rates["schema_sqlite"] / raw, 2),
        "disk_fdatasync_per_s": round(rates["fdatasync"]),
        "group_append_eps": round(med(group)),
        "group_threads": threads,
        "group_mean_batch": round(med(batch), 2),
        "group_ceiling_eps": round(group_ceiling),
        "group_vs_ceiling": round(med(group) / group_ceiling, 2),
        "group_rounds": [round(x) for x in group],
        "load_avg_1m": round(os.getloadavg()[0], 2),
        "replay_events": big_events,
        "replay_streams": big_streams,
        "build_s": round(build_s, 2),
        "replay_1m_s": round(lean, 3),
        "replay_1m_events_s": round(full, 3),
        "stream_state_ms": round(stream_ms, 3),
        "engine_replay_events": fleet_events,
        "engine_replay_resources": fleet_resources,
        "engine_replay_s": round(engine_replay_s, 3),
        "engine_resource_state_ms": round(resource_state_ms, 3),
        "verify_eps": round(verify),
        "eventsourcing_mode": es_mode,
        "fleetlog_mode": "wal/FULL",
        "appends_measured": n,
        "quick": args.quick,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "eventsourcing": _version("eventsourcing"),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
