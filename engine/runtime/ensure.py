"""``ensure R is S via T``: make another resource reach a state, at most once.

``ensure each RS is S via T`` does it for every resource a ``list[ref]`` param names,
one after the other.

If R is in S, nothing to do. If R is in progress, wait for it — or, when the process
driving it is gone (its lease expired or its pid is dead), take the transition over and
resume it; when it waits for an operator (it needs attention), the step needs attention
too, since only the operator can move R on. Otherwise fire T on R with causation = this
step. Two transitions ensuring the same R at once race on R's stream version; the loser
sees R in progress and waits, so R is configured once (the seed's "check if configured;
else lock and configure").
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from fleetlog.dsl.spec import EnsureAction
from fleetlog.engine.model.kinds import TriggerNotAllowed
from fleetlog.engine.runtime.actions import ActionResult
from fleetlog.engine.runtime.leases import owner_is_dead
from fleetlog.engine.runtime.outcome import Busy, NotInProgress
from fleetlog.engine.runtime.task import Task
from fleetlog.errors import FleetlogError
from fleetlog.journal.base import LeaseHeld
from fleetlog.journal.environment import JournalUnavailable

POLL = 0.05
DEFAULT_TIMEOUT = 3600.0


def ensure(
    task: Task, action: EnsureAction, *, causation_id: str, timeout: float | None
) -> ActionResult:
    """One ``ensure``, or with ``each`` every resource of a list param in turn (last
    first with ``reverse``), all within the step's one timeout. The first that fails
    fails the step; the ones before it stay where they got, and a retry or resume finds
    them already there."""
    scope = task.scope
    started = time.monotonic()
    deadline = started + (timeout or DEFAULT_TIMEOUT)
    if not action.each:
        rid = scope.record.id if action.ref == "self" else scope.params.get(action.ref)
        if not isinstance(rid, str):
            return ActionResult(False, error=f"ensure: {action.ref} names no resource")
        return _ensure_one(task, rid, action, causation_id, started, deadline)
    targets = scope.params.get(action.ref) or []
    if not isinstance(targets, list) or not all(isinstance(t, str) for t in targets):
        return ActionResult(False, error=f"ensure each: {action.ref} is not a list of resources")
    lines: list[str] = []
    for rid in reversed(targets) if action.reverse else targets:
        one = _ensure_one(task, rid, action, causation_id, time.monotonic(), deadline)
        if not one.ok:
            return ActionResult(
                False,
                "".join(lines),
                error=one.error,
                duration=time.monotonic() - started,
                attention=one.attention,
            )
        lines.append(one.output + "\n")
    if not targets:
        lines.append(f"{action.ref}: no resources\n")
    return ActionResult(True, "".join(lines), 0, duration=time.monotonic() - started)


def _ensure_one(
    task: Task,
    rid: str,
    action: EnsureAction,
    causation_id: str,
    started: float,
    deadline: float,
) -> ActionResult:
    intake, leases = task.intake, task.leases
    fired = False
    while True:
        rec = intake.load(rid)
        if rec.in_progress is None and rec.state == action.state:
            how = "reached" if fired else "already"
            return ActionResult(
                True, f"{rid} {how} {action.state}", 0, duration=time.monotonic() - started
            )
        if rec.in_progress is not None and rec.attention:
            # It waits for an operator, not for a process: waiting here would wait for
            # the step's whole timeout, and resuming it (it looks orphaned: nobody holds
            # its lease) only journals a lease taken and given back, again and again.
            return _waits_for_operator(rid, rec.attention, started)
        if rec.in_progress is not None:
            lease = intake.journal.get_lease(rid)
            orphaned = lease is None or lease.expires_at < time.time() or owner_is_dead(lease.owner)
            if orphaned:
                try:
                    intake.resume(rid, inherited=leases)
                    continue
                except (LeaseHeld, NotInProgress):
                    pass  # someone else took it over, or it finished meanwhile: look again
        else:
            if fired:
                return ActionResult(False, error=f"{rid} ended in {rec.state}, not {action.state}")
            try:
                out = intake.fire(
                    rid, action.trigger, {}, causation_id=causation_id, inherited=leases
                )
            except (Busy, LeaseHeld):
                out = None  # someone else got there first: wait for them
            except JournalUnavailable:
                raise  # disk full, read-only media: waiting for a lease cannot help
            except (TriggerNotAllowed, FleetlogError) as exc:
                if intake.load(rid).version == rec.version:
                    return ActionResult(False, error=f"ensure {rid} is {action.state}: {exc}")
                # It moved since we looked (another ensure just took it to the state, or
                # started it): look again rather than fail on a stale reading.
                out = None
            if out is not None:
                fired = True
                if out.status == "attention":
                    return _waits_for_operator(
                        rid, {"step": out.step, "reason": out.error}, started
                    )
                if not out.ok:
                    return ActionResult(False, error=f"{rid} {action.trigger} failed: {out.error}")
                continue
        if time.monotonic() >= deadline:
            return ActionResult(False, error=f"{rid} did not reach {action.state} in time")
        time.sleep(POLL)


def _waits_for_operator(rid: str, attention: Mapping[str, Any], started: float) -> ActionResult:
    step, why = attention.get("step"), attention.get("reason") or "no reason recorded"
    message = f"{rid} needs attention at its step {step!r}: {why}"
    return ActionResult(
        False, error=message, attention=message, duration=time.monotonic() - started
    )
