"""A lease holder stopped (SIGSTOP) past its TTL while another process takes over.

The paused ``fleetlog fire`` is inside a step when it is stopped; a second process breaks
its expired lease and finishes the transition; then the first is continued (SIGCONT).
It must not run the next (non-idempotent) step again: it fences itself (its last
renewal is too old), and with that switched off the journal refuses its appends under
the old token. On the executor path and on the ``ensure`` path, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from fleetlog.engine.backends.sim import Fault
from tests.engine.conftest import Fleet
from tests.faults.conftest import (
    cont,
    counters,
    finish,
    healthy,
    machines,
    stop,
    wait_for,
)

TTL = "2"

PAUSE = """
machine pjob {
    param host: str = "h1"
    initial state new
    state done
    transition go : new -> done {
        step first  run "touch_flag pjob_first" idempotent
        step second run "counter pjob_second"
        step third  run "counter pjob_third"
    }
}
"""

INNER = """
machine pinner {
    param host: str = "h1"
    initial state new
    state ready
    transition go : new -> ready {
        step first  run "touch_flag inner_first" idempotent
        step second run "counter inner_second"
    }
}
"""

OUTER = """
machine pouter {
    param host: str = "h1"
    param inner: ref pinner
    initial state new
    state done
    transition go : new -> done {
        step prep ensure inner is ready via go
        step tail run "counter outer_tail"
    }
}
"""


def started(fleet: Fleet, rid: str, step: str) -> bool:
    return any(
        e.type == "step.started" and e.payload.get("step") == step
        for e in fleet.journal.read_stream(rid)
    )


def pause_during(
    fleet: Fleet, fired: str, rid: str, step: str, **env: str
) -> subprocess.Popen[str]:
    """``fleetlog fire FIRED go`` in a child, stopped while ``rid`` runs ``step``: the
    world makes that step's first call linger 4 s after its effect, and the child is
    stopped once the effect is in the world (not in the middle of writing it)."""
    fleet.sim.world.inject(Fault("touch_flag", mode="slow", ms=4000, n=1))
    proc = fleet.spawn("fire", fired, "go", FLEETLOG_LEASE_TTL=TTL, **env)
    wait_for(f"{rid} to start {step}", lambda: started(fleet, rid, step))
    wait_for("its effect", lambda: bool(fleet.sim.world.log_entries(tool="touch_flag")))
    stop(proc)
    return proc


@pytest.mark.parametrize("self_fence", [True, False], ids=["self-fenced", "journal-fenced"])
def test_a_paused_holder_does_not_run_the_next_step_again(fleet: Fleet, self_fence: bool) -> None:
    machines(fleet, pjob=PAUSE)
    assert fleet.cli("add", "pjob/j1").code == 0
    env = {} if self_fence else {"FLEETLOG_TEST_NO_SELF_FENCE": "1"}
    paused = pause_during(fleet, "pjob/j1", "pjob/j1", "first", **env)
    try:
        # Past the TTL, another process takes over and finishes the transition.
        wait_for("the lease to expire", lambda: _expired(fleet, "pjob/j1"), timeout=30)
        took = fleet.sub("resume", "pjob/j1", FLEETLOG_LEASE_TTL=TTL)
        assert took.code == 0, took.err
    finally:
        cont(paused)
    woke = finish(paused)
    assert woke.code == 1, woke.err
    assert "pjob/j1: the lease of" in woke.err and "no longer current" in woke.err
    if self_fence:  # it noticed by itself (its renewal is too old, or was refused)
        assert "its last renewal was" in woke.err or "its renewal was refused" in woke.err
    else:  # the journal refused its step.started under the old token
        assert "another owner took it" in woke.err or "holds it with token" in woke.err
    assert counters(fleet) == {"pjob_second": 1, "pjob_third": 1}
    types = [e.type for e in fleet.events("pjob/j1")]
    assert types.count("transition.completed") == 1
    assert "lock.broken" in types
    assert fleet.status()["pjob/j1"]["state"] == "done"
    healthy(fleet)


def test_a_paused_holder_on_the_ensure_path_stops_too(fleet: Fleet) -> None:
    machines(fleet, pinner=INNER, pouter=OUTER)
    assert fleet.cli("add", "pinner/i1").code == 0
    assert fleet.cli("add", "pouter/o1", "--param", "inner=pinner/i1").code == 0
    # The parent's ensure started the child's transition: stopping one process stops both.
    paused = pause_during(fleet, "pouter/o1", "pinner/i1", "first")
    try:
        wait_for("the leases to expire", lambda: _expired(fleet, "pouter/o1"), timeout=30)
        took = fleet.sub("resume", "--all", FLEETLOG_LEASE_TTL=TTL)
        assert took.code == 0, took.err
    finally:
        cont(paused)
    finish(paused)
    assert counters(fleet) == {"inner_second": 1, "outer_tail": 1}
    status = fleet.status()
    assert (status["pinner/i1"]["state"], status["pouter/o1"]["state"]) == ("ready", "done")
    for rid in ("pinner/i1", "pouter/o1"):
        ends = [e for e in fleet.events(rid) if e.type == "transition.completed"]
        assert len(ends) == 1, rid
    healthy(fleet)


def test_a_paused_worker_does_not_run_the_next_step_again(fleet: Fleet) -> None:
    """The same with a worker that claimed a submitted command: on SIGCONT it finds the
    transition taken over and leaves it, without a second `second`."""
    machines(fleet, pjob=PAUSE)
    assert fleet.cli("add", "pjob/j1").code == 0
    assert fleet.cli("fire", "pjob/j1", "go", "--submit").code == 0
    fleet.sim.world.inject(Fault("touch_flag", mode="slow", ms=4000, n=1))
    worker = fleet.spawn("worker", "--once", FLEETLOG_LEASE_TTL=TTL)
    wait_for("the worker to start `first`", lambda: started(fleet, "pjob/j1", "first"))
    wait_for("its effect", lambda: bool(fleet.sim.world.log_entries(tool="touch_flag")))
    stop(worker)
    try:
        wait_for("the lease to expire", lambda: _expired(fleet, "pjob/j1"), timeout=30)
        took = fleet.sub("worker", "--once", FLEETLOG_LEASE_TTL=TTL)
        assert took.code == 0, took.err
        assert "completed -> done" in took.out
    finally:
        cont(worker)
    finish(worker)
    assert counters(fleet) == {"pjob_second": 1, "pjob_third": 1}
    assert [e.type for e in fleet.events("pjob/j1")].count("transition.completed") == 1
    healthy(fleet)


def _expired(fleet: Fleet, rid: str) -> bool:
    lease = fleet.journal.get_lease(rid)
    return lease is not None and lease.expires_at < time.time() - 0.2
