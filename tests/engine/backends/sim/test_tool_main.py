"""The fake tools as real processes (what the SSH lab runs), and crash_after."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

from fleetlog.engine.backends.sim import Fault, SimBackend
from fleetlog.engine.backends.sim.tool_main import install_shims
from fleetlog.machines.sim.scenarios import exascale_rack

from .conftest import run_python

TOOL_MAIN = "import sys; from fleetlog.engine.backends.sim.tool_main import main; sys.exit(main())"


def tool(world: str, host: str, *argv: str) -> subprocess.CompletedProcess[str]:
    env = {"FLEETLOG_SIM_WORLD": world, "FLEETLOG_SIM_HOST": host}
    return run_python(TOOL_MAIN, *argv, env=env)


def test_tool_main_runs_tools_against_the_world(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    assert tool(world_path, "n1", "counter", "c").stdout == "1\n"
    done = tool(world_path, "n1", "counter", "c")
    assert (done.returncode, done.stdout) == (0, "2\n")
    assert make_sim(world_path).world.host_state("n1") == {"counters": {"c": 2}}
    missing = tool(world_path, "n1", "nope")
    assert (missing.returncode, missing.stderr) == (127, "sim: command not found: nope")


def test_tool_main_as_a_module_reports_the_seed_error(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    exascale_rack(make_sim(world_path).world)
    env = {"FLEETLOG_SIM_WORLD": world_path, "FLEETLOG_SIM_HOST": "node3"}
    proc = run_python(
        "import runpy, sys; sys.argv[0] = 'tool_main';"
        "runpy.run_module('fleetlog.engine.backends.sim.tool_main', run_name='__main__')",
        "vm_maker",
        "--clone",
        "exa1_vm1",
        "--name",
        "g",
        env=env,
    )
    assert proc.returncode == 1
    assert "Exascale is not configured on this KVM host" in proc.stderr


def test_tool_main_honours_faults_and_needs_a_world(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    make_sim(world_path).world.inject(Fault(mode="unreachable", host="n1"))
    assert tool(world_path, "n1", "echo", "x").returncode == 255
    assert tool(world_path, "n2", "echo", "x").stdout == "x\n"
    assert run_python(TOOL_MAIN, "echo", env={"FLEETLOG_SIM_WORLD": ""}).returncode == 2


def test_shims_run_the_fake_tools_as_commands(
    world_path: str, tmp_path: Path, make_sim: Callable[..., SimBackend]
) -> None:
    bin_dir = tmp_path / "bin"
    shims = install_shims(bin_dir, world_path, "node7", seed=3)
    assert bin_dir / "dbmcli" in shims
    proc = subprocess.run(
        [str(bin_dir / "dbmcli"), "-e", "alter dbserver cellinit ipaddress1=10.0.0.7/22"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    [entry] = make_sim(world_path).world.log_entries(host="node7")
    assert entry.effect == "cellinit ipaddress1=10.0.0.7/22"


CRASHER = """
import sys
from fleetlog.engine.backends.sim import SimBackend
backend = SimBackend(sys.argv[1])
for i in range(5):
    result = backend.run("n1", "counter c")
    print("returned", result.stdout.strip(), flush=True)
"""


def test_crash_after_kills_the_process_once_the_effect_is_committed(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    make_sim(world_path).world.inject(Fault("counter", mode="crash_after", n=2))
    proc = run_python(CRASHER, world_path)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout == "returned 1\n"  # the second call never returned...

    world = make_sim(world_path).world  # ...but its effect is in the reopened world
    assert world.host_state("n1")["counters"]["c"] == 2
    assert [e.effect for e in world.log_entries()] == ["counter c = 1", "counter c = 2"]

    rerun = run_python(CRASHER, world_path)  # the fault fired once; the successor lives
    assert rerun.returncode == 0, rerun.stderr
    assert world.host_state("n1")["counters"]["c"] == 7


def test_crash_after_counts_only_side_effecting_calls(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    make_sim(world_path).world.inject(Fault(mode="crash_after", n=1))
    code = (
        "import sys\nfrom fleetlog.engine.backends.sim import SimBackend\n"
        "b = SimBackend(sys.argv[1])\n"
        "for cmd in ('echo a', 'flag f', 'touch_flag f', 'echo never'):\n"
        "    print(b.run('n1', cmd).exit_code, flush=True)\n"
    )
    proc = run_python(code, world_path)
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout == "0\n1\n"
    assert make_sim(world_path).world.host_state("n1") == {"flags": {"f": True}}
