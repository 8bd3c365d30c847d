"""A twin world: only its declared hosts answer; its file is private; a secret a tool
was given is logged as its digest; faults can match a command line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from fleetlog.engine.backends.base import BackendError
from fleetlog.engine.backends.sim import (
    Fault,
    SimBackend,
    ToolContext,
    ToolResult,
    World,
    secret_digest,
    sim_tool,
)


@sim_tool("test_login")
def _login(ctx: ToolContext) -> ToolResult:
    """A tool that is given a secret and keeps only its digest."""
    user, password = ctx.args
    ctx.state["password"] = ctx.conceal(password)
    ctx.log(f"login {user} {password}")
    return ToolResult(0)


def test_a_twin_answers_only_on_its_declared_hosts(tmp_path: Path) -> None:
    sim = SimBackend(str(tmp_path / "w.sim"))
    try:
        sim.world.declare({"node1": {"role": "kvm_host"}}, {})
        assert sim.run("node1", "true").exit_code == 0
        with pytest.raises(BackendError, match="host 'node9' is not in the simulated datacenter"):
            sim.run("node9", "true")
        with pytest.raises(BackendError, match="unreachable"):
            sim.observe("node9", "kvm_host", "node9")
        assert "node9" not in sim.world.hosts()  # nothing was made up
    finally:
        sim.close()


def test_a_sandbox_world_makes_a_host_on_first_use() -> None:
    with SimBackend() as sim:
        assert not sim.world.is_twin
        assert sim.run("anywhere", "touch_flag x").exit_code == 0


def test_the_world_file_is_private_from_creation(tmp_path: Path) -> None:
    path = tmp_path / "w.sim"
    world = World(str(path))
    world.declare({"h": {}}, {})
    world.copy_to(str(tmp_path / "copy.sim"))
    world.close()
    for p in (path, tmp_path / "copy.sim"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p


def test_a_concealed_secret_is_logged_and_kept_as_its_digest(tmp_path: Path) -> None:
    path = tmp_path / "w.sim"
    with SimBackend(str(path)) as sim:
        assert sim.run("h1", "test_login alice s3cr3t-Pa55").exit_code == 0
        (entry,) = sim.world.log_entries(host="h1")
        assert entry.effect == f"login alice {secret_digest('s3cr3t-Pa55')}"
        assert entry.argv == ["test_login", "alice", secret_digest("s3cr3t-Pa55")]
        assert sim.world.host_state("h1")["password"] == secret_digest("s3cr3t-Pa55")
    assert b"s3cr3t-Pa55" not in b"".join(p.read_bytes() for p in tmp_path.iterdir())


def test_a_fault_can_match_a_command_line(tmp_path: Path) -> None:
    with SimBackend() as sim:
        sim.world.inject(Fault("echo", mode="fail_times", n=2, command="echo *edv*"))
        assert sim.run("h", "echo start ms").exit_code == 0  # not matching: not counted
        assert sim.run("h", "echo start edv").exit_code == 1
        assert sim.run("h", "echo start edv").exit_code == 1
        assert sim.run("h", "echo start edv").exit_code == 0
        (rec,) = sim.world.faults()
        assert rec.hits == 3
