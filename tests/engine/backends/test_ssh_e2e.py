"""End to end: the seed's Exascale clone-guest scenario through the real ``fleetlog`` CLI
on ``--backend ssh``, every command going over SSH to the lab's sshd and its fake tools.

All lab hosts share one world (``escli ... trustFrom=node1`` on node3 reads node1's
state); ``FLEETLOG_SIM_HOST`` — set by sshd per listening address — selects the host.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fleetlog.engine.cli import main
from fleetlog.machines.sim.scenarios import exascale_rack
from tests.lab.lab import Lab

pytest_plugins = ["tests.lab.fixtures"]


def test_clone_guest_onto_an_unconfigured_host_over_ssh(
    ssh_lab: Lab,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    world = ssh_lab.world()
    try:
        exascale_rack(world)
    finally:
        world.close()
    known = tmp_path / "known_hosts"
    shutil.copy(ssh_lab.known_hosts, known)
    monkeypatch.chdir(tmp_path)
    for var in ("FLEETLOG_JOURNAL", "FLEETLOG_MACHINES", "FLEETLOG_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLEETLOG_SSH_CONFIG", str(ssh_lab.ssh_config))
    monkeypatch.setenv("FLEETLOG_KNOWN_HOSTS", str(known))
    monkeypatch.setenv("FLEETLOG_SECRET_WALLET_PASSWORD", "x")

    def cli(*args: str) -> str:
        capsys.readouterr()
        code = main(["--journal", str(tmp_path / "j.db"), *args])
        out, err = capsys.readouterr()
        assert code == 0, f"fleetlog {' '.join(args)} -> {code}: {err}"
        return out

    for n in (1, 2, 3):
        cli("add", f"kvm_host/node{n}", "--param", f"host=node{n}")
    cli("add", "vm/exa1_vm1", "--param", "host=node1")
    cli("add", "vm/g1", "--param", "host=node3")
    cli(
        "--backend",
        "ssh",
        "fire",
        "vm/g1",
        "clone",
        "--param",
        "source=exa1_vm1",
        "--param",
        "target=node3",
    )

    status = {row["id"]: row for row in json.loads(cli("status", "--json"))}
    assert status["vm/g1"]["state"] == "ACTIVE"
    assert status["kvm_host/node3"]["state"] == "exascale_ready"
    assert status["vm/g1"]["in_progress"] is None

    # The effects happened in the lab's world, on node3, over ssh.
    world = ssh_lab.world()
    try:
        node3 = world.host_state("node3")
        assert node3["vms"]["g1"]["status"] == "running"
        assert {e.host for e in world.log_entries(tool="vm_maker")} == {"node3"}
    finally:
        world.close()
    # No new host key was needed: known_hosts is unchanged.
    assert known.read_text() == ssh_lab.known_hosts.read_text()
