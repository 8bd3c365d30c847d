"""Replay: the state folded from the journal is the state tracked live, at every prefix.

A small driver plays operator commands on test machines compiled from text, appending the
events the executor appends (``resource.created``, ``transition.started``, ``step.*``,
``attention.required``, ``transition.completed``/``failed``, ``state.reconciled``,
``backend.observed``, history-only lock events) and keeping its own live model of every
resource. Replaying the journal up to any seq must give the model as it was right after
that seq. Events the definition cannot explain raise ``ReplayError`` naming the stream,
version and seq; snapshots are a cache whose presence never changes a result.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlog.dsl import compile_source
from fleetlog.engine.cli import main
from fleetlog.engine.model import Kind, KindRegistry, Resource, checkpoint, load_registry
from fleetlog.engine.model.checkpoint import NAME as CHECKPOINT
from fleetlog.engine.model.replay import (
    SNAPSHOT_EVERY,
    ReplayError,
    keep_checkpoint,
    load_resource,
    replay_all,
)
from fleetlog.engine.ops import create_resource
from fleetlog.journal import Journal, NewEvent
from fleetlog.journal.sqlite import SQLiteJournal
from tests.journal.damage import Raw

BOX = """
machine box "Test box" {
    param size: int = 1
    initial state new
    state ready
    state running
    state stopped
    state broken : error
    state gone : final

    transition prepare : new -> ready {
        step fetch run "true"
        step unpack run "true"
        step verify run "true"
        on failure -> broken
    }
    transition start : ready, stopped -> running {
        step boot run "true"
        on failure -> broken
    }
    transition stop : running -> stopped {
        step halt run "true"
        step sync run "true"
    }
    transition fix : broken -> ready {
        step repair run "true"
    }
    transition remove : new, ready, stopped, broken -> gone {
        step wipe run "true"
    }
}
"""

LAMP = """
machine lamp "Test lamp" {
    initial state off
    state on
    state blown : error

    transition switch_on : off -> on {
        step power run "true"
        on failure -> blown
    }
    transition switch_off : on -> off {
        step cut run "true"
    }
}
"""


def registry(*sources: str) -> KindRegistry:
    kinds = [Kind(compile_source(src, f"<test {i}>")[0]) for i, src in enumerate(sources)]
    return KindRegistry(kinds)


REGISTRY = registry(BOX, LAMP)
TRIGGERS = sorted({t.trigger for k in REGISTRY for t in k.spec.transitions})
STATES = sorted({s for k in REGISTRY for s in k.spec.state_names})


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[SQLiteJournal]:
    j = SQLiteJournal(tmp_path / "j.db", synchronous="OFF", actor="tester", host="testhost")
    yield j
    j.close()


# -- the live model ------------------------------------------------------------------------


@dataclass
class Live:
    """What a live operator knows about one resource after each event."""

    kind: str
    state: str
    params: dict[str, Any]
    version: int = 1
    in_progress: list[Any] | None = None  # [trigger, source, target, step]
    attention: tuple[str, str] | None = None  # (step, reason)
    observed: str | None = None
    pending: list[str] | None = None  # steps still to run (the driver's, not compared)

    def view(self) -> tuple[Any, ...]:
        ip = None if self.in_progress is None else tuple(self.in_progress)
        return (self.kind, self.state, self.params, self.version, ip, self.attention, self.observed)


def view_of(rec: Resource) -> tuple[Any, ...]:
    ip = rec.in_progress
    return (
        rec.kind,
        rec.state,
        rec.params,
        rec.version,
        None if ip is None else (ip.trigger, ip.source, ip.target, ip.step),
        None if rec.attention is None else (rec.attention["step"], rec.attention["reason"]),
        rec.observed,
    )


class Driver:
    """Plays commands like the executor: appends events one at a time and updates the live
    model after each, recording the model as of every seq."""

    def __init__(self, journal: Journal, reg: KindRegistry) -> None:
        self.journal = journal
        self.registry = reg
        self.live: dict[str, Live] = {}
        self.at_seq: list[dict[str, tuple[Any, ...]]] = [{}]  # index = seq
        self.fired = 0  # transitions started

    def _record(self) -> None:
        assert self.journal.head() == len(self.at_seq)
        self.at_seq.append({rid: m.view() for rid, m in copy.deepcopy(self.live).items()})

    def emit(self, rid: str, type_: str, **payload: Any) -> Live:
        return self.append(rid, NewEvent(type_, payload))

    def append(self, rid: str, event: NewEvent) -> Live:
        self.journal.append(rid, [event], expected_version=self.live[rid].version)
        m = self.live[rid]
        m.version += 1
        return m

    # -- commands ------------------------------------------------------------------------
    def create(self, rid: str, size: int) -> None:
        if rid in self.live:
            return
        kind = rid.split("/")[0]
        given = {"size": str(size)} if kind == "box" else {}
        rec = create_resource(self.journal, self.registry, rid, given)
        spec = self.registry.get(kind).spec
        self.live[rid] = Live(kind, spec.initial, ({"size": size} if kind == "box" else {}))
        assert rec.params == self.live[rid].params
        self._record()

    def fire(self, rid: str, trigger: str | int, outcome: str, at: int) -> None:
        """Fire ``trigger`` (a name, or an index into the triggers allowed now)."""
        m = self.live.get(rid)
        if m is None or m.in_progress is not None:
            return
        kind = self.registry.get(m.kind)
        if isinstance(trigger, int):
            # indexes below 5 avoid final states, so runs do not end early
            allowed = kind.triggers_from(m.state)
            finals = {s.name for s in kind.spec.states if s.final}
            lasting = [t for t in allowed if kind.allowed(m.state, t) not in finals]
            pool = lasting if trigger < 5 and lasting else allowed
            if not pool:
                return
            trigger = pool[trigger % len(pool)]
        dest = kind.allowed(m.state, trigger)
        if dest is None:
            return  # refused before anything is journaled
        t = kind.transition(trigger)
        # the transition's ids: its command's, and a correlation id every other time (the
        # transition is then known by it, else by the event's own id)
        self.fired += 1
        n = self.fired
        payload = {"trigger": trigger, "from": m.state, "to": dest}
        correlation = f"run-{n}" if n % 2 else None
        self.append(
            rid,
            NewEvent(
                "transition.started", payload, command_id=f"cmd-{n}", correlation_id=correlation
            ),
        )
        m.in_progress = [trigger, m.state, dest, None]
        m.attention = None
        m.pending = [s.name for s in t.steps]
        self._record()
        stop_at = at % (len(m.pending) + 1) if outcome != "complete" else None
        self._run(rid, outcome, stop_at)

    def _run(self, rid: str, outcome: str, stop_at: int | None) -> None:
        m = self.live[rid]
        assert m.in_progress is not None and m.pending is not None
        done = 0
        while m.pending:
            name = m.pending[0]
            if stop_at is not None and done == stop_at and outcome != "complete":
                self.emit(rid, "step.started", step=name, attempt=1)
                m.in_progress[3] = name
                self._record()
                if outcome == "crash":
                    return  # in doubt: started, no outcome
                if outcome == "attention":
                    reason = f"{name} is in doubt"
                    self.emit(rid, "attention.required", step=name, reason=reason)
                    m.attention = (name, reason)
                    self._record()
                    return
                # outcome == "fail": the step fails, an earlier step is undone, then the
                # transition fails into the failure state (or stays put)
                self.emit(rid, "step.failed", step=name, attempt=1, error="boom")
                self._record()
                if done:
                    first = self.registry.get(m.kind).transition(m.in_progress[0]).steps[0].name
                    self.emit(rid, "step.started", step=first, undo=True)
                    self._record()
                    self.emit(rid, "step.succeeded", step=first, undo=True)
                    self._record()
                self._fail(rid, name)
                return
            self._step_ok(rid, name)
            done += 1
        if stop_at is not None and outcome == "crash" and stop_at == done:
            return  # every step done, the process died before transition.completed
        self._complete(rid)

    def _step_ok(self, rid: str, name: str, started: bool = False) -> None:
        m = self.live[rid]
        assert m.in_progress is not None and m.pending is not None
        if not started:
            self.emit(rid, "step.started", step=name, attempt=1)
            m.in_progress[3] = name
            self._record()
        self.emit(rid, "step.succeeded", step=name, attempt=1, output="")
        m.in_progress[3] = name
        m.pending.pop(0)
        self._record()

    def _complete(self, rid: str) -> None:
        m = self.live[rid]
        assert m.in_progress is not None
        trigger, src, dest, _ = m.in_progress
        self.emit(rid, "transition.completed", trigger=trigger, **{"from": src, "to": dest})
        m.state, m.in_progress, m.attention, m.pending = dest, None, None, None
        self._record()

    def _fail(self, rid: str, step: str) -> None:
        m = self.live[rid]
        assert m.in_progress is not None
        trigger, src, _, _ = m.in_progress
        to = self.registry.get(m.kind).failure_state[trigger] or src
        self.emit(
            rid,
            "transition.failed",
            trigger=trigger,
            step=step,
            error="boom",
            **{"from": src, "to": to},
        )
        m.state, m.in_progress, m.attention, m.pending = to, None, None, None
        self._record()

    def resume(self, rid: str) -> None:
        m = self.live.get(rid)
        if m is None or m.in_progress is None:
            return
        assert m.pending is not None
        current = m.in_progress[3]
        if m.attention is not None:
            self.emit(rid, "step.resolved", step=current, **{"as": "retry"}, reason="checked")
            m.attention = None
            self._record()
        if m.pending and current == m.pending[0]:
            # the in-doubt step: its outcome is read (re-run, here it succeeds)
            self._step_ok(rid, current, started=True)
        self._run(rid, "complete", None)

    def observe(self, rid: str, status: str) -> None:
        if rid not in self.live:
            return
        m = self.emit(rid, "backend.observed", status=status, event_time="2026-01-01T00:00:00Z")
        m.observed = status
        self._record()

    def lock(self, rid: str) -> None:
        if rid not in self.live:
            return
        for t in ("lock.acquired", "command.accepted", "lock.released"):
            self.emit(rid, t, owner="me", token=1)
            self._record()

    def reconcile(self, rid: str, state: str) -> None:
        m = self.live.get(rid)
        if m is None or m.in_progress is not None:
            return
        if state not in self.registry.get(m.kind).spec.state_names:
            return
        self.emit(rid, "state.reconciled", **{"from": m.state, "to": state})
        m.state = state
        self._record()

    def play(self, command: tuple[Any, ...]) -> None:
        getattr(self, command[0])(*command[1:])


RIDS = st.sampled_from(["box/a", "box/b", "lamp/x", "box/c"])
OUTCOMES = st.sampled_from(["complete", "fail", "crash", "attention"])
COMMANDS = st.one_of(
    st.tuples(st.just("create"), RIDS, st.integers(0, 9)),
    # mostly a trigger allowed now (an index into them); sometimes any name, often refused
    st.tuples(st.just("fire"), RIDS, st.integers(0, 5), OUTCOMES, st.integers(0, 5)),
    st.tuples(st.just("fire"), RIDS, st.integers(0, 5), OUTCOMES, st.integers(0, 5)),
    st.tuples(st.just("fire"), RIDS, st.integers(0, 5), st.just("complete"), st.just(0)),
    st.tuples(st.just("fire"), RIDS, st.sampled_from(TRIGGERS), OUTCOMES, st.integers(0, 5)),
    st.tuples(st.just("resume"), RIDS),
    st.tuples(st.just("observe"), RIDS, st.sampled_from(["running", "stopped", "gone"])),
    st.tuples(st.just("lock"), RIDS),
    st.tuples(st.just("reconcile"), RIDS, st.sampled_from(STATES)),
)


def check_every_prefix(driver: Driver) -> None:
    j, reg = driver.journal, driver.registry
    head = j.head()
    assert head == len(driver.at_seq) - 1
    for k in range(head + 1):
        replayed = replay_all(j, reg, to_seq=k)
        expected = driver.at_seq[k]
        assert {rid: view_of(r) for rid, r in replayed.items()} == expected, f"at seq {k}"
        for rid, rec in replayed.items():
            one = load_resource(j, reg, rid, to_seq=k)
            assert one is not None and one.to_dict() == rec.to_dict()
    final = replay_all(j, reg)
    for rid, m in driver.live.items():
        assert view_of(final[rid]) == m.view()
        for use in (True, False, True):
            got = load_resource(j, reg, rid, use_snapshots=use)
            assert got is not None and got.to_dict() == final[rid].to_dict()


#: Random histories: a few resources created, then commands on them.
CREATES = st.lists(st.tuples(st.just("create"), RIDS, st.integers(0, 9)), min_size=1, max_size=4)
HISTORIES = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@HISTORIES
@given(CREATES, st.lists(COMMANDS, min_size=10, max_size=50))
def test_replayed_state_equals_live_state_at_every_prefix(
    creates: list[tuple[Any, ...]], commands: list[tuple[Any, ...]]
) -> None:
    with tempfile.TemporaryDirectory(prefix="fleetlog-replay-") as tmp:
        j = SQLiteJournal(Path(tmp) / "j.db", synchronous="OFF", actor="t", host="h")
        try:
            driver = Driver(j, REGISTRY)
            for c in [*creates, *commands]:
                driver.play(c)
            check_every_prefix(driver)
        finally:
            j.close()


def test_a_worked_sequence(journal: SQLiteJournal) -> None:
    """One explicit run through every kind of event, so the property test's model is
    itself pinned down."""
    d = Driver(journal, REGISTRY)
    for c in [
        ("create", "box/a", 3),
        ("fire", "box/a", "prepare", "crash", 1),  # dies in 'unpack'
        ("observe", "box/a", "running"),
        ("resume", "box/a"),
        ("fire", "box/a", "start", "fail", 0),  # -> broken
        ("fire", "box/a", "fix", "attention", 0),
        ("lock", "box/a"),
        ("resume", "box/a"),
        ("reconcile", "box/a", "stopped"),
        ("create", "box/b", 0),
        ("fire", "box/b", "prepare", "fail", 2),  # 'verify' fails, 'fetch' is undone
        ("create", "lamp/x", 0),
        ("fire", "lamp/x", "start", "complete", 0),  # not a lamp trigger: refused
        ("fire", "lamp/x", "switch_on", "complete", 0),
    ]:
        d.play(c)
    final = replay_all(journal, REGISTRY)
    assert view_of(final["box/a"]) == (
        "box",
        "stopped",
        {"size": 3},
        d.live["box/a"].version,
        None,
        None,
        "running",
    )
    assert final["lamp/x"].state == "on"
    assert final["box/b"].state == "broken"
    undone = [e for e in journal.read_stream("box/b") if e.payload.get("undo")]
    assert [(e.type, e.payload["step"]) for e in undone] == [
        ("step.started", "fetch"),
        ("step.succeeded", "fetch"),
    ]
    # while 'fetch' is undone, the transition is still shown at the step that failed
    during = replay_all(journal, REGISTRY, to_seq=undone[0].seq)["box/b"].in_progress
    assert during is not None and during.step == "verify"
    types = [e.type for e in journal.read_stream("box/a")]
    assert types.count("transition.started") == 3
    assert "attention.required" in types and "step.resolved" in types
    check_every_prefix(d)


def test_transitions_in_progress_keep_their_ids(journal: SQLiteJournal) -> None:
    """A transition in progress is known by its correlation id (else its event's id) and
    its command's id, however long ago it started and whatever else ran since: replay
    reads them for the transitions still in progress, at any seq (those started close
    together in one read, those far apart one by one)."""
    d = Driver(journal, REGISTRY)
    for c in [
        ("create", "box/a", 1),
        ("create", "box/b", 2),
        ("create", "lamp/x", 0),
        ("create", "lamp/y", 0),
        ("fire", "box/a", "prepare", "crash", 1),  # in progress at 'unpack', from here on
        ("fire", "lamp/x", "switch_on", "complete", 0),
        *[("fire", "lamp/x", t, "complete", 0) for t in ["switch_off", "switch_on"] * 40],
        ("fire", "box/b", "prepare", "attention", 2),  # in progress, needs attention
        ("observe", "box/a", "running"),
        ("fire", "lamp/x", "switch_off", "crash", 0),  # in progress at 'cut'
        ("fire", "lamp/y", "switch_on", "crash", 1),  # every step done, not completed
        ("lock", "box/b"),
    ]:
        d.play(c)
    started = {
        e.stream: e
        for e in journal.read_all(types=["transition.started"])  # the last of each stream
    }
    final = replay_all(journal, REGISTRY)
    in_progress = {rid: rec.in_progress for rid, rec in final.items() if rec.in_progress}
    assert sorted(in_progress) == ["box/a", "box/b", "lamp/x", "lamp/y"]
    assert {e.correlation_id is None for e in started.values()} == {True, False}
    for rid, ip in in_progress.items():
        e = started[rid]
        assert (ip.transition_id, ip.command_id) == (e.correlation_id or e.event_id, e.command_id)
        assert (ip.started_seq, ip.started_version) == (e.seq, e.version)
    assert in_progress["box/a"].step == "unpack" and final["box/b"].attention is not None
    check_every_prefix(d)


# -- inconsistent events -----------------------------------------------------------------


def _ev(type_: str, **payload: Any) -> NewEvent:
    if "from_" in payload:
        payload["from"] = payload.pop("from_")
    return NewEvent(type_, payload)


def _created(journal: Journal, rid: str = "box/a") -> None:
    create_resource(journal, REGISTRY, rid, {})


@pytest.mark.parametrize(
    ("events", "bad_version", "problem"),
    [
        (
            [_ev("transition.started", trigger="start", from_="ready", to="running")],
            2,
            "transition.started recorded from state 'ready', but replay has box/a in state 'new'",
        ),
        (
            [_ev("transition.completed", trigger="prepare", from_="new", to="ready")],
            2,
            "transition.completed with no transition in progress",
        ),
        (
            [_ev("transition.failed", trigger="prepare", from_="new", to="broken")],
            2,
            "transition.failed with no transition in progress",
        ),
        (
            [_ev("transition.started", trigger="prepare", from_="new", to="running")],
            2,
            "trigger 'prepare' from 'new' leads to 'ready' in the definition, but the journal "
            "recorded 'running'",
        ),
        (
            [_ev("transition.started", trigger="prepare", from_="new", to="exploded")],
            2,
            "target state 'exploded' is not a state of kind 'box'",
        ),
        (
            [
                _ev("transition.started", trigger="prepare", from_="new", to="ready"),
                _ev("transition.completed", trigger="prepare", from_="new", to="gone"),
            ],
            3,
            "completed into 'gone', but the transition in progress targets 'ready'",
        ),
        (
            [
                _ev("transition.started", trigger="prepare", from_="new", to="ready"),
                _ev("transition.started", trigger="remove", from_="new", to="gone"),
            ],
            3,
            "transition 'remove' started while 'prepare' is still in progress",
        ),
        (
            [
                _ev("transition.started", trigger="prepare", from_="new", to="ready"),
                _ev("transition.completed", trigger="prepare", from_="ready", to="ready"),
            ],
            3,
            "transition.completed recorded from state 'ready', but replay has box/a in state 'new'",
        ),
        (
            [_ev("state.reconciled", from_="ready", to="stopped")],
            2,
            "state.reconciled recorded from state 'ready'",
        ),
        (
            [_ev("resource.created", kind="box", params={}, state="new")],
            2,
            "resource.created for a resource that already exists",
        ),
    ],
    ids=[
        "from-mismatch",
        "completed-without-started",
        "failed-without-started",
        "wrong-destination",
        "unknown-target",
        "completed-elsewhere",
        "started-twice",
        "completed-from-mismatch",
        "reconciled-from-mismatch",
        "created-twice",
    ],
)
def test_inconsistent_events_raise_replay_error(
    journal: SQLiteJournal, events: list[NewEvent], bad_version: int, problem: str
) -> None:
    _created(journal)
    _created(journal, "box/ok")  # an innocent bystander
    journal.append("box/a", events)
    bad = journal.read_stream("box/a")[bad_version - 1]
    with pytest.raises(ReplayError) as info:
        replay_all(journal, REGISTRY)
    err = info.value
    assert (err.stream, err.version, err.seq) == ("box/a", bad_version, bad.seq)
    assert str(err) == f"replay: box/a version {bad_version} (seq {bad.seq}): {problem}" or (
        str(err).startswith(f"replay: box/a version {bad_version} (seq {bad.seq}): {problem}")
    )
    assert err.exit_code == 4
    with pytest.raises(ReplayError):
        load_resource(journal, REGISTRY, "box/a")
    # everything before the bad event still replays
    before = replay_all(journal, REGISTRY, to_seq=bad.seq - 1)
    assert before["box/a"].version == bad_version - 1


def test_stream_without_resource_created_and_unknown_kind(journal: SQLiteJournal) -> None:
    journal.append("box/z", [_ev("step.started", step="fetch")])
    with pytest.raises(
        ReplayError,
        match=r"box/z version 1 \(seq 1\): step.started before "
        r"resource.created",
    ):
        replay_all(journal, REGISTRY)
    with tempfile.TemporaryDirectory() as tmp:
        other = SQLiteJournal(Path(tmp) / "o.db", synchronous="OFF")
        try:
            other.append("crate/z", [_ev("resource.created", kind="crate", params={}, state="new")])
            with pytest.raises(ReplayError, match="kind 'crate' is not loaded"):
                replay_all(other, REGISTRY)
        finally:
            other.close()


def test_a_state_the_definition_no_longer_has(journal: SQLiteJournal) -> None:
    d = Driver(journal, REGISTRY)
    for c in [
        ("create", "box/a", 1),
        ("fire", "box/a", "prepare", "complete", 0),
        ("fire", "box/a", "start", "complete", 0),
    ]:
        d.play(c)
    started = [e for e in journal.read_stream("box/a") if e.type == "transition.started"][1]
    renamed = registry(BOX.replace("running", "spinning"), LAMP)
    with pytest.raises(ReplayError) as info:
        replay_all(journal, renamed)
    assert (info.value.stream, info.value.version, info.value.seq) == (
        "box/a",
        started.version,
        started.seq,
    )
    assert "target state 'running' is not a state of kind 'box'" in str(info.value)
    # and the initial state of a resource.created
    no_new = registry(
        BOX.replace("initial state new", "initial state fresh")
        .replace("new ->", "fresh ->")
        .replace("new,", "fresh,"),
        LAMP,
    )
    with pytest.raises(
        ReplayError,
        match=r"box/a version 1 \(seq 1\): initial state 'new' "
        r"is not a state of kind 'box'",
    ):
        replay_all(journal, no_new)


def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}


def test_cli_shows_a_replay_error_in_one_line_with_exit_4(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETLOG_MACHINES", raising=False)
    db = tmp_path / "j.db"
    j = SQLiteJournal(db)
    try:
        create_resource(j, load_registry(), "kvm_host/n1", {"host": "n1"})
        j.append(
            "kvm_host/n1",
            [_ev("transition.completed", trigger="validate", from_="discovered", to="ready")],
        )
    finally:
        j.close()
    before = db.read_bytes()
    expected = (
        "fleetlog: error: replay: kvm_host/n1 version 2 (seq 2): transition.completed with "
        "no transition in progress\n"
    )
    script = Path(sys.executable).with_name("fleetlog")
    argv = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]
    )
    r = subprocess.run(
        [*argv, "--journal", str(db), "status"],
        capture_output=True,
        text=True,
        env=_cli_env(),
        check=False,
    )
    assert r.returncode == 4
    assert r.stderr == expected
    assert r.stdout == ""
    for args in (
        ["replay"],
        ["status", "--json"],
        ["graph", "kvm_host", "--highlight", "kvm_host/n1"],
    ):
        capsys.readouterr()
        assert main(["--journal", str(db), *args]) == 4
        out, err = capsys.readouterr()
        assert err == expected and out == ""
    # up to the event before, the journal replays fine
    assert main(["--journal", str(db), "replay", "--at", "1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["resources"][0]["state"] == "discovered"
    assert db.read_bytes() == before


# -- snapshots ---------------------------------------------------------------------------


def _busy_box(journal: Journal) -> Driver:
    d = Driver(journal, REGISTRY)
    d.play(("create", "box/a", 2))
    d.play(("fire", "box/a", "prepare", "complete", 0))
    for _ in range(SNAPSHOT_EVERY // 5 + 2):
        d.play(("fire", "box/a", "start", "complete", 0))
        d.play(("fire", "box/a", "stop", "complete", 0))
    d.play(("create", "box/b", 1))
    return d


def _drop_snapshots(path: Path) -> None:
    conn = sqlite3.connect(path)
    try:
        conn.execute("DROP TABLE snapshots")
        conn.commit()
    finally:
        conn.close()


def test_snapshots_never_change_a_result(journal: SQLiteJournal, tmp_path: Path) -> None:
    d = _busy_box(journal)
    assert journal.get_snapshot("box/a") is None
    truth = replay_all(journal, REGISTRY)["box/a"].to_dict()
    assert load_resource(journal, REGISTRY, "box/a", use_snapshots=False).to_dict() == truth  # type: ignore[union-attr]
    assert journal.get_snapshot("box/a") is None  # use_snapshots=False never writes one
    first = load_resource(journal, REGISTRY, "box/a")
    assert first is not None and first.to_dict() == truth
    snap = journal.get_snapshot("box/a")
    assert snap is not None and snap[0] == d.live["box/a"].version
    # from the snapshot (no events after it), then with events after it
    assert load_resource(journal, REGISTRY, "box/a").to_dict() == truth  # type: ignore[union-attr]
    d.play(("fire", "box/a", "start", "crash", 0))
    d.play(("observe", "box/a", "running"))
    d.play(("lock", "box/a"))
    truth = replay_all(journal, REGISTRY)["box/a"].to_dict()
    assert truth["in_progress"]["trigger"] == "start"
    for use in (True, False):
        got = load_resource(journal, REGISTRY, "box/a", use_snapshots=use)
        assert got is not None and got.to_dict() == truth
    # the cache dropped behind the journal's back
    _drop_snapshots(Path(journal.path))
    assert journal.get_snapshot("box/a") is None
    for use in (True, False):
        got = load_resource(journal, REGISTRY, "box/a", use_snapshots=use)
        assert got is not None and got.to_dict() == truth
    assert journal.get_snapshot("box/a") is not None  # rebuilt on the next long fold
    assert load_resource(journal, REGISTRY, "box/a").to_dict() == truth  # type: ignore[union-attr]
    check_every_prefix(d)


def test_a_snapshot_of_another_definition_is_ignored(journal: SQLiteJournal) -> None:
    d = _busy_box(journal)
    truth = replay_all(journal, REGISTRY)["box/a"].to_dict()
    lie = dict(truth, state="gone")
    rid, version = "box/a", d.live["box/a"].version
    journal.put_snapshot(rid, version, {"definition_hash": "0" * 64, "record": lie})
    assert load_resource(journal, REGISTRY, rid).to_dict() == truth  # type: ignore[union-attr]
    # a snapshot is never used for a replay to an earlier seq
    head = journal.head()
    journal.put_snapshot(
        rid,
        version,
        {"definition_hash": REGISTRY.get("box").spec.definition_hash, "record": lie},
    )
    assert load_resource(journal, REGISTRY, rid, to_seq=head).to_dict() == truth  # type: ignore[union-attr]
    assert load_resource(journal, REGISTRY, rid, use_snapshots=False).to_dict() == truth  # type: ignore[union-attr]


# -- the fleet checkpoint ------------------------------------------------------------------


def _all(journal: Journal, reg: KindRegistry, **kw: Any) -> dict[str, dict[str, Any]]:
    return {rid: rec.to_dict() for rid, rec in replay_all(journal, reg, **kw).items()}


@HISTORIES
@given(CREATES, st.lists(COMMANDS, max_size=30), st.lists(COMMANDS, max_size=30))
def test_a_checkpoint_never_changes_a_result(
    creates: list[tuple[Any, ...]], before: list[tuple[Any, ...]], after: list[tuple[Any, ...]]
) -> None:
    """Whatever stands at the checkpoint (transitions in progress, at a step, needing
    attention, crashed, undone) and whatever follows it, a replay continued from it is
    the replay from the start, at the head and at every seq after it."""
    with tempfile.TemporaryDirectory(prefix="fleetlog-checkpoint-") as tmp:
        j = SQLiteJournal(Path(tmp) / "j.db", synchronous="OFF", actor="t", host="h")
        try:
            driver = Driver(j, REGISTRY)
            for c in [*creates, *before]:
                driver.play(c)
            kept = keep_checkpoint(j, REGISTRY, every=1, per_stream=0)
            assert kept == j.head() and j.checkpoint_seq(CHECKPOINT) == kept
            for c in after:
                driver.play(c)
            start = checkpoint.load(j, REGISTRY)
            assert start is not None and start[0] == kept
            for k in range(kept, j.head() + 1):
                assert _all(j, REGISTRY, to_seq=k) == _all(
                    j, REGISTRY, to_seq=k, use_checkpoint=False
                ), f"at seq {k}"
            final = replay_all(j, REGISTRY)
            assert {rid: view_of(r) for rid, r in final.items()} == driver.at_seq[-1]
            assert _all(j, REGISTRY) == _all(j, REGISTRY, use_checkpoint=False)
            # before the checkpoint it is not used, and the replay is still right
            if kept > 1:
                assert checkpoint.load(j, REGISTRY, kept - 1) is None
                assert _all(j, REGISTRY, to_seq=kept - 1) == _all(
                    j, REGISTRY, to_seq=kept - 1, use_checkpoint=False
                )
        finally:
            j.close()


def test_a_checkpoint_is_kept_only_when_due(journal: SQLiteJournal) -> None:
    d = _busy_box(journal)
    head = journal.head()
    assert keep_checkpoint(journal, REGISTRY, every=head + 1) is None
    assert journal.checkpoint_seq(CHECKPOINT) is None
    assert keep_checkpoint(journal, REGISTRY, every=head) == head
    d.play(("fire", "box/b", "prepare", "complete", 0))
    assert keep_checkpoint(journal, REGISTRY, every=100) is None  # a few events since
    assert journal.checkpoint_seq(CHECKPOINT) == head
    since = journal.head() - head
    # fewer than per_stream events per stream since: folding them is as cheap
    streams = len(journal.stream_heads())
    assert keep_checkpoint(journal, REGISTRY, every=1, per_stream=since / streams + 1) is None
    assert keep_checkpoint(journal, REGISTRY, every=1, per_stream=since / streams) == journal.head()


def _tamper(where: Path | str, sql: str, *params: Any) -> list[Any]:
    """Run ``sql`` on the journal's own tables, behind its back (either backend)."""
    with Raw(str(where)) as raw:
        return raw.q(sql, params)


def _url(journal: Journal) -> str:
    if isinstance(journal, SQLiteJournal):
        return str(journal.path)
    from fleetlog.journal.postgres.store import PostgresJournal

    assert isinstance(journal, PostgresJournal)
    return journal.url


def test_an_altered_checkpoint_is_refused_and_reported(journal: SQLiteJournal) -> None:
    """The checkpoint is sealed to the text as stored: one record changed behind the
    journal's back is never read, and is reported like a snapshot that lies."""
    _busy_box(journal)
    truth = _all(journal, REGISTRY, use_checkpoint=False)
    seq = keep_checkpoint(journal, REGISTRY, every=1)
    assert seq is not None and _all(journal, REGISTRY) == truth
    [(text,)] = _tamper(_url(journal), "SELECT state FROM checkpoints")
    lie = text.replace('"stopped"', '"gone"')
    assert lie != text
    _tamper(_url(journal), "UPDATE checkpoints SET state = ?", lie)
    assert journal.get_checkpoint(CHECKPOINT) is None
    assert any("does not match its seal" in p for _, p in journal.snapshot_problems)
    assert _all(journal, REGISTRY) == truth
    # a writer does not write over it (that would erase what verify should name)
    assert keep_checkpoint(journal, REGISTRY, every=0, per_stream=0) is None
    assert _tamper(_url(journal), "SELECT state FROM checkpoints") == [(lie,)]
    # a checkpoint naming an event the journal holds with another hash
    journal.drop_snapshots()
    assert keep_checkpoint(journal, REGISTRY, every=0, per_stream=0) == seq
    _tamper(_url(journal), "UPDATE checkpoints SET seq = seq - 1")
    assert journal.get_checkpoint(CHECKPOINT) is None
    assert any("but the journal has" in p for _, p in journal.snapshot_problems)
    assert _all(journal, REGISTRY) == truth
    # dropped with the snapshots (verify --drop-snapshots)
    journal.drop_snapshots()
    assert journal.checkpoint_seq(CHECKPOINT) is None


def test_a_checkpoint_of_other_definitions_is_not_used(journal: SQLiteJournal) -> None:
    d = _busy_box(journal)
    keep_checkpoint(journal, REGISTRY, every=1)
    assert checkpoint.load(journal, REGISTRY) is not None
    # box's definition changed (a state added): the records it folded are not reused
    spare = BOX.replace("state gone : final", "state gone : final\n    state spare")
    edited = registry(spare, LAMP)
    assert checkpoint.load(journal, edited) is None
    assert _all(journal, edited) == _all(journal, edited, use_checkpoint=False)
    assert view_of(replay_all(journal, edited)["box/a"]) == d.live["box/a"].view()


def test_status_reads_the_checkpoint_a_writer_kept(tmp_path: Path) -> None:
    """By the CLI, as an operator runs it: a command that appended ``checkpoint.EVERY``
    events keeps a checkpoint on its way out; ``status`` continues from it (read-only)
    and shows what the whole fold shows. A journal made before checkpoints existed gets
    the table when its head is sealed, without costing the next command a full check."""
    machines = tmp_path / "machines"
    machines.mkdir()
    (machines / "lamp.fsm").write_text(LAMP)
    db = tmp_path / "j.db"
    n = checkpoint.EVERY // 2 + 1  # each lamp is created, then switched on: 4+ events
    inventory = tmp_path / "inventory.toml"
    inventory.write_text(f'[lamp."l[1-{n}]"]\n')
    # a journal of an earlier fleetlog: no checkpoints table
    SQLiteJournal(db).close()
    _tamper(db, "DROP TABLE checkpoints")
    env = dict(
        os.environ,
        FLEETLOG_MACHINES=str(machines),
        FLEETLOG_JOURNAL=str(db),
        FLEETLOG_BACKEND="sim",
    )
    env.pop("FLEETLOG_DEBUG", None)

    def fleetlog(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from fleetlog.engine.cli import main; main()", *args],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    loaded = fleetlog("inventory", "load", str(inventory), "--json")
    assert loaded.returncode == 0, loaded.stderr
    j = SQLiteJournal(db, read_only=True)
    try:
        assert j.checkpoint_seq(CHECKPOINT) is None  # the table is made at the seal
        report = j.check_integrity()
        assert report.ok and report.checked == 0  # the cookie recorded includes it
    finally:
        j.close()
    fired = fleetlog("fire", f"lamp/l[1-{n}]", "switch_on", "--parallel", "16")
    assert fired.returncode == 0, fired.stderr
    j = SQLiteJournal(db, read_only=True)
    try:
        reg = load_registry([machines / "lamp.fsm"])
        kept = j.checkpoint_seq(CHECKPOINT)
        assert kept is not None and kept == j.head()
        truth = _all(j, reg, use_checkpoint=False)
    finally:
        j.close()
    shown = fleetlog("status", "--json")
    assert shown.returncode == 0, shown.stderr
    assert shown.stderr == ""
    rows = {r["id"]: r for r in json.loads(shown.stdout)}
    assert len(rows) == n and {r["state"] for r in rows.values()} == {"on"}
    for rid, rec in truth.items():
        assert rows[rid]["state"] == rec["state"] and rows[rid]["version"] == rec["version"]
    # status reads it: altered behind the journal's back, it is refused and reported
    _tamper(db, "UPDATE checkpoints SET state = replace(state, '\"on\"', '\"off\"')")
    shown = fleetlog("status", "--json")
    assert "checkpoint" in shown.stderr and "seal" in shown.stderr, shown.stderr
    assert {r["state"] for r in json.loads(shown.stdout)} == {"on"}
    assert shown.returncode == 4  # an integrity warning, as for a snapshot that lies
    # a cache: dropped with the snapshots, and status is clean again
    dropped = fleetlog("verify", "--drop-snapshots")
    assert dropped.returncode == 0, dropped.stderr
    shown = fleetlog("status", "--json")
    assert shown.returncode == 0 and shown.stderr == "", shown.stderr
    assert {r["state"] for r in json.loads(shown.stdout)} == {"on"}


TRIPLE = """
machine triple "Three simulated steps" {
    param host: str = "h1"
    initial state new
    state done
    transition go : new -> done {
        step a run "true" idempotent
        step b run "true" idempotent
        step c run "true" idempotent
    }
}
"""


def test_a_fire_stopped_by_ctrl_c_keeps_no_checkpoint_and_its_resume_does(
    tmp_path: Path,
) -> None:
    """An operator who pressed Ctrl-C is waiting for the command to end: a fire whose
    transitions were stopped leaves without folding for a checkpoint, even with enough
    events for one. The resume that finishes the plan keeps it."""
    from fleetlog.engine.backends.sim.world import World

    machines = tmp_path / "machines"
    machines.mkdir()
    (machines / "triple.fsm").write_text(TRIPLE)
    db = tmp_path / "j.db"
    n = 4_000  # 11 events each: ~44,000 in all, over twice the streams
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    env.update(FLEETLOG_MACHINES=str(machines), FLEETLOG_JOURNAL=str(db), FLEETLOG_BACKEND="sim")
    cli = [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]
    (tmp_path / "inventory.toml").write_text(f'[triple."t[1-{n}]"]\n')
    loaded = subprocess.run(
        [*cli, "inventory", "load", str(tmp_path / "inventory.toml")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert loaded.returncode == 0, loaded.stderr
    world = World(f"{db}.sim")
    world.latency_ms = 5  # each step takes a while, so the fire is under way for seconds
    world.close()
    fire = subprocess.Popen(
        [*cli, "fire", f"triple/t[1-{n}]", "go", "--parallel", "128"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:  # until there are enough events for a checkpoint
            assert fire.poll() is None, "the fire ended before it could be interrupted"
            assert time.monotonic() < deadline, "the fire never got far enough"
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
                if c.execute("SELECT max(seq) FROM events").fetchone()[0] > 2 * n + 20_000:
                    break
            time.sleep(0.02)
        fire.send_signal(signal.SIGINT)
        _, err = fire.communicate(timeout=120)
    finally:
        if fire.poll() is None:
            fire.kill()
    assert fire.returncode == 130, err
    j = SQLiteJournal(db, read_only=True)
    try:
        assert j.head() >= checkpoint.EVERY and j.checkpoint_seq(CHECKPOINT) is None
    finally:
        j.close()
    resumed = subprocess.run(
        [*cli, "resume", "--all"], env=env, capture_output=True, text=True, check=False
    )
    assert resumed.returncode == 0, resumed.stderr
    j = SQLiteJournal(db, read_only=True)
    try:
        assert j.checkpoint_seq(CHECKPOINT) == j.head()
        records = replay_all(j, load_registry([machines / "triple.fsm"]))
        assert sum(1 for r in records.values() if r.state == "done") == n
    finally:
        j.close()
