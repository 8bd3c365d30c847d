"""``fleetlog rehearse``: run a flow on a scratch twin before touching a host.

The rehearsal copies the journal (export and import: the same events, seqs and hashes)
and the simulated world into a scratch directory, declares there the resources of the
inventory the twin was built from that the journal does not hold yet, injects the
operator's faults, and fires the trigger on the scratch copy with the same runner
``fire`` uses. Waits and retry pauses are not slept (the path is what matters, not the
time). Then it reads the scratch journal's new events back as, per resource, the path
through the steps: attempts, retries, skips, the ensures that started work on other
resources, compensations, and the state it ended in.

The real journal is only read (its head is unchanged) and the real world only copied;
no real host is contacted, whatever backend the journal is bound to.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetlog.engine.backends.sim import SimBackend, World
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.patterns import expand, select
from fleetlog.engine.ops.fanout import FanoutResult, run_many
from fleetlog.engine.ops.twin import (
    FaultSpec,
    build_twin,
    declare_inventory,
    follow_journal,
    inject,
)
from fleetlog.engine.runtime import Runner
from fleetlog.errors import UsageError
from fleetlog.journal import open_journal
from fleetlog.journal.base import Event, Journal


@dataclass
class StepPath:
    """One step of one transition, as the rehearsal ran it."""

    step: str
    outcome: str = "started"  # ok | failed | skipped | in doubt | started
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    detail: str | None = None
    undo: bool = False
    #: The resources this step's ensure started work on.
    ensured: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "outcome": self.outcome,
            "attempts": self.attempts,
            "retries": max(0, self.attempts - 1),
            "errors": self.errors,
            "detail": self.detail,
            "undo": self.undo,
            "ensured": self.ensured,
        }


@dataclass
class TransitionPath:
    resource: str
    trigger: str
    source: str
    target: str
    steps: list[StepPath] = field(default_factory=list)
    outcome: str = "running"  # completed | skipped | failed | aborted | running
    error: str | None = None
    #: ``resource step`` whose ensure started this transition (None: the operator).
    caused_by: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "trigger": self.trigger,
            "from": self.source,
            "to": self.target,
            "caused_by": self.caused_by,
            "steps": [s.as_dict() for s in self.steps],
            "outcome": self.outcome,
            "error": self.error,
        }


@dataclass
class Rehearsal:
    result: FanoutResult
    transitions: list[TransitionPath]
    end_states: dict[str, str]
    faults: list[str]
    head: int
    world_log: list[dict[str, Any]]

    def exit_code(self) -> int:
        return self.result.exit_code()


def rehearse(
    *,
    journal: Journal | None,
    world_path: str | None,
    registry: KindRegistry,
    trigger: str,
    pattern: str,
    given: Mapping[str, Any],
    faults: Sequence[FaultSpec] = (),
    parallel: int = 64,
) -> Rehearsal:
    """Fire ``trigger`` on ``pattern`` in a scratch twin; nothing real is touched."""
    with tempfile.TemporaryDirectory(prefix="fleetlog-rehearse-") as tmp:
        os.chmod(tmp, 0o700)
        scratch = open_journal(os.path.join(tmp, "rehearsal.db"))
        try:
            head = _copy_journal(journal, scratch) if journal is not None else 0
            world_file = os.path.join(tmp, "rehearsal.db.sim")
            copied = _copy_world(world_path, world_file)
            sim = SimBackend(world_file)
            try:
                if not copied:  # no world yet: the twin of the journal
                    build_twin(sim.world, registry, scratch, None)
                declare_inventory(sim.world, registry, scratch)
                # The hosts of the resources created since the world was last seeded
                # (and during the rehearsal) answer, as on the real twin.
                follow_journal(sim, lambda: scratch, lambda: registry)
                said = [inject(sim.world, spec) for spec in faults]
                ids = _targets(scratch, registry, pattern)
                runner = Runner(scratch, registry, sim, sleep=lambda _s: None)
                runner.check_trigger(ids[0], trigger, dict(given))
                result = run_many(
                    ids,
                    lambda rid: runner.fire(rid, trigger, dict(given)),
                    parallel=parallel,
                    progress=False,
                    label=trigger,
                )
                events = [e for e in scratch.read_all() if e.seq > head]
                transitions = paths(events)
                touched = sorted({t.resource for t in transitions} | set(ids))
                ends = {rid: runner.load(rid).state for rid in touched}
                log = [
                    {"host": e.host, "tool": e.tool, "effect": e.effect}
                    for e in sim.world.log_entries()
                ]
            finally:
                sim.close()
        finally:
            scratch.close()
    return Rehearsal(result, transitions, ends, said, head, log)


def _copy_journal(real: Journal, scratch: Journal) -> int:
    """The real journal's events into the scratch one, hashes intact; its head."""
    buf = io.StringIO()
    real.export(buf)
    head = real.head()
    buf.seek(0)
    scratch.import_(buf)
    return head


