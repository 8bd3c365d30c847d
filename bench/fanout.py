"""Fan-out benchmark: many sim resources through one multi-step transition, in parallel.

Run from the repository root::

    python bench/fanout.py            # 1,000 resources x 10 steps x 20 ms, --parallel 100
    python bench/fanout.py --quick    # 100 resources (smoke test)
    python bench/fanout.py --profile  # also print the top functions (cProfile, all threads)

Every resource is ``box/rN`` of a temporary machine whose transition ``go`` has ten
idempotent ``run "touch_flag sK"`` steps. The sim backend sleeps ``--latency-ms`` per
call outside any transaction, so with ``--parallel P`` the wall time cannot beat
``ideal_s = resources x steps x latency / P``. Everything else is fleetlog's overhead:
journaling every event durably (SQLite, WAL, ``synchronous=FULL``), leases, reading the
resource record, the sim world's own transactions. ``cpu_s`` is the process's CPU time
over the run (both cores).

The run is in-process: ``runtime.Runner.fire`` over ``ops.run_many``,
which is what ``fleetlog fire 'box/r[1-1000]' go --parallel 100`` does after start-up.
Resources are created with ``append_batch_unchecked`` (one transaction), untimed.
Prints one JSON object; ``ratio`` = ``fleetlog_s / ideal_s`` (target <= 1.5).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def machine_text(steps: int) -> str:
    lines = [
        "# Written by bench/fanout.py: one transition of idempotent sim steps.",
        'machine box "Fan-out benchmark box" {',
        '    param host: str = "h1"',
        "    initial state new",
        "    state done",
        "",
        "    transition go : new -> done {",
    ]
    lines += [f'        step s{k} run "touch_flag s{k}" idempotent' for k in range(1, steps + 1)]
    lines += ["    }", "}", ""]
    return "\n".join(lines)


class _ThreadProfiler:
    """cProfile in every thread (threading.setprofile starts one per new thread), timed
    by each thread's CPU clock: wall-clock profiles of a hundred threads are mostly
    waiting, which hides where the CPU (and the GIL) goes."""

    def __init__(self) -> None:
        self.profiles: list[cProfile.Profile] = []
        self._lock = threading.Lock()

    def _start_in_thread(self, *_: object) -> None:
        sys.setprofile(None)
        prof = cProfile.Profile(time.thread_time)
        with self._lock:
            self.profiles.append(prof)
        prof.enable()

    def __enter__(self) -> _ThreadProfiler:
        threading.setprofile(self._start_in_thread)
        return self

    def __exit__(self, *exc: object) -> None:
        threading.setprofile(None)
        for prof in self.profiles:
            prof.disable()

    def report(self, top: int) -> str:
        out = io.StringIO()
        stats = pstats.Stats(self.profiles[0], stream=out)
        for prof in self.profiles[1:]:
            stats.add(prof)
        stats.sort_stats("tottime").print_stats(top)
        return out.getvalue()


def run(
    resources: int,
    steps: int,
    latency_ms: float,
    parallel: int,
    tmp: Path,
    profile: bool,
    world: str,
    synchronous: str = "FULL",
) -> tuple[dict[str, object], str]:
    machines = tmp / "machines"
    machines.mkdir()
    (machines / "box.fsm").write_text(machine_text(steps))
    os.environ["FLEETLOG_MACHINES"] = str(machines)

    from fleetlog.engine.backends.sim import SimBackend, load_tools
    from fleetlog.engine.model import load_registry
    from fleetlog.engine.ops import created_event, run_many
    from fleetlog.engine.runtime import Runner
    from fleetlog.journal.sqlite import SQLiteJournal

    registry = load_registry()
    load_tools()  # the sim's lazy import of its tools, once, before timing
    journal = SQLiteJournal(tmp / "fleetlog.db", synchronous=synchronous)  # WAL
    world_path = str(tmp / "fleetlog.db.sim") if world == "file" else None
    sim = SimBackend(world_path, latency_ms=latency_ms)
    ids = [f"box/r{i}" for i in range(1, resources + 1)]
    journal.append_batch_unchecked((rid, [created_event(registry, rid, {})]) for rid in ids)
    runner = Runner(journal, registry, sim)
    head0 = journal.head()
    commits0, appends0 = journal.stats.commits, journal.stats.appends

    prof = _ThreadProfiler() if profile else None
    # The ideal is fixed but the machine is not: the load when the run began says how
    # much of the CPU this process had to share, which explains most run-to-run drift.
    load_1m = os.getloadavg()[0]
    start = time.perf_counter()
    cpu0 = time.process_time()
    if prof is not None:
        with prof:
            result = run_many(
                ids, lambda rid: runner.fire(rid, "go"), parallel=parallel, progress=False
            )
    else:
        result = run_many(
            ids, lambda rid: runner.fire(rid, "go"), parallel=parallel, progress=False
        )
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu0

    statuses: dict[str, int] = {}
    for o in result.outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    events = journal.head() - head0
    commits = journal.stats.commits - commits0
    appends = journal.stats.appends - appends0
    assert statuses == {"completed": resources}, statuses
    assert journal.verify().ok
    journal.close()
    sim.close()
    ideal = resources * steps * latency_ms / 1000 / parallel
    summary: dict[str, object] = {
        "ideal_s": round(ideal, 3),
        "fleetlog_s": round(elapsed, 3),
        "ratio": round(elapsed / ideal, 2),
        "resources": resources,
        "steps": steps,
        "latency_ms": latency_ms,
        "parallel": parallel,
        "cpu_s": round(cpu, 3),
        "events": events,
        "events_per_s": round(events / elapsed),
        "appends": appends,
        "commits": commits,
        "mean_batch": round(appends / max(commits, 1), 2),
        "journal": f"sqlite wal/{synchronous}",
        "sim_world": world,
        "python": sys.version.split()[0],
        "sqlite": sqlite3.sqlite_version,
        "cpus": os.cpu_count(),
        "load_1m": round(load_1m, 2),
    }
    return summary, (prof.report(40) if prof is not None else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 resources instead of 1,000")
    parser.add_argument("--resources", type=int, help="number of resources (overrides --quick)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--parallel", type=int, default=100)
    parser.add_argument(
        "--world",
        choices=("file", "memory"),
        default="file",
        help="the sim's world: a file beside the journal, as the CLI uses (default), or "
        "in memory (one connection behind a lock) to leave the simulator's own SQLite "
        "contention out of the figure",
    )
    parser.add_argument(
        "--synchronous",
        choices=("FULL", "NORMAL", "OFF"),
        default="FULL",
        help="the journal's synchronous mode; anything but FULL is for diagnosis only "
        "(how much of the time is fsync)",
    )
    parser.add_argument("--profile", action="store_true", help="print a cProfile summary")
    parser.add_argument("--dir", help="where to put the journal (default: a temp dir)")
    args = parser.parse_args()
    resources = args.resources or (100 if args.quick else 1_000)
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="fleetlog-fanout-") as tmp:
        summary, report = run(
            resources,
            args.steps,
            args.latency_ms,
            args.parallel,
            Path(tmp),
            args.profile,
            args.world,
            args.synchronous,
        )
    if report:
        print(report, file=sys.stderr)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
