"""``fleetlog demo`` runs to completion and leaves a journal that tells the story."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from fleetlog.engine.backends.sim import World
from fleetlog.journal import open_journal
from fleetlog.machines.demo import CLI


def test_the_demo_runs_to_completion_and_leaves_its_journal(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    env["COLUMNS"] = "120"

    proc = subprocess.run(
        [*CLI, "demo", "--dir", str(root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )

    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    for text in (
        "FLEETLOG_SECRET_WALLET_PASSWORD is not set: the demo sets a demo value",
        "vm/exa1_vm3 (1): completed -> ACTIVE",
        "step exascale said: kvm_host/node3 already exascale_ready",
        "vm/exa3_vm4 (1): completed -> ACTIVE",  # resumed after the SIGKILL
        "kvm_host/node3 configure_exascale (seq",
        "was caused by vm/exa1_vm3 step 'exascale'",
        f"fleetlog --journal {root / 'fleetlog.db'} status",
    ):
        assert text in out, text
    assert not re.search(r"demo-[0-9a-f]{12}", out)  # its secret value is never printed

    journal = open_journal(str(root / "fleetlog.db"))
    try:
        assert journal.verify().ok
        node3 = journal.read_stream("kvm_host/node3")
        assert [e.payload["trigger"] for e in node3 if e.type == "transition.started"] == [
            "configure_exascale"
        ]
        clone = journal.read_stream("vm/exa3_vm4")
        assert any(e.type == "step.started" for e in clone)
        assert clone[-1].type in ("transition.completed", "lock.released")
    finally:
        journal.close()
    world = World(str(root / "fleetlog.db.sim"))
    try:
        assert [e.effect for e in world.log_entries("node3")].count("edv started") == 1
    finally:
        world.close()