def _copy_world(world_path: str | None, target: str) -> bool:
    """The operator's world as it is now, copied to ``target``; False: there is none."""
    if world_path is None or not os.path.exists(world_path):
        return False
    source = World(world_path)
    try:
        source.copy_to(target)
    finally:
        source.close()
    return True


def _targets(journal: Journal, registry: KindRegistry, pattern: str) -> list[str]:
    kind = pattern.split("/", 1)[0]
    registry.get(kind)
    existing = sorted(s for s in journal.streams(kind + "/"))
    ids = select(pattern, existing)
    if "/" in pattern and not set("*?") & set(pattern):
        missing = [rid for rid in expand(pattern) if rid not in set(existing)]
        if missing:
            raise UsageError(
                f"no such resources in the journal or the twin's inventory: {', '.join(missing)}"
            )
    if not ids:
        raise UsageError(f"pattern {pattern!r} matches no resource")
    return ids


def paths(events: Sequence[Event]) -> list[TransitionPath]:
    """The transitions ``events`` record, in the order they started, each with its steps."""
    by_event: dict[str, tuple[str, StepPath]] = {}  # step.started event id -> its step
    open_: dict[str, TransitionPath] = {}
    out: list[TransitionPath] = []
    cause: dict[str, str] = {}  # resource -> "resource step" of the ensure that caused it
    for e in events:
        p = ev.read(e)
        rid = e.stream
        if isinstance(p, ev.CommandAccepted) and e.causation_id in by_event:
            parent, step = by_event[e.causation_id]
            if rid not in step.ensured:
                step.ensured.append(rid)
            cause[rid] = f"{parent} step {step.step}"
        elif isinstance(p, ev.TransitionStarted):
            t = TransitionPath(rid, p.trigger, str(p.source), str(p.target))
            t.caused_by = cause.pop(rid, None)
            open_[rid] = t
            out.append(t)
        elif rid in open_:
            _fold_step(open_[rid], e, p, by_event)
            if isinstance(p, ev.TransitionCompleted | ev.TransitionFailed | ev.TransitionAborted):
                t = open_.pop(rid)
                if isinstance(p, ev.TransitionCompleted):
                    t.outcome = "skipped" if p.skipped else "completed"
                    t.error = p.skipped
                elif isinstance(p, ev.TransitionFailed):
                    t.outcome, t.error = "failed", p.error
                else:
                    t.outcome = "aborted"
    return out


def _fold_step(
    t: TransitionPath, e: Event, p: Any, by_event: dict[str, tuple[str, StepPath]]
) -> None:
    name = getattr(p, "step", None)
    if not isinstance(name, str):
        return
    undo = bool(getattr(p, "undo", False))
    step = next((s for s in reversed(t.steps) if s.step == name and s.undo == undo), None)
    if step is None:
        step = StepPath(name, undo=undo)
        t.steps.append(step)
    if isinstance(p, ev.StepStarted):
        step.attempts += 1
        step.outcome = "started"
        by_event[e.event_id] = (t.resource, step)
    elif isinstance(p, ev.StepSucceeded):
        step.outcome = "ok"
        step.detail = _last_line(p.output)
    elif isinstance(p, ev.StepFailed):
        step.outcome = "failed"
        step.errors.append(_last_line(p.error or p.output) or "failed")
    elif isinstance(p, ev.StepSkipped):
        step.outcome = "skipped"
        step.detail = p.reason
    elif isinstance(p, ev.StepInDoubt):
        step.outcome = "in doubt"
        step.errors.append(_last_line(p.reason) or "outcome unknown")


def _last_line(text: str | None) -> str | None:
    if not text:
        return None
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else None
