"""``fleetlog fire --submit`` and ``fleetlog worker``, on SQLite and PostgreSQL.

Every test runs on both backends through the ``shared`` fixture: one journal URL (an
SQLite file, or a throw-away PostgreSQL schema), one sim world file shared by every
process (``FLEETLOG_SIM_WORLD``), and the worker tests' machine (fixtures/worker).
The many-worker crash test is in ``test_postgres_workers.py``.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import SimBackend
from fleetlog.engine.model import load_registry
from fleetlog.engine.ops import create_resource
from fleetlog.journal.base import Event, Journal
from tests.engine.conftest import CRASH_ENV, FIXTURES, CliDriver
from tests.journal.pg import Schemas

MACHINES = FIXTURES / "worker"


@dataclass
class Shared(CliDriver):
    """A journal several processes share, its sim world, and ways to run fleetlog on it."""

    url: str
    world: str
    root: Path
    capsys: pytest.CaptureFixture[str]
    _journal: Journal | None = None
    child_timeout: float = 300.0

    def add(self, *names: str, **params: Any) -> None:
        registry = load_registry()
        for name in names:
            create_resource(
                self.journal, registry, f"wjob/{name}", {"host": f"host-{name}", **params}
            )

    @property
    def journal_path(self) -> str:
        return self.url

    def inherited_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
        env.update(
            FLEETLOG_MACHINES=str(MACHINES), FLEETLOG_SIM_WORLD=self.world, FLEETLOG_ACTOR="tester"
        )
        return env

    def types(self, rid: str) -> list[str]:
        return [e.type for e in self.events(rid) if not e.type.startswith("lock.")]

    def counters(self, *names: str) -> dict[str, int]:
        """How many times each job's non-idempotent ``count`` step really ran."""
        with SimBackend(self.world) as sim:
            return {
                n: int(sim.world.host_state(f"host-{n}").get("counters", {}).get(f"c_{n}", 0))
                for n in names
            }

    def wait_for(self, predicate: Any, what: str, limit: float = 300.0) -> None:
        """Block until ``predicate()`` holds, woken by appends (a hang guard, not a
        timing assertion: ``limit`` only turns a hang into a failure)."""
        import time

        deadline = time.monotonic() + limit
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"gave up waiting for {what}")
            self.journal.wait_for_append(self.journal.head(), timeout=0.5)

    def close(self) -> None:
        if self._journal is not None:
            self._journal.close()


@pytest.fixture(params=["sqlite", "postgres"])
def shared(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Shared]:
    schemas = Schemas()
    url = str(tmp_path / "j.db") if request.param == "sqlite" else schemas.url()
    world = str(tmp_path / "world.sim")
    for name in list(os.environ):
        if name.startswith("FLEETLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLEETLOG_MACHINES", str(MACHINES))
    monkeypatch.setenv("FLEETLOG_SIM_WORLD", world)
    monkeypatch.chdir(tmp_path)
    s = Shared(url, world, tmp_path, capsys)
    yield s
    s.close()
    schemas.cleanup()


def _in_doubt(events: list[Event]) -> list[str]:
    """Steps started and never given an outcome, in a list of one stream's events."""
    open_steps: dict[str, int] = {}
    for e in events:
        key = str(e.payload.get("step"))
        if e.type == "step.started":
            open_steps[key] = e.seq
        elif e.type in ("step.succeeded", "step.failed", "step.skipped"):
            open_steps.pop(key, None)
    return sorted(open_steps)


# -- submitting -----------------------------------------------------------------------


def test_submit_journals_only_the_accepted_command_and_is_idempotent(shared: Shared) -> None:
    shared.add("a")
    res = shared.cli("fire", "wjob/a", "build", "--submit", "--command-id", "cmd-1", "--json")
    assert res.code == 0, res.err
    (row,) = res.json()
    assert (row["resource"], row["command_id"]) == ("wjob/a", "cmd-1")
    assert shared.types("wjob/a") == ["resource.created", "command.accepted"]
    again = shared.cli("fire", "wjob/a", "build", "--submit", "--command-id", "cmd-1", "--json")
    assert again.code == 0 and again.json()[0]["seq"] == row["seq"]
    assert shared.types("wjob/a") == ["resource.created", "command.accepted"]
    assert shared.counters("a") == {"a": 0}  # nothing ran


def test_submit_refuses_what_fire_would_refuse_and_journals_nothing(shared: Shared) -> None:
    shared.add("a")
    before = shared.journal.head()
    assert shared.cli("fire", "wjob/a", "nosuch", "--submit").code == 2
    assert shared.cli("fire", "wjob/zz", "build", "--submit").code == 2
    assert shared.journal.head() == before


def test_a_pattern_is_submitted_all_or_nothing_and_in_order(shared: Shared) -> None:
    shared.add("a", "b", "c")
    assert shared.cli("fire", "wjob/b", "build").code == 0  # b is done: build is refused
    before = shared.journal.head()
    res = shared.cli("fire", "wjob/a,b,c", "build", "--submit")
    assert res.code == 2 and "wjob/b" in res.err
    assert shared.journal.head() == before  # a was valid, but nothing was submitted
    res = shared.cli("fire", "wjob/a,c", "build", "--submit", "--json")
    assert res.code == 0, res.err
    rows = res.json()
    assert [r["resource"] for r in rows] == ["wjob/a", "wjob/c"]
    assert rows[0]["seq"] < rows[1]["seq"] and len({r["command_id"] for r in rows}) == 2
    run = {
        e.payload["run"]
        for n in ("a", "c")
        for e in shared.events(f"wjob/{n}")
        if e.type == "command.accepted"
    }
    assert len(run) == 1 and None not in run  # one run id joins the two submissions


