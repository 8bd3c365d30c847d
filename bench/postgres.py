"""PostgreSQL benchmark: append rates and the 1,000-node fan-out run by 1, 2, 4 and 8
``fleetlog worker`` processes, each beside the same measure on SQLite.

Run from the repository root (PostgreSQL at ``FLEETLOG_BENCH_PG``, default
``postgresql://postgres@127.0.0.1:5432/test``; every run uses its own schema, dropped
afterwards)::

    python bench/postgres.py            # 1,000 resources x 10 steps x 20 ms
    python bench/postgres.py --quick    # 100 resources, fewer appends

Appends: ``append_eps`` is one thread doing durable single-event appends (SQLite in WAL
with ``synchronous=FULL``; PostgreSQL with its defaults, ``synchronous_commit=on``), and
``group_eps`` is 8 threads doing the same at once (group commit on both).

Fan-out: the machine of ``bench/fanout.py`` (``box``, transition ``go``: ten idempotent
``run "touch_flag sK"`` steps, 20 ms of simulated latency per call in a sim world file
shared by every worker). ``W`` workers (``fleetlog worker --parallel P``, separate
processes) are started and left idle (waiting on LISTEN/NOTIFY on PostgreSQL, polling on
SQLite); then the resources are submitted in-process as ``fleetlog fire --submit`` does,
and the clock runs from the first submission to the last ``transition.completed``.
``ideal_s = resources x steps x latency / (W x P)``; ``tps`` is transitions per second
and ``speedup`` the throughput over one worker's on the same backend. The load average
is recorded before and after each measure: on a shared machine a busy neighbour shows
there, and the run should be repeated.

Prints one JSON object on stdout and a table on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.fanout import machine_text  # noqa: E402
from fleetlog.journal import NewEvent, open_journal  # noqa: E402
from fleetlog.journal.base import Journal  # noqa: E402

PG = os.environ.get("FLEETLOG_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")
PAYLOAD = {"host": "node-0042", "step": "drain", "attempt": 1, "ok": True}
CLI = [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]


class Backend:
    """A fresh journal URL per use, and its cleanup."""

    def __init__(self, name: str, tmp: Path) -> None:
        self.name = name
        self.tmp = tmp
        self.schemas: list[str] = []

    def url(self) -> str:
        if self.name == "sqlite":
            return str(self.tmp / f"j{uuid.uuid4().hex[:8]}.db")
        schema = f"fl_bench_{uuid.uuid4().hex[:10]}"
        self.schemas.append(schema)
        return f"{PG}{'&' if '?' in PG else '?'}schema={schema}"

    def cleanup(self) -> None:
        if not self.schemas:
            return
        import psycopg

        with psycopg.connect(PG, autocommit=True) as conn:
            for schema in self.schemas:
                conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


# -- appends ------------------------------------------------------------------------------


def append_rates(backend: Backend, n: int, threads: int = 8) -> dict[str, float]:
    with open_journal(backend.url(), actor="bench") as j:
        for i in range(50):  # warm-up
            j.append(f"warm/{i % 10}", [NewEvent("step.started", PAYLOAD)])
        t0 = time.perf_counter()
        for i in range(n):
            j.append(f"node/{i % 100}", [NewEvent("step.started", PAYLOAD)])
        single = n / (time.perf_counter() - t0)
        per_thread = n // threads
        barrier = threading.Barrier(threads + 1)

        def work(k: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                j.append(f"group/{k}/{i % 10}", [NewEvent("step.started", PAYLOAD)])

        pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for t in pool:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in pool:
            t.join()
        group = per_thread * threads / (time.perf_counter() - t0)
        assert j.verify().ok
    return {"append_eps": round(single), "group_eps": round(group)}


# -- fan-out through workers ---------------------------------------------------------------


def _completed(journal: Journal, after: int) -> tuple[int, int]:
    """(transitions completed after seq ``after``, the last seq looked at)."""
    n = 0
    last = after
    for (seq,) in journal.read_all_rows(
        from_seq=after, types=("transition.completed",), columns=("seq",)
    ):
        n += 1
        last = seq
    return n, max(last, after)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cpu_of(pids: list[int]) -> float:
    """CPU seconds the running processes ``pids`` used so far (Linux ``/proc``; 0 where
    it cannot be read)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def fanout(
    backend: Backend,
    workers: int,
    parallel: int,
    resources: int,
    steps: int,
    latency_ms: float,
    machines: Path,
) -> dict[str, Any]:
    from fleetlog.engine.backends.sim import SimBackend
    from fleetlog.engine.model import load_registry
    from fleetlog.engine.ops import created_event, submit_many
    from fleetlog.engine.runtime import Runner

    url = backend.url()
    world = str(backend.tmp / f"world{uuid.uuid4().hex[:8]}.sim")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    env.update(
        PYTHONPATH=str(ROOT),
        FLEETLOG_MACHINES=str(machines),
        FLEETLOG_SIM_WORLD=world,
        FLEETLOG_JOURNAL=url,
        PYTHONFAULTHANDLER="1",
    )
    os.environ["FLEETLOG_MACHINES"] = str(machines)
    registry = load_registry()
    sim = SimBackend(world, latency_ms=latency_ms)
    journal = open_journal(url, actor="bench")
    ids = [f"box/r{i}" for i in range(1, resources + 1)]
    journal.append_batch_unchecked(  # type: ignore[attr-defined]
        (rid, [created_event(registry, rid, {})]) for rid in ids
    )
    cpu0 = _children_cpu()
    procs = [
        subprocess.Popen(
            [*CLI, "worker", "--parallel", str(parallel)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    try:
        # Let them start and go idle: start-up is not what is measured.
        time.sleep(2.0 + 0.75 * workers)
        runner = Runner(journal, registry, sim)
        done, last = 0, journal.head()
        busy0 = _cpu_of([p.pid for p in procs])
        t0 = time.perf_counter()
        submit_many(runner, ids, "go", {})
        submit_s = time.perf_counter() - t0
        while done < resources:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError(
                    "a worker exited: "
                    + "".join(p.stderr.read() for p in procs if p.stderr and p.poll() is not None)
                )
            got, last = _completed(journal, last)
            done += got
            if done < resources:
                journal.wait_for_append(journal.head(), timeout=0.05)
        elapsed = time.perf_counter() - t0
        busy = _cpu_of([p.pid for p in procs]) - busy0
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.communicate(timeout=120)
            except subprocess.TimeoutExpired:
                p.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: its threads' stacks
                print(p.communicate()[1][-20000:], file=sys.stderr)
                raise
    worker_cpu = _children_cpu() - cpu0
    events = journal.head()
    ok = journal.verify().ok
    journal.close()
    sim.close()
    ideal = resources * steps * latency_ms / 1000 / (workers * parallel)
    return {
        "workers": workers,
        "parallel_each": parallel,
        "ideal_s": round(ideal, 3),
        "fleetlog_s": round(elapsed, 3),
        "tps": round(resources / elapsed, 1),
        "load": round(os.getloadavg()[0], 2),
        "ratio": round(elapsed / ideal, 2),
        "submit_s": round(submit_s, 3),
        "events": events,
        "events_per_s": round(events / elapsed),
        # CPU of the workers during the fan-out, and over their whole life (start-up,
        # idling and stopping included).
        "worker_cpu_ms_per_transition": round(busy * 1000 / resources, 2),
        "worker_cpu_ms_per_transition_with_startup": round(worker_cpu * 1000 / resources, 2),
        "verified": ok,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--resources", type=int, default=None)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallel", type=int, default=32, help="per worker")
    parser.add_argument("--workers", default="1,2,4,8")
    parser.add_argument("--backends", default="sqlite,postgresql")
    args = parser.parse_args()
    resources = args.resources or (100 if args.quick else 1000)
    appends = 500 if args.quick else 3000
    out: dict[str, Any] = {
        "resources": resources,
        "steps": args.steps,
        "latency_ms": args.latency_ms,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": round(os.getloadavg()[0], 2),
    }
    with tempfile.TemporaryDirectory(prefix="fleetlog-bench-pg-") as tmp_name:
        tmp = Path(tmp_name)
        machines = tmp / "machines"
        machines.mkdir()
        (machines / "box.fsm").write_text(machine_text(args.steps))
        for name in args.backends.split(","):
            backend = Backend("sqlite" if name == "sqlite" else "postgresql", tmp)
            try:
                result: dict[str, Any] = append_rates(backend, appends)
                result["fanout"] = [
                    fanout(
                        backend,
                        int(w),
                        args.parallel,
                        resources,
                        args.steps,
                        args.latency_ms,
                        machines,
                    )
                    for w in args.workers.split(",")
                ]
            finally:
                backend.cleanup()
            first = result["fanout"][0]["tps"] if result["fanout"] else 0
            for row in result["fanout"]:
                row["speedup"] = round(row["tps"] / first, 2) if first else None
            out[backend.name] = result
    out["load_after"] = round(os.getloadavg()[0], 2)
    if "sqlite" in out and "postgresql" in out:
        out["pg_over_sqlite"] = {
            k: round(out["postgresql"][k] / out["sqlite"][k], 2)
            for k in ("append_eps", "group_eps")
        }
    try:
        import psycopg

        with psycopg.connect(PG) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            out["postgresql_server"] = row[0] if row else None
    except Exception:  # the figure is informative only
        pass
    print(json.dumps(out))
    _table(out)


def _table(out: dict[str, Any]) -> None:
    """The figures as a table on stderr, for people."""
    lines = [
        f"{'backend':<11} {'workers':>7} {'seconds':>8} {'tps':>8} {'speed-up':>8} {'load':>5}"
    ]
    for name in ("sqlite", "postgresql"):
        for row in out.get(name, {}).get("fanout", []):
            lines.append(
                f"{name:<11} {row['workers']:>7} {row['fleetlog_s']:>8.2f} {row['tps']:>8.1f} "
                f"{row['speedup']:>8.2f} {row['load']:>5.1f}"
            )
    for name in ("sqlite", "postgresql"):
        if name in out:
            lines.append(
                f"{name}: single appends {out[name]['append_eps']}/s, "
                f"8 threads {out[name]['group_eps']}/s"
            )
    print("\n".join(lines), file=sys.stderr)


if __name__ == "__main__":
    main()
