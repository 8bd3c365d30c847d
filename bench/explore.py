"""Fault explorer benchmark: schedules per second for the shipped flows.

Run from the repository root::

    python bench/explore.py            # 1,000 schedules of the clone, 200 of the others
    python bench/explore.py --quick    # 100 and 30 (smoke test)

Each flow is explored as ``fleetlog sim explore`` does it, in-process: one base twin,
then per schedule a fresh copy of it, the faults, the flow, resume until at rest, and
every invariant checked (``engine/ops/explore.py``). The Exascale base is README's
session, built with the CLI in a temporary directory: the twin of
``examples/exascale.toml``, the cluster deployed, the sixteen guests created and
deployed. The flows:

- ``clone``: ``clone vm/exa1_vm3`` onto node3, which ensures node3's Exascale on the way
  (the issue's target: >= 1,000 schedules in <= 60 s);
- ``validate``: ``validate 'kvm_host/node[3-8]'``, a six-member fan-out plan;
- ``deploy``: ``deploy exascale_cluster/exa`` on a fresh twin of the inventory (cells,
  EGS hosts and compute hosts ensured in turn: the longest shipped flow).

Prints one JSON object per flow: runs, seconds, schedules per second, CPU seconds and
the load average, since the figure depends on what else the machine is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleetlog.engine.model.loader import load_registry
from fleetlog.engine.ops.explore import Explorer
from fleetlog.engine.ops.explore_base import Base, build_base, remove
from fleetlog.engine.ops.schedules import FAULT_KINDS, Flow
from fleetlog.engine.ops.twin import read_inventory
from fleetlog.journal import open_journal

ROOT = Path(__file__).resolve().parent.parent
INVENTORY = ROOT / "examples" / "exascale.toml"
SESSION = (
    ["sim", "init", "--from-inventory", str(INVENTORY)],
    ["inventory", "load", str(INVENTORY)],
    ["fire", "exascale_cluster/exa", "deploy"],
    ["fire", "vm/exa[1-4]_vm[1-2],asm[1-4]_vm[1-2]", "create"],
    ["fire", "vm/exa[1-4]_vm[1-2],asm[1-4]_vm[1-2]", "deploy"],
)


def exascale_base(directory: str) -> Base:
    """README's session on a twin, with the CLI; the explorer's base copied from it."""
    env = {**os.environ, "FLEETLOG_JOURNAL": os.path.join(directory, "fleetlog.db")}
    for args in SESSION:
        subprocess.run(
            [sys.executable, "-c", "from fleetlog.engine.cli import main; main()", *args],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    journal = open_journal(env["FLEETLOG_JOURNAL"])
    try:
        return build_base(
            load_registry(),
            journal=journal,
            world_path=env["FLEETLOG_JOURNAL"] + ".sim",
            inventory=None,
        )
    finally:
        journal.close()


def measure(name: str, base: Base, flow: Flow, runs: int) -> dict[str, object]:
    explorer = Explorer(base, load_registry(), flow)
    try:
        explorer.profile()
        cpu = time.process_time()
        report = explorer.explore(runs=runs, seed=1, kinds=tuple(FAULT_KINDS))
        cpu = time.process_time() - cpu
    finally:
        explorer.close()
    return {
        "flow": name,
        "command": f"fleetlog sim explore {flow.trigger} '{flow.pattern}'",
        "runs": report.runs,
        "seconds": round(report.elapsed, 2),
        "schedules_per_s": round(report.per_second, 1),
        "cpu_s": round(cpu, 2),
        "failure": None if report.failure is None else report.failure.violations,
        "load_average": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100 and 30 schedules")
    args = parser.parse_args()
    os.environ.setdefault("FLEETLOG_SECRET_WALLET_PASSWORD", "bench-only")
    many, few = (100, 30) if args.quick else (1000, 200)
    with tempfile.TemporaryDirectory(prefix="fleetlog-bench-explore-") as tmp:
        base = exascale_base(tmp)
        fresh = build_base(
            load_registry(), journal=None, world_path=None, inventory=read_inventory(str(INVENTORY))
        )
        try:
            flows = [
                (
                    "clone",
                    base,
                    Flow("clone", "vm/exa1_vm3", {"source": "exa1_vm1", "target": "node3"}),
                    many,
                ),
                ("validate", base, Flow("validate", "kvm_host/node[3-8]"), few),
                ("deploy", fresh, Flow("deploy", "exascale_cluster/exa"), few),
            ]
            for name, b, flow, runs in flows:
                print(json.dumps(measure(name, b, flow, runs)), flush=True)
        finally:
            remove(base)
            remove(fresh)


if __name__ == "__main__":
    main()
