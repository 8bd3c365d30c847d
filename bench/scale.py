"""Scale benchmark: 1k, 10k and 100k sim resources through one no-op step, by the CLI.

Run from the repository root::

    python bench/scale.py              # 1,000, 10,000 and 100,000 resources
    python bench/scale.py --quick      # 1,000 and 10,000
    python bench/scale.py --sizes 50   # any sizes (the test suite's smoke run)

Every size gets a fresh directory: a machine file of a trivial kind (``noop``: one
transition ``go`` of one idempotent ``run "true"`` step, the sim's no-op), found through
``FLEETLOG_MACHINES``; a journal (SQLite, WAL, ``synchronous=FULL``, the default); the
sim backend with no latency. Each measure is one ``fleetlog`` subprocess, as an operator
runs it, start-up included:

- ``load_s``: ``fleetlog inventory load`` of an inventory ``[noop."r[1-N]"]``;
  ``reload_s``: the same file again (creates nothing, checked).
- ``fire``: ``fleetlog fire 'noop/r[1-N]' go --parallel P``: its wall and CPU seconds
  (user + system, from ``wait4``), its peak RSS, and ``us_per_node_step`` = wall / N
  (one step per node).
- ``status_s`` (a table, written to a pipe: the non-terminal case), ``status_json_s``,
  ``verify_s``: on the result. Both status outputs are checked (every resource shown,
  in state ``done``).
- ``journal_bytes_per_event``: the journal's files (database and WAL) over its events.

- ``floor_us_per_node_step`` (and ``floor_cpu_us_per_node_step``): the journal's floor,
  ``bench/journal_floor.py``: the events this fire journaled for one resource, appended
  for ``N`` fresh resources with no engine, no leases and no backend, in batches. What a
  node-step costs above it is the engine's.

The anchors, measured in the same run so the figures can be read against this machine:
``python_startup_s`` (``python -c pass``, median of 5), ``fleetlog_startup_s``
(``fleetlog status`` on an empty journal, median of 5), ``sqlite_commit_per_s`` (bare
SQLite, WAL + FULL, one INSERT + COMMIT per row) and ``sqlite_bulk_rows_per_s`` (bare
SQLite, 100,000 rows of 300 bytes in one transaction).

``--python`` runs ``fleetlog`` with another interpreter (an older install, to compare
before and after in one run). Prints one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

MACHINE = """\
# Written by bench/scale.py: one transition of one no-op sim step.
machine noop "Scale benchmark node" {
    param host: str = "h1"
    initial state new
    state done

    transition go : new -> done {
        step s1 run "true" idempotent
    }
}
"""

FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)


class Failed(RuntimeError):
    """A fleetlog command did not do what the benchmark needs: the run is not a figure."""


def _cli(python: str) -> list[str]:
    return [python, "-c", "from fleetlog.engine.cli import main; main()"]


def run(cmd: list[str], env: dict[str, str], out: Path | None = None) -> tuple[float, float, int]:
    """(wall s, CPU s, peak RSS in KiB) of one subprocess, its stdout written to ``out``
    (a file: never a terminal, as in a script); ``Failed`` unless it exits 0."""
    with tempfile.TemporaryFile() as err:
        with open(out or os.devnull, "wb") as stdout:
            start = time.perf_counter()
            # cwd: a directory of no package, so the interpreter imports fleetlog from its
            # install, not from a source tree the benchmark happens to be started in.
            proc = subprocess.Popen(cmd, env=env, stdout=stdout, stderr=err, cwd=os.sep)
            _, status, usage = os.wait4(proc.pid, 0)
            wall = time.perf_counter() - start
        code = os.waitstatus_to_exitcode(status)
        proc.returncode = code  # reaped here, with its resource usage
        if code != 0:
            err.seek(0)
            text = err.read().decode(errors="replace")[-2000:]
            raise Failed(f"fleetlog {' '.join(cmd[3:])}: exit {code}: {text}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def _journal_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal")) if p.exists())


def one_size(n: int, python: str, parallel: int, base: Path) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix=f"fleetlog-scale-{n}-", dir=base))
    machines = tmp / "machines"
    machines.mkdir()
    (machines / "noop.fsm").write_text(MACHINE)
    inventory = tmp / "inventory.toml"
    inventory.write_text(f'[noop."r[1-{n}]"]\n')
    db = tmp / "fleetlog.db"
    env = dict(
        os.environ,
        FLEETLOG_MACHINES=str(machines),
        FLEETLOG_JOURNAL=str(db),
        FLEETLOG_BACKEND="sim",
    )
    cli = _cli(python)
    out: dict[str, Any] = {"resources": n, "steps": 1}
    text = tmp / "out.txt"

    wall, _cpu, _rss = run([*cli, "inventory", "load", str(inventory), "--json"], env, text)
    created = json.loads(text.read_text())["created"]
    if len(created) != n:
        raise Failed(f"inventory load created {len(created)} of {n}")
    out["load_s"] = round(wall, 3)
    wall, _cpu, _rss = run([*cli, "inventory", "load", str(inventory), "--json"], env, text)
    if json.loads(text.read_text())["created"]:
        raise Failed("loading the inventory again created resources")
    out["reload_s"] = round(wall, 3)

    head0 = _events(db)
    wall, cpu, rss = run([*cli, "fire", f"noop/r[1-{n}]", "go", "--parallel", str(parallel)], env)
    events = _events(db)
    out.update(
        {
            "fire_wall_s": round(wall, 3),
            "fire_cpu_s": round(cpu, 3),
            "fire_peak_rss_mib": round(rss / 1024, 1),
            "us_per_node_step": round(wall / n * 1e6, 1),
            "cpu_us_per_node_step": round(cpu / n * 1e6, 1),
            "fire_events": events - head0,
            "events": events,
            "journal_bytes_per_event": round(_journal_bytes(db) / max(events, 1)),
        }
    )

    wall, _cpu, _rss = run([*cli, "status"], env, text)
    table = text.read_text()
    folded = f"noop/r[1-{n}]" in table or (n == 1 and "noop/r1" in table)
    if not (folded or table.count("noop/r") >= n) or "done" not in table:
        raise Failed(f"status does not show the {n} resources done:\n{table[:2000]}")
    out["status_s"] = round(wall, 3)
    out["status_lines"] = table.count("\n")
    wall, _cpu, rss = run([*cli, "status", "--json"], env, text)
    rows = json.loads(text.read_text())
    if len(rows) != n or any(r["state"] != "done" for r in rows):
        raise Failed(f"status --json: {len(rows)} rows, expected {n} in state done")
    out["status_json_s"] = round(wall, 3)
    out["status_json_peak_rss_mib"] = round(rss / 1024, 1)
    wall, _cpu, _rss = run([*cli, "verify"], env)
    out["verify_s"] = round(wall, 3)
    # The same transitions' events appended with no engine (bench/journal_floor.py).
    floor = subprocess.run(
        [python, str(Path(__file__).with_name("journal_floor.py")), str(db), str(n), str(tmp)],
        check=True,
        capture_output=True,
        cwd=os.sep,
        env=env,
    )
    out.update(json.loads(floor.stdout))
    return out


def _events(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    finally:
        conn.close()


def python_startup(python: str) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([python, "-c", "pass"], check=True, cwd=os.sep)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def fleetlog_startup(python: str, base: Path) -> float:
    tmp = Path(tempfile.mkdtemp(prefix="fleetlog-scale-empty-", dir=base))
    db = tmp / "fleetlog.db"
    env = dict(os.environ, FLEETLOG_JOURNAL=str(db))
    env.pop("FLEETLOG_MACHINES", None)
    cli = _cli(python)
    make = f"from fleetlog.journal.sqlite import SQLiteJournal; SQLiteJournal({str(db)!r}).close()"
    subprocess.run([python, "-c", make], check=True, cwd=os.sep)  # an empty journal
    run([*cli, "status"], env)  # warm the file cache (and any compiled-spec cache)
    times = [run([*cli, "status"], env)[0] for _ in range(5)]
    return statistics.median(times)


def sqlite_anchors(base: Path) -> dict[str, int]:
    """Bare SQLite on this disk: durable commits per second (one row each), and rows per
    second inserted in one transaction."""
    path = base / "anchor.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE t (seq INTEGER PRIMARY KEY, stream TEXT, payload TEXT)")
    payload = "x" * 300
    n = 1_000
    start = time.perf_counter()
    for i in range(n):
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (stream, payload) VALUES (?, ?)", (f"s{i % 100}", payload))
        conn.execute("COMMIT")
    commits = n / (time.perf_counter() - start)
    rows = 100_000
    start = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO t (stream, payload) VALUES (?, ?)",
        ((f"noop/r{i}", payload) for i in range(rows)),
    )
    conn.execute("COMMIT")
    bulk = rows / (time.perf_counter() - start)
    conn.close()
    return {"sqlite_commit_per_s": round(commits), "sqlite_bulk_rows_per_s": round(bulk)}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 and 10,000 resources")
    parser.add_argument("--sizes", type=int, nargs="+", help="resource counts (overrides)")
    parser.add_argument("--parallel", type=int, default=64, help="fire --parallel")
    parser.add_argument(
        "--python", default=sys.executable, help="the interpreter that runs fleetlog"
    )
    parser.add_argument("--dir", help="where to put the journals (default: a temp dir)")
    parser.add_argument(
        "--keep", action="store_true", help="keep the journals (their directory on stderr)"
    )
    args = parser.parse_args()
    sizes = args.sizes or (QUICK_SIZES if args.quick else FULL_SIZES)
    load_1m = os.getloadavg()[0]
    with contextlib.ExitStack() as stack:
        if args.keep:
            base = Path(tempfile.mkdtemp(dir=args.dir, prefix="fleetlog-scale-"))
            print(f"bench/scale.py: journals kept in {base}", file=sys.stderr)
        else:
            base = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=args.dir)))
        summary: dict[str, Any] = {
            "python_startup_s": round(python_startup(args.python), 3),
            "fleetlog_startup_s": round(fleetlog_startup(args.python, base), 3),
            **sqlite_anchors(base),
        }
        summary["sizes"] = [one_size(n, args.python, args.parallel, base) for n in sizes]
    summary.update(
        {
            "parallel": args.parallel,
            "journal": "sqlite wal/FULL",
            "python": sys.version.split()[0],
            "sqlite": sqlite3.sqlite_version,
            "cpus": os.cpu_count(),
            "load_1m": round(load_1m, 2),
        }
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    try:
        main()
    except Failed as exc:
        sys.exit(f"bench/scale.py: {exc}")
