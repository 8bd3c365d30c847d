"""Firing a transition: validation before anything is journaled, guards, checks, skip
probes, retries, timeouts, compensation, secrets, and the leases around it all."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetlog.engine.backends.sim import Fault
from fleetlog.engine.model import TriggerNotAllowed
from fleetlog.engine.runtime import GuardRefused, LeaseSet, Runner, new_owner
from fleetlog.journal.base import Lease, LeaseHeld
from fleetlog.journal.sqlite import SQLiteJournal
from tests.engine.conftest import Fleet, Rig

# A small machine over the sim's generic tools; every transition lands in `done` and every
# failure in `broken`.
BOX = """
machine box {
    param host: str = "h1"
    param fast: bool = false
    param enabled: bool = false
    secret token

    initial state new
    state done
    state broken : error

    transition guarded : new -> done {
        step one   run "touch_flag one" idempotent
        step slow  run "touch_flag slow" idempotent when not fast
        step three run "touch_flag three" idempotent when fast
    }

    transition checked : new -> done {
        step have run "counter have" check "flag have"
        step need run "counter need" check "flag need"
    }

    transition skippable : new -> done {
        skip if probe "flag already" succeeds
        step work run "counter work"
    }

    transition flaky : new -> done {
        step work run "touch_flag work" idempotent retry 3 every 2s backoff 3
        on failure -> broken
    }

    transition hopeless : new -> done {
        step work run "touch_flag work" idempotent retry 2 every 5s
        on failure -> broken
    }

    transition hangs : new -> done {
        step stuck run "touch_flag stuck" idempotent timeout 50ms
        on failure -> broken
    }

    transition compensated : new -> done {
        step a    run "touch_flag a" undo run "clear_flag a"
        step b    run "touch_flag b" undo run "clear_flag b"
        step keep run "touch_flag keep"
        step c    run "touch_flag c" undo run "clear_flag c"
        step boom run "fail boom went the step"
        step d    run "touch_flag d" undo run "clear_flag d"
        on failure -> broken undo [a, c, d]
    }

    transition gated : new -> done when enabled {
        step work run "counter gated"
    }

    transition leaky : new -> done {
        step login run "echo logging in with {token} now" idempotent
        step again run "fail bad token {token}"
        on failure -> broken
    }
}
"""


def only_steps(rig: Rig, rid: str = "box/b1") -> list[tuple[str, str, object]]:
    return rig.steps(rid)


# ------------------------------------------------------------------------------ table
def test_trigger_not_allowed_raises_and_journals_nothing(make_rig):
    rig = make_rig(BOX)
    rig.add("box/b1")
    assert rig.runner.fire("box/b1", "guarded").status == "completed"
    head = rig.journal.head()
    with pytest.raises(TriggerNotAllowed) as exc:
        rig.runner.fire("box/b1", "checked")
    assert "not allowed in state 'done'" in str(exc.value)
    assert rig.journal.head() == head


def test_trigger_not_allowed_via_cli_exits_2(fleet: Fleet):
    fleet.use_machines(_write_box(fleet.root / "machines"))
    assert fleet.cli("add", "box/b1").code == 0
    assert fleet.cli("fire", "box/b1", "guarded").code == 0
    head = fleet.journal.head()
    res = fleet.cli("fire", "box/b1", "checked")
    assert res.code == 2
    assert "not allowed in state 'done'" in res.err
    assert "Traceback" not in res.err
    assert fleet.journal.head() == head


def _write_box(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "box.fsm").write_text(BOX)
    return directory


# ------------------------------------------------------------------------------ guards
def test_when_guards_skip_steps(make_rig):
    rig = make_rig(BOX)
    rig.add("box/b1")
    rig.add("box/b2", fast=True)
    assert rig.runner.fire("box/b1", "guarded").state == "done"
    assert rig.runner.fire("box/b2", "guarded").state == "done"
    assert only_steps(rig, "box/b1") == [
        ("step.started", "one", 1),
        ("step.succeeded", "one", 1),
        ("step.started", "slow", 1),
        ("step.succeeded", "slow", 1),
        ("step.skipped", "three", "when"),
    ]
    assert only_steps(rig, "box/b2") == [
        ("step.started", "one", 1),
        ("step.succeeded", "one", 1),
        ("step.skipped", "slow", "when"),
        ("step.started", "three", 1),
        ("step.succeeded", "three", 1),
    ]


def test_transition_guard_refuses_before_anything_is_journaled(make_rig):
    rig = make_rig(BOX)
    rig.add("box/b1")
    rig.add("box/b2", enabled=True)
    head = rig.journal.head()
    with pytest.raises(GuardRefused) as exc:
        rig.runner.fire("box/b1", "gated")
    assert "when enabled" in str(exc.value)
    assert rig.journal.head() == head
    assert rig.effects() == {}
    assert rig.runner.fire("box/b2", "gated").state == "done"
    assert rig.effects() == {("h1", "counter gated = 1"): 1}


def test_transition_guard_refusal_is_a_usage_error_on_the_cli(fleet: Fleet):
    fleet.use_machines(_write_box(fleet.root / "machines"))
    fleet.cli("add", "box/b1")
    head = fleet.journal.head()
    res = fleet.cli("fire", "box/b1", "gated")
    assert res.code == 2, res.err
    assert "guard" in res.err
    assert fleet.journal.head() == head


# ------------------------------------------------------------------------------ probes
def test_check_probe_skips_a_step_whose_effect_is_there(make_rig):
    rig = make_rig(BOX)
    rig.sim.world.set_host_state("h1", {"flags": {"have": True}})
    rig.add("box/b1")
    assert rig.runner.fire("box/b1", "checked").state == "done"
    assert only_steps(rig) == [
        ("step.skipped", "have", "check"),
        ("step.started", "need", 1),
        ("step.succeeded", "need", 1),
    ]
    assert rig.effects() == {("h1", "counter need = 1"): 1}


def test_skip_if_probe_skips_the_whole_transition(make_rig):
    rig = make_rig(BOX)
    rig.sim.world.set_host_state("h1", {"flags": {"already": True}})
    rig.add("box/b1")
    rig.add("box/b2", host="h2")
    out = rig.runner.fire("box/b1", "skippable")
    assert (out.status, out.state) == ("skipped", "done")
    types = rig.types("box/b1")
    assert types == [
        "resource.created",
        "command.accepted",
        "transition.started",
        "transition.completed",
    ]
    assert "probe holds" in rig.events("box/b1")[-2].payload["skipped"]
    # the other host has no flag: the transition runs
    assert rig.runner.fire("box/b2", "skippable").status == "completed"
    assert rig.effects() == {("h2", "counter work = 1"): 1}


# ------------------------------------------------------------------------------ retries
def test_retries_with_interval_and_backoff_journal_every_attempt(make_rig):
    rig = make_rig(BOX)
    rig.sim.world.inject(Fault("touch_flag", mode="fail_times", n=3))
    rig.add("box/b1")
    out = rig.runner.fire("box/b1", "flaky")
    assert (out.status, out.state) == ("completed", "done")
    assert rig.sleeps == [2.0, 6.0, 18.0]  # every 2s, backoff 3
    assert only_steps(rig) == [
        ("step.started", "work", 1),
        ("step.failed", "work", 1),
        ("step.started", "work", 2),
        ("step.failed", "work", 2),
        ("step.started", "work", 3),
        ("step.failed", "work", 3),
        ("step.started", "work", 4),
        ("step.succeeded", "work", 4),
    ]
    failed = [e.payload for e in rig.events("box/b1") if e.type == "step.failed"]
    assert [p["will_retry"] for p in failed] == [True, True, True]
    assert all("injected failure of touch_flag" in p["error"] for p in failed)


def test_retries_exhausted_fail_the_transition(make_rig):
    rig = make_rig(BOX)
    rig.sim.world.inject(Fault("touch_flag", mode="fail_always", message="disk full"))
    rig.add("box/b1")
    out = rig.runner.fire("box/b1", "hopeless")
    assert (out.status, out.state, out.step) == ("failed", "broken", "work")
    assert "disk full" in (out.error or "")
    assert rig.sleeps == [5.0, 5.0]
    attempts = [a for t, _, a in only_steps(rig) if t == "step.started"]
    assert attempts == [1, 2, 3]
    assert rig.events("box/b1")[-2].type == "transition.failed"
    assert rig.sim.world.call_count("h1", "touch_flag") == 3


def test_step_timeout(make_rig):
    rig = make_rig(BOX)
    rig.sim.world.inject(Fault("touch_flag", mode="hang"))
    rig.add("box/b1")
    out = rig.runner.fire("box/b1", "hangs")
    assert (out.status, out.state) == ("failed", "broken")
    failed = [e for e in rig.events("box/b1") if e.type == "step.failed"]
    assert len(failed) == 1
    assert "timed out" in failed[0].payload["error"]
    assert rig.effects() == {}


# ------------------------------------------------------------------------------ undo
def test_failure_runs_undo_in_reverse_plan_order_and_lands_in_failure_state(make_rig):
    rig = make_rig(BOX)
    rig.add("box/b1")
    out = rig.runner.fire("box/b1", "compensated")
    assert (out.status, out.state, out.step) == ("failed", "broken", "boom")
    assert "boom went the step" in (out.error or "")
    undo = [(e.type, e.payload["step"]) for e in rig.events("box/b1") if e.payload.get("undo")]
    # only listed steps that took effect (d never ran; b is not listed), reverse order
    assert undo == [
        ("step.started", "c"),
        ("step.succeeded", "c"),
        ("step.started", "a"),
        ("step.succeeded", "a"),
    ]
    # the failure is recorded after the compensations
    assert [e.type for e in rig.events("box/b1")][-3:] == [
        "step.succeeded",
        "transition.failed",
        "lock.released",
    ]
    assert rig.events("box/b1")[-2].payload["to"] == "broken"
    log = [e.effect for e in rig.sim.world.log_entries()]
    assert log == [
        "flag a set",
        "flag b set",
        "flag keep set",
        "flag c set",
        "flag c cleared",
        "flag a cleared",
    ]
    assert rig.runner.load("box/b1").state == "broken"


# ------------------------------------------------------------------------------ secrets
SECRET = "s3cr3t-hunter2-value"


def test_secret_never_reaches_the_journal(fleet: Fleet):
    fleet.use_machines(_write_box(fleet.root / "machines"))
    fleet.monkeypatch.setenv("FLEETLOG_SECRET_TOKEN", SECRET)
    fleet.cli("add", "box/b1")
    res = fleet.cli("fire", "box/b1", "leaky", "--json")
    assert res.code == 1
    assert SECRET not in res.out
    # the tool really saw (and echoed) the secret
    login = next(
        e
        for e in fleet.events("box/b1")
        if e.type == "step.succeeded" and e.payload["step"] == "login"
    )
    assert login.payload["output"] == "logging in with *** now\n"
    assert "<secret:token>" in login.payload["command"]
    export = fleet.root / "export.jsonl"
    assert fleet.cli("export", "-o", str(export)).code == 0
    text = export.read_text()
    assert "logging in with" in text and "bad token" in text
    assert SECRET not in text
    assert fleet.cli("history", "box/b1", "--json").out.count(SECRET) == 0


# ------------------------------------------------------------------------------ leases
LOCKED = """
machine lk {
    param host: str = "h1"
    param other: ref lk = none

    initial state new
    state done

    transition go : new -> done {
        step work run "counter go"
    }

    transition both : new -> done {
        lock self, other
        step work run "counter both"
    }
}
"""


def test_lock_acquired_and_released_are_journaled(make_rig):
    rig = make_rig(LOCKED)
    rig.add("lk/a")
    rig.runner.fire("lk/a", "go")
    types = [e.type for e in rig.events("lk/a")]
    # one append: the command, the lease, the start; and the lease's end with the finish
    assert types[1:4] == ["command.accepted", "lock.acquired", "transition.started"]
    assert types[-2:] == ["transition.completed", "lock.released"]
    assert rig.events("lk/a")[-2].recorded_at == rig.events("lk/a")[-1].recorded_at
    acquired, released = rig.events("lk/a")[2], rig.events("lk/a")[-1]
    assert acquired.payload["owner"] == released.payload["owner"]
    assert acquired.payload["token"] == released.payload["token"]
    started = next(e for e in rig.events("lk/a") if e.type == "transition.started")
    assert started.payload["token"] == acquired.payload["token"]
    assert rig.journal.get_lease("lk/a") is None


def test_a_live_owners_lease_blocks(make_rig):
    rig = make_rig(LOCKED)
    rig.add("lk/a")
    holder = LeaseSet(rig.journal, new_owner(), ["lk/a"], ttl=60)
    holder.acquire()
    try:
        head = rig.journal.head()
        with pytest.raises(LeaseHeld):
            rig.runner.fire("lk/a", "go")
        assert rig.journal.head() == head
        assert rig.effects() == {}
    finally:
        holder.release()
    assert rig.runner.fire("lk/a", "go").state == "done"


def test_an_expired_lease_of_another_owner_is_broken(make_rig):
    rig = make_rig(LOCKED)
    rig.add("lk/a")
    # an owner on another host: its pid cannot be checked, only the expiry counts
    stale, _ = rig.journal.acquire_lease("lk/a", "elsewhere:4242:deadbeef", 0.05)
    with pytest.raises(LeaseHeld):
        rig.runner.fire("lk/a", "go")
    while time.time() <= stale.expires_at:
        time.sleep(0.01)
    assert rig.runner.fire("lk/a", "go").state == "done"
    broken = [e for e in rig.events("lk/a") if e.type == "lock.broken"]
    assert len(broken) == 1
    assert broken[0].payload["previous_owner"] == "elsewhere:4242:deadbeef"
    assert broken[0].payload["reason"] == "lease expired"


def test_a_dead_local_owners_lease_is_broken_at_once(make_rig):
    rig = make_rig(LOCKED)
    rig.add("lk/a")
    proc = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    owner = new_owner().replace(f":{os.getpid()}:", f":{proc.stdout.strip()}:")
    rig.journal.acquire_lease("lk/a", owner, 3600)
    assert rig.runner.fire("lk/a", "go").state == "done"
    broken = [e.payload for e in rig.events("lk/a") if e.type == "lock.broken"]
    assert [(b["previous_owner"], b["reason"]) for b in broken] == [
        (owner, "owner process is gone")
    ]


class TakingOrder(SQLiteJournal):
    """A real journal that also remembers the order leases were asked for (the journal
    cannot show it: the resource's own ``lock.acquired`` is journaled with its
    ``transition.started``, after the leases on the resources it references)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.taken: list[str] = []

    def acquire_lease(
        self, resource: str, owner: str, ttl: float, steal_from: str | None = None
    ) -> tuple[Lease, Lease | None]:
        self.taken.append(resource)
        return super().acquire_lease(resource, owner, ttl, steal_from)


