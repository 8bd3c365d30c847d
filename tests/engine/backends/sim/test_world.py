"""The world: persistence across instances and processes, the log, concurrency."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

from fleetlog.engine.backends import BackendError
from fleetlog.engine.backends.sim import SimBackend

from .conftest import PROJECT_ROOT


def test_state_persists_across_backends_on_one_file(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    first = make_sim(world_path)
    assert first.run("n1", "touch_flag ready").ok
    assert first.run("n1", "counter c").stdout == "1\n"
    first.close()

    second = make_sim(world_path)
    assert second.run("n1", "flag ready").ok
    assert second.run("n1", "counter c").stdout == "2\n"
    assert not second.run("n2", "flag ready").ok  # hosts are separate
    assert second.world.snapshot() == {
        "n1": {"flags": {"ready": True}, "counters": {"c": 2}},
    }
    second.close()


def test_in_memory_worlds_are_separate(make_sim: Callable[..., SimBackend]) -> None:
    a, b = make_sim(), make_sim()
    a.run("n1", "touch_flag x")
    assert a.world.snapshot() and not b.world.snapshot()


def test_log_records_side_effects_only(sim: SimBackend) -> None:
    for command in ("echo hi", "flag x", "true", "false", "fail boom", "escli lsservice"):
        sim.run("n1", command)
    assert sim.world.log_entries() == []

    sim.run("n1", "touch_flag x")
    sim.run("n1", "touch_flag x")  # already set: no effect, nothing logged
    sim.run("n1", "counter c")
    sim.run("n2", "counter c")

    entries = sim.world.log_entries()
    assert [(e.host, e.tool, e.effect) for e in entries] == [
        ("n1", "touch_flag", "flag x set"),
        ("n1", "counter", "counter c = 1"),
        ("n2", "counter", "counter c = 1"),
    ]
    assert entries[0].argv == ["touch_flag", "x"]
    assert [e.seq for e in entries] == sorted(e.seq for e in entries)
    assert entries[0].at.endswith("+00:00")
    assert [e.effect for e in sim.world.log_entries(host="n2")] == ["counter c = 1"]
    assert [e.host for e in sim.world.log_entries(tool="counter")] == ["n1", "n2"]


def test_call_counts_include_read_only_calls(sim: SimBackend) -> None:
    for _ in range(3):
        sim.run("n1", "echo x")
    assert sim.world.call_count("n1", "echo") == 3
    assert sim.world.call_count("n2", "echo") == 0


def test_seeding_the_world_is_not_logged(sim: SimBackend) -> None:
    sim.world.set_host_state("n1", {"flags": {"pre": True}})
    assert sim.run("n1", "flag pre").ok
    assert sim.world.hosts() == ["n1"]
    assert sim.world.log_entries() == []


def test_threads_share_a_file_world_without_losing_updates(
    world_path: str, make_sim: Callable[..., SimBackend]
) -> None:
    sim = make_sim(world_path)

    def work() -> None:
        for _ in range(25):
            assert sim.run("n1", "counter c").ok

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sim.world.host_state("n1")["counters"]["c"] == 200
    assert len(sim.world.log_entries(tool="counter")) == 200
    sim.close()


def test_threads_share_an_in_memory_world(sim: SimBackend) -> None:
    threads = [
        threading.Thread(target=lambda: [sim.run("n1", "counter c") for _ in range(20)])
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sim.world.host_state("n1")["counters"]["c"] == 80


def test_processes_share_a_world_file(world_path: str, make_sim: Callable[..., SimBackend]) -> None:
    code = (
        "import sys\n"
        "from fleetlog.engine.backends.sim import SimBackend\n"
        "b = SimBackend(sys.argv[1])\n"
        "for _ in range(40):\n"
        "    assert b.run('n1', 'counter c').ok\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, world_path], cwd=PROJECT_ROOT)
        for _ in range(3)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
    assert make_sim(world_path).world.host_state("n1")["counters"]["c"] == 120


def test_a_bad_world_path_fails_at_once() -> None:
    with pytest.raises(BackendError, match="cannot open world"):
        SimBackend("/nonexistent-dir/fleetlog/world.db")