# -- running --------------------------------------------------------------------------


def test_worker_runs_submitted_commands_once(shared: Shared) -> None:
    shared.add("a", "b", "c")
    assert shared.cli("fire", "wjob/*", "build", "--submit").code == 0
    res = shared.cli("worker", "--once", "--parallel", "2")
    assert res.code == 0, res.err
    assert sorted(res.out.splitlines()) == [
        f"wjob/{n} build: completed -> done" for n in ("a", "b", "c")
    ]
    for n in ("a", "b", "c"):
        events = shared.events(f"wjob/{n}")
        accepted = next(e for e in events if e.type == "command.accepted")
        started = next(e for e in events if e.type == "transition.started")
        # The transition continues the submitted command: same command and transition id.
        assert started.command_id == accepted.command_id
        assert started.correlation_id == accepted.correlation_id
        assert started.seq > accepted.seq
    assert shared.counters("a", "b", "c") == {"a": 1, "b": 1, "c": 1}
    assert shared.cli("worker", "--once").out.strip() == "nothing to run"
    assert shared.journal.verify().ok


def test_a_command_that_became_impossible_is_rejected_once(shared: Shared) -> None:
    shared.add("a")
    assert shared.cli("fire", "wjob/a", "build", "--submit").code == 0
    assert shared.cli("fire", "wjob/a", "rebuild", "--submit").code == 0  # new -> done too
    res = shared.cli("worker", "--once")
    assert res.code == 1, res.err  # a job refused is an operation failed (docs/output.md)
    assert "wjob/a rebuild: rejected: wjob/a: trigger 'rebuild' is not allowed" in res.out
    assert shared.types("wjob/a")[-1] == "command.rejected"
    assert shared.cli("worker", "--once").out.strip() == "nothing to run"
    assert shared.types("wjob/a").count("command.rejected") == 1


# -- taking over ----------------------------------------------------------------------


def test_worker_takes_over_a_dead_process_s_transition(shared: Shared) -> None:
    """``fire`` is SIGKILLed after `prep` (k=5: accepted+started, prep started and
    succeeded, nap skipped); the worker breaks its lease and finishes the job."""
    shared.add("a")
    dead = shared.sub("fire", "wjob/a", "build", **{CRASH_ENV: "5"})
    assert dead.code == -signal.SIGKILL
    res = shared.cli("worker", "--once")
    assert res.code == 0, res.err
    assert res.out.strip() == "wjob/a build: completed -> done"
    broken = [e for e in shared.events("wjob/a") if e.type == "lock.broken"]
    assert len(broken) == 1 and broken[0].payload["reason"] == "owner process is gone"
    assert shared.types("wjob/a").count("transition.started") == 1
    assert shared.counters("a") == {"a": 1}


def test_an_in_doubt_non_idempotent_step_is_parked_for_an_operator(shared: Shared) -> None:
    """Killed right after journaling `count`'s start (k=6): the worker cannot know
    whether it ran, so it needs attention, and the worker leaves it alone after that."""
    shared.add("a")
    assert shared.sub("fire", "wjob/a", "build", **{CRASH_ENV: "6"}).code == -signal.SIGKILL
    res = shared.cli("worker", "--once")
    assert res.code == 3, res.err  # needs attention (docs/output.md)
    assert "wjob/a build: attention" in res.out
    head = shared.journal.head()
    assert shared.cli("worker", "--once").out.strip() == "nothing to run"
    assert shared.journal.head() == head  # parked work is not retried
    assert shared.counters("a") == {"a": 0}
    resolved = shared.cli(
        "resolve", "wjob/a", "--step", "count", "--as", "retry", "--reason", "never ran", "--no-run"
    )
    assert resolved.code == 0, resolved.err
    res = shared.cli("worker", "--once")
    assert res.out.strip() == "wjob/a build: completed -> done"
    assert shared.counters("a") == {"a": 1}


def test_sigterm_finishes_the_current_step_releases_and_exits_0(shared: Shared) -> None:
    shared.add("a", pause=5)
    assert shared.cli("fire", "wjob/a", "build", "--submit").code == 0
    proc = shared.spawn("worker")

    def napping() -> bool:
        return any(
            e.type == "step.started" and e.payload.get("step") == "nap"
            for e in shared.events("wjob/a")
        )

    try:
        shared.wait_for(napping, "the worker to start the nap step")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "stopped before its next step" in out
    events = shared.events("wjob/a")
    assert _in_doubt(events) == []  # the step in flight finished and was journaled
    assert any(e.type == "step.succeeded" and e.payload["step"] == "nap" for e in events)
    assert events[-1].type == "lock.released"
    assert "transition.completed" not in [e.type for e in events]
    res = shared.cli("worker", "--once")  # another worker picks it up where it stopped
    assert res.out.strip() == "wjob/a build: completed -> done", res.err
    assert shared.counters("a") == {"a": 1}
    assert [e.payload["step"] for e in shared.events("wjob/a") if e.type == "step.started"] == [
        "prep",
        "nap",
        "count",
        "fin",
    ]