def test_locks_on_several_resources_are_taken_in_sorted_order(make_rig, tmp_path: Path):
    rig = make_rig(LOCKED)
    journal = TakingOrder(tmp_path / "order.db")
    rig = Rig(Runner(journal, rig.registry, rig.sim), journal, rig.sim, rig.registry, [])
    rig.add("lk/alpha")
    rig.add("lk/zeta", other="lk/alpha")
    rig.add("lk/mid", other="lk/zeta")
    for rid in ("lk/zeta", "lk/mid"):
        assert rig.runner.fire(rid, "both").state == "done", rid
    assert journal.taken == ["lk/alpha", "lk/zeta", "lk/mid", "lk/zeta"]
    acquired = [e.stream for e in rig.journal.read_all() if e.type == "lock.acquired"]
    assert acquired == ["lk/alpha", "lk/zeta", "lk/zeta", "lk/mid"]
    started = [e for e in rig.journal.read_all() if e.type == "transition.started"]
    assert [s.payload["locks"] for s in started] == [
        ["lk/alpha", "lk/zeta"],
        ["lk/mid", "lk/zeta"],
    ]
    # every lease released
    assert all(rig.journal.get_lease(r) is None for r in ("lk/alpha", "lk/zeta", "lk/mid"))
    journal.close()
