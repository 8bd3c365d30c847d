"""Resuming an interrupted transition: the journal's word is final.

Each test kills a ``fleetlog fire`` child process at a chosen instant — right after the
k-th event it journaled (the executor's ``FLEETLOG_TEST_CRASH_AFTER_EVENTS`` hook), or
right after a tool's effect committed (the sim's ``crash_after`` fault) — and resumes it
with ``fleetlog resume`` in this process.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from fleetlog import dsl
from fleetlog.engine.backends.sim import Fault
from tests.engine.conftest import CRASH_ENV, Fleet

RS = """
machine rs {
    param host: str = "h1"

    initial state new
    state done
    state broken : error

    transition plain : new -> done {
        step s1 run "counter s1"
        step s2 run "counter s2"
        step s3 run "counter s3"
    }

    transition checked : new -> done {
        step prep run "counter prep"
        step mk   run "escli mkuser u1" check "escli lsuser" contains "u1"
        step tail run "counter tail"
    }

    transition idem : new -> done {
        step prep run "counter prep"
        step mark run "touch_flag mark" idempotent
        step tail run "counter tail"
    }

    transition risky : new -> done {
        step prep run "touch_flag prep" undo run "clear_flag prep"
        step bump run "counter bump"
        step tail run "counter tail"
        on failure -> broken undo [prep]
    }
}
"""


# Events the hook counts: command.accepted + transition.started (one append), then a
# step.started and an outcome per step.
def started_event(step_index: int) -> int:
    return 3 + 2 * step_index


def succeeded_event(step_index: int) -> int:
    return 4 + 2 * step_index


KILLED = -signal.SIGKILL


@pytest.fixture
def rs(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "rs.fsm").write_text(RS)
    fleet.use_machines(d)
    assert fleet.cli("add", "rs/r1").code == 0
    return fleet


def crash_fire(fleet: Fleet, trigger: str, *, after_events: int | None = None) -> None:
    env = {CRASH_ENV: str(after_events)} if after_events else {}
    res = fleet.sub("fire", "rs/r1", trigger, **env)
    assert res.code == KILLED, (res.code, res.out, res.err)
    assert fleet.status()["rs/r1"]["in_progress"] is not None


def step_events(fleet: Fleet, step: str) -> list[tuple[str, object, object]]:
    return [
        (e.type, e.payload.get("attempt"), e.payload.get("via"))
        for e in fleet.events("rs/r1")
        if e.type.startswith("step.")
        and e.payload.get("step") == step
        and not e.payload.get("undo")
    ]


# ------------------------------------------------------------------------------ done steps
# A step's outcome is journaled in one append with the next step's start (Runner.hold), so
# the kill after step i's outcome also finds step i+1 started. The finished steps are
# still never re-run; the started one is re-run only because it is idempotent.
@pytest.mark.parametrize("k", [succeeded_event(0), started_event(1)])
def test_finished_steps_are_never_rerun(rs: Fleet, k: int):
    crash_fire(rs, "idem", after_events=k)
    assert rs.effects() == {("h1", "counter prep = 1"): 1}
    assert step_events(rs, "mark") == [("step.started", 1, None)]
    res = rs.cli("resume", "--all")
    assert res.code == 0, res.err
    assert rs.status()["rs/r1"]["state"] == "done"
    assert rs.effects() == {
        ("h1", "counter prep = 1"): 1,
        ("h1", "flag mark set"): 1,
        ("h1", "counter tail = 1"): 1,
    }
    assert [t for t, *_ in step_events(rs, "prep")] == ["step.started", "step.succeeded"]
    assert step_events(rs, "mark") == [
        ("step.started", 1, None),
        ("step.started", 2, None),
        ("step.succeeded", 2, None),
    ]


def test_a_non_idempotent_step_started_with_the_last_outcome_needs_attention(rs: Fleet):
    crash_fire(rs, "plain", after_events=succeeded_event(0))  # s1 done, s2 started
    assert rs.effects() == {("h1", "counter s1 = 1"): 1}
    res = rs.cli("resume", "--all")
    assert res.code == 3
    assert "needs attention at step s2" in res.out
    assert [t for t, *_ in step_events(rs, "s1")] == ["step.started", "step.succeeded"]
    assert rs.effects() == {("h1", "counter s1 = 1"): 1}


def test_resume_with_nothing_in_progress(rs: Fleet):
    res = rs.cli("resume", "--all")
    assert (res.code, res.out.strip()) == (0, "nothing to resume")


# ------------------------------------------------------------------------------ in doubt
def test_in_doubt_step_with_check_whose_effect_is_there_is_not_rerun(rs: Fleet):
    rs.sim.world.inject(Fault("escli", mode="crash_after", n=1))
    crash_fire(rs, "checked")  # killed right after `escli mkuser u1` committed
    assert step_events(rs, "mk") == [("step.started", 1, None)]
    assert rs.cli("resume", "rs/r1").code == 0
    assert step_events(rs, "mk") == [("step.started", 1, None), ("step.succeeded", 1, "check")]
    assert rs.effects() == {
        ("h1", "counter prep = 1"): 1,
        ("h1", "user u1 created"): 1,
        ("h1", "counter tail = 1"): 1,
    }
    assert rs.status()["rs/r1"]["state"] == "done"


def test_in_doubt_step_with_check_whose_effect_is_missing_is_rerun(rs: Fleet):
    crash_fire(rs, "checked", after_events=started_event(1))  # before the tool ran
    assert rs.effects() == {("h1", "counter prep = 1"): 1}
    assert rs.cli("resume", "rs/r1").code == 0
    assert step_events(rs, "mk") == [
        ("step.started", 1, None),
        ("step.started", 2, None),
        ("step.succeeded", 2, None),
    ]
    assert rs.effects()[("h1", "user u1 created")] == 1
    assert rs.status()["rs/r1"]["state"] == "done"


def test_idempotent_in_doubt_step_is_rerun(rs: Fleet):
    rs.sim.world.inject(Fault("touch_flag", mode="crash_after", n=1))
    crash_fire(rs, "idem")
    assert rs.sim.world.call_count("h1", "touch_flag") == 1
    assert rs.cli("resume", "--all").code == 0
    assert step_events(rs, "mark") == [
        ("step.started", 1, None),
        ("step.started", 2, None),
        ("step.succeeded", 2, None),
    ]
    assert rs.sim.world.call_count("h1", "touch_flag") == 2
    assert rs.effects() == {
        ("h1", "counter prep = 1"): 1,
        ("h1", "flag mark set"): 1,
        ("h1", "counter tail = 1"): 1,
    }


# ------------------------------------------------------------------------------ attention
def needs_attention(fleet: Fleet) -> None:
    """The non-idempotent, unchecked step `bump` is in doubt: resume stops, exit 3."""
    for _ in range(2):  # and keeps stopping until someone resolves it
        res = fleet.cli("resume", "--all")
        assert res.code == 3, (res.out, res.err)
        assert "needs attention at step bump" in res.out
    row = fleet.status()["rs/r1"]
    assert row["needs_attention"]["step"] == "bump"
    assert "not idempotent" in row["needs_attention"]["reason"]
    assert row["in_progress"]["trigger"] == "risky"
    attention = [e for e in fleet.events("rs/r1") if e.type == "attention.required"]
    assert len(attention) == 1  # said once, not on every resume
    assert fleet.effects().get(("h1", "counter tail = 1")) is None


def resolve(fleet: Fleet, how: str) -> None:
    res = fleet.cli(
        "resolve", "rs/r1", "--step", "bump", "--as", how, "--reason", f"checked by hand: {how}"
    )
    assert res.code == (1 if how == "abort" else 0), (res.out, res.err)
    ev = [e for e in fleet.events("rs/r1") if e.type == "step.resolved"]
    assert len(ev) == 1
    assert ev[0].payload == {"step": "bump", "as": how, "reason": f"checked by hand: {how}"}
    assert ev[0].actor
    assert f"resolved as {how}" in res.out and ev[0].actor in res.out
    assert fleet.status()["rs/r1"]["needs_attention"] is None
    assert fleet.status()["rs/r1"]["in_progress"] is None


def test_resolve_done_when_the_effect_happened(rs: Fleet):
    rs.sim.world.inject(Fault("counter", mode="crash_after", n=1))
    crash_fire(rs, "risky")
    needs_attention(rs)
    bad = rs.cli("resolve", "rs/r1", "--step", "tail", "--as", "done", "--reason", "x")
    assert bad.code == 2 and "does not need attention" in bad.err
    resolve(rs, "done")
    assert rs.status()["rs/r1"]["state"] == "done"
    assert rs.effects() == {
        ("h1", "flag prep set"): 1,
        ("h1", "counter bump = 1"): 1,  # not run again
        ("h1", "counter tail = 1"): 1,
    }
    assert [t for t, *_ in step_events(rs, "bump")] == ["step.started", "step.resolved"]


def test_resolve_retry_when_the_effect_did_not_happen(rs: Fleet):
    crash_fire(rs, "risky", after_events=started_event(1))
    needs_attention(rs)
    assert rs.effects() == {("h1", "flag prep set"): 1}
    resolve(rs, "retry")
    assert rs.status()["rs/r1"]["state"] == "done"
    assert rs.effects() == {
        ("h1", "flag prep set"): 1,
        ("h1", "counter bump = 1"): 1,
        ("h1", "counter tail = 1"): 1,
    }
    assert step_events(rs, "bump") == [
        ("step.started", 1, None),
        ("step.resolved", None, None),
        ("step.started", 2, None),
        ("step.succeeded", 2, None),
    ]


def test_resolve_abort_fails_the_transition_and_compensates(rs: Fleet):
    crash_fire(rs, "risky", after_events=started_event(1))
    needs_attention(rs)
    resolve(rs, "abort")
    row = rs.status()["rs/r1"]
    assert row["state"] == "broken"
    undo = [(e.type, e.payload["step"]) for e in rs.events("rs/r1") if e.payload.get("undo")]
    assert undo == [("step.started", "prep"), ("step.succeeded", "prep")]
    failed = next(e for e in rs.events("rs/r1") if e.type == "transition.failed")
    assert failed.payload["step"] == "bump"
    assert "aborted by" in failed.payload["error"]
    assert [e.effect for e in rs.sim.world.log_entries()] == ["flag prep set", "flag prep cleared"]


# ------------------------------------------------------------------------------ the plan
EVOLVING = """
machine evo {
    param host: str = "h1"
    initial state new
    state done
    transition go : new -> done {
%s
    }
}
"""


def test_resume_follows_the_recorded_plan_after_the_file_changed(fleet: Fleet):
    d = fleet.root / "machines"
    d.mkdir()
    path: Path = d / "evo.fsm"
    step = '        step {0} run "touch_flag {0}" idempotent'
    path.write_text(EVOLVING % "\n".join(step.format(s) for s in ("a", "b", "c")))
    fleet.use_machines(d)
    fleet.cli("add", "evo/e1")
    res = fleet.sub("fire", "evo/e1", "go", **{CRASH_ENV: str(started_event(0))})
    assert res.code == KILLED
    old_hash = next(e for e in fleet.events("evo/e1") if e.type == "transition.started").payload[
        "definition_hash"
    ]
    # edit the machine: drop c, add d before b
    path.write_text(EVOLVING % "\n".join(step.format(s) for s in ("a", "d", "b")))
    assert fleet.cli("machines", "check", str(path)).code == 0
    res = fleet.cli("resume", "--all")
    assert res.code == 0, res.err
    assert fleet.status()["evo/e1"]["state"] == "done"
    assert [e.effect for e in fleet.sim.world.log_entries()] == [
        "flag a set",
        "flag b set",
        "flag c set",
    ]
    steps = [e.payload["step"] for e in fleet.events("evo/e1") if e.type == "step.succeeded"]
    assert steps == ["a", "b", "c"]
    new_hash = dsl.compile_source(path.read_text())[0].definition_hash
    assert new_hash != old_hash  # the definition really did change under the resume


MOVING = """
machine mov {
    initial state new
    state done
    state elsewhere
    transition go : new -> %s {
        step a run "touch_flag a" idempotent
        step b run "touch_flag b" idempotent
    }
    transition back : done -> new { step z run "clear_flag a" idempotent }
    transition back2 : elsewhere -> new { step z run "clear_flag a" idempotent }
}
"""


def killed_inside_go(fleet: Fleet, *done_first: str) -> Path:
    """``mov.fsm`` with ``go : new -> done``; each of ``done_first`` taken through ``go``
    (history under that definition), then mov/m1's ``go`` SIGKILLed at its second step.
    Returns the file, for the test to edit before resuming."""
    d = fleet.root / "machines"
    d.mkdir()
    path = d / "mov.fsm"
    path.write_text(MOVING % "done")
    fleet.use_machines(d)
    for rid in ("mov/m1", *done_first):
        assert fleet.cli("add", rid).code == 0
    for rid in done_first:
        assert fleet.cli("fire", rid, "go").code == 0
    res = fleet.sub("fire", "mov/m1", "go", **{CRASH_ENV: str(started_event(1))})
    assert res.code == KILLED
    return path


def test_resume_goes_to_the_recorded_destination_after_the_file_moved_it(fleet: Fleet):
    path = killed_inside_go(fleet, "mov/m2")
    # the edit sends `go` somewhere else; what was started goes where it was started to
    path.write_text(MOVING % "elsewhere")
    res = fleet.cli("resume", "--all")
    assert res.code == 0, res.err
    status = fleet.status()
    assert status["mov/m1"]["state"] == "done"
    assert status["mov/m2"]["state"] == "done"
    completed = [e for e in fleet.events("mov/m1") if e.type == "transition.completed"]
    assert [e.payload["to"] for e in completed] == ["done"]
    # and what is fired from now on follows the file
    assert fleet.cli("fire", "mov/m1", "back").code == 0
    assert fleet.cli("fire", "mov/m1", "go").code == 0
    assert fleet.status()["mov/m1"]["state"] == "elsewhere"
    assert fleet.cli("verify").code == 0


def test_resume_finishes_a_transition_whose_trigger_the_file_no_longer_has(fleet: Fleet):
    path = killed_inside_go(fleet)
    path.write_text((MOVING % "done").replace("transition go ", "transition go_v2 "))
    res = fleet.cli("resume", "mov/m1")
    assert res.code == 0, res.err
    assert fleet.status()["mov/m1"]["state"] == "done"
    assert [e.effect for e in fleet.sim.world.log_entries()] == ["flag a set", "flag b set"]
    # the old trigger is gone for anything new
    assert fleet.cli("fire", "mov/m1", "back").code == 0
    res = fleet.cli("fire", "mov/m1", "go")
    assert res.code == 2 and "go" in res.err


def test_in_doubt_step_whose_check_cannot_run_stays_in_doubt(rs: Fleet):
    rs.sim.world.inject(Fault("escli", mode="crash_after", n=1))
    crash_fire(rs, "checked")  # `escli mkuser u1` took effect, then the process died
    # on resume the host does not answer the check (only that one call)
    rs.sim.world.inject(Fault("escli", mode="unreachable", n=1, host="h1"))
    res = rs.cli("resume", "rs/r1")
    # the check could not tell: running mkuser again is not safe; someone must look
    assert res.code == 3, (res.out, res.err)
    assert rs.status()["rs/r1"]["needs_attention"]["step"] == "mk"


def test_resuming_a_resource_that_does_not_exist_is_a_usage_error(rs: Fleet):
    head = rs.journal.head()
    res = rs.cli("resume", "rs/r2")
    assert res.code == 2
    assert res.err == (
        "fleetlog: error: no such resources: rs/r2 (create them with `fleetlog add` or "
        "`fleetlog inventory load`)\n"
    )
    res = rs.cli("resume", "rs/r1")  # exists, nothing in progress: not an error
    assert (res.code, res.out) == (0, "nothing to resume\n")
    assert rs.journal.head() == head
