"""Every fault mode, stored in the world so it reaches every process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest

from fleetlog.engine.backends import BackendError, CommandTimeout
from fleetlog.engine.backends.sim import Fault, SimBackend
from fleetlog.errors import UsageError


def counter_value(sim: SimBackend, host: str = "n1", name: str = "c") -> int:
    return int(sim.world.host_state(host).get("counters", {}).get(name, 0))


def test_fail_nth_fails_only_the_nth_matching_call_and_has_no_effect(sim: SimBackend) -> None:
    sim.run("n1", "counter c")  # before injection: not counted by the fault
    sim.world.inject(Fault("counter", mode="fail_nth", n=2, exit_code=7, message="boom"))
    codes = [sim.run("n1", "counter c") for _ in range(3)]
    assert [r.exit_code for r in codes] == [0, 7, 0]
    assert codes[1].stderr == "boom"
    assert counter_value(sim) == 3  # 1 before + 2 successful
    assert len(sim.world.log_entries()) == 3


def test_fail_always_respects_tool_and_host(sim: SimBackend) -> None:
    sim.world.inject(Fault("counter", mode="fail_always", host="n1"))
    for _ in range(3):
        failed = sim.run("n1", "counter c")
        assert failed.exit_code == 1 and "injected failure of counter" in failed.stderr
    assert sim.run("n2", "counter c").ok  # other host
    assert sim.run("n1", "echo still fine").ok  # other tool


def test_fail_times_is_a_service_that_needs_tries(sim: SimBackend) -> None:
    sim.world.inject(Fault("counter", mode="fail_times", n=2))
    assert [sim.run("n1", "counter c").exit_code for _ in range(4)] == [1, 1, 0, 0]
    assert counter_value(sim) == 2


def test_any_tool_wildcard(sim: SimBackend) -> None:
    sim.world.inject(Fault(mode="fail_always", host="n9"))
    assert sim.run("n9", "echo x").exit_code == 1
    assert sim.run("n9", "flag y").exit_code == 1


def test_hang_times_out_without_effect(sim: SimBackend) -> None:
    sim.world.inject(Fault("counter", mode="hang"))
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        sim.run("n1", "counter c", timeout=0.2)
    assert time.monotonic() - started >= 0.2
    assert info.value.fields == {
        "host": "n1",
        "timeout": 0.2,
        "command": "counter c",
    }
    assert counter_value(sim) == 0


def test_hang_without_a_timeout_blocks_for_its_ms(sim: SimBackend) -> None:
    sim.world.inject(Fault("echo", mode="hang", ms=100))
    started = time.monotonic()
    with pytest.raises(CommandTimeout):
        sim.run("n1", "echo x")
    assert time.monotonic() - started >= 0.1


def test_hang_only_the_nth_call(sim: SimBackend) -> None:
    sim.world.inject(Fault("echo", mode="hang", n=2))
    assert sim.run("n1", "echo 1", timeout=0.1).ok
    with pytest.raises(CommandTimeout):
        sim.run("n1", "echo 2", timeout=0.1)
    assert sim.run("n1", "echo 3", timeout=0.1).ok


def test_slow_adds_latency_and_can_overrun_a_timeout(sim: SimBackend) -> None:
    sim.world.inject(Fault("counter", mode="slow", ms=150))
    result = sim.run("n1", "counter c")
    assert result.ok and result.duration >= 0.15
    with pytest.raises(CommandTimeout):
        sim.run("n1", "counter c", timeout=0.05)
    assert counter_value(sim) == 1  # the overrun call never ran


def test_wrong_status_bends_observation_until_cleared(sim: SimBackend) -> None:
    sim.world.set_host_state("n1", {"vms": {"g1": {"status": "running"}, "g2": {"status": "x"}}})
    sim.world.inject(Fault(mode="wrong_status", kind="vm", name="g1", status="ERROR_down"))
    assert sim.observe("n1", "vm", "g1") == "ERROR_down"
    assert sim.observe("n1", "vm", "g2") == "x"
    assert sim.inventory("vm") == {"g1": "ERROR_down", "g2": "x"}
    sim.world.clear_faults()
    assert sim.observe("n1", "vm", "g1") == "running"


def test_wrong_status_without_a_name_spares_unknown_resources(sim: SimBackend) -> None:
    sim.world.set_host_state("n1", {"vms": {"g1": {"status": "running"}}})
    sim.world.inject(Fault(mode="wrong_status", kind="vm", host="n1", status="stopped"))
    assert sim.observe("n1", "vm", "g1") == "stopped"
    assert sim.observe("n1", "vm", "ghost") is None
    sim.world.inject(Fault(mode="wrong_status", kind="vm", name="ghost", status="running"))
    assert sim.observe("n1", "vm", "ghost") == "running"  # deliberately named: appears


def test_unreachable_runs_nothing_and_blinds_observation(sim: SimBackend) -> None:
    sim.world.set_host_state("n1", {"vms": {"g1": {"status": "running"}}})
    sim.world.inject(Fault(mode="unreachable", host="n1", message="no route to host"))
    with pytest.raises(BackendError, match="no route to host"):
        sim.run("n1", "counter c")
    with pytest.raises(BackendError):
        sim.observe("n1", "vm", "g1")
    assert counter_value(sim) == 0
    assert sim.run("n2", "counter c").ok


def test_drop_commits_the_effect_then_loses_the_reply(sim: SimBackend) -> None:
    sim.world.inject(Fault("counter", mode="drop", n=1))
    with pytest.raises(BackendError, match="connection dropped"):
        sim.run("n1", "counter c")
    assert counter_value(sim) == 1  # in doubt: it did happen
    assert sim.run("n1", "counter c").stdout == "2\n"


def test_faults_reach_another_backend_on_the_same_world(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    injector, victim = make_sim(world_path), make_sim(world_path)
    fault_id = injector.world.inject(Fault("counter", mode="fail_times", n=1))
    assert victim.run("n1", "counter c").exit_code == 1
    assert victim.run("n1", "counter c").ok
    [record] = injector.world.faults()
    assert (record.id, record.hits, record.fault.mode) == (fault_id, 2, "fail_times")
    injector.world.remove_fault(fault_id)
    assert victim.world.faults() == []


def test_clear_faults(sim: SimBackend) -> None:
    sim.world.inject(Fault("counter", mode="fail_always"))
    sim.world.inject(Fault("echo", mode="fail_always"))
    sim.world.clear_faults()
    assert sim.run("n1", "counter c").ok and sim.run("n1", "echo").ok


def test_global_latency_is_persisted_and_shared_across_threads(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    sim = make_sim(world_path, latency_ms=250)
    assert make_sim(world_path).world.latency_ms == 250
    # Whether the sleeps overlap is a speed claim, shown by bench/fanout.py, not timed here.
    threads = [threading.Thread(target=sim.run, args=("n1", "counter c")) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert counter_value(sim) == 8


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "fail_nth"},
        {"mode": "fail_times", "n": 0},
        {"mode": "crash_after"},
        {"mode": "slow"},
        {"mode": "wrong_status"},
        {"mode": "explode"},
    ],
)
def test_invalid_faults_are_usage_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(UsageError):
        Fault("x", **kwargs)  # type: ignore[arg-type]
