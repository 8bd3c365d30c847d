"""A fan-out is one journaled plan: started whole, finished by ``resume`` from the record.

``fleetlog fire PATTERN TRIGGER`` over several resources first journals ``plan.started``
on the stream ``plan/<id>``: the trigger, the params, the expanded members in order,
``--parallel`` and ``--max-fail``. Only then does the first member start, each as a
command of the plan (its ``command.accepted`` names the plan as its run). So a fan-out
killed part-way is not "the members that were in flight": ``resume --all`` (or ``resume
--plan ID``) reads the plan and finishes every member that is not done, the ones never
started included; ``status --plan ID`` shows where each stands; and firing the same
fan-out again while it is unfinished continues it, reporting the members already done
as done instead of refusing them.

Where a member stands is read from the journal alone, from the plan's start on:
completed or failed (its transition ended), needing attention, running (its transition
is in progress), or not started.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import did_you_mean
from fleetlog.engine.ops.fanout import FanoutResult, run_many
from fleetlog.engine.runtime import NotInProgress, Outcome, Runner
from fleetlog.errors import UsageError
from fleetlog.journal import Journal, LeaseHeld
from fleetlog.journal.ids import uuid7

PREFIX = "plan/"
MEMBER_STATUSES = ("done", "failed", "attention", "running", "not_started")


class NoSuchPlan(UsageError):
    msg_fmt = "no fan-out plan %(plan)r in the journal%(hint)s"


@dataclass(frozen=True)
class Plan:
    id: str
    trigger: str
    params: dict[str, Any]
    members: list[str]
    parallel: int
    max_fail: float
    key: str
    started_seq: int
    finished: bool
    pattern: str | None = None

    @property
    def stream(self) -> str:
        return PREFIX + self.id


@dataclass(frozen=True)
class Member:
    """Where one member of a plan stands."""

    resource: str
    status: str  # one of MEMBER_STATUSES
    state: str | None = None
    step: str | None = None
    error: str | None = None


def plan_key(trigger: str, params: Mapping[str, Any], members: Sequence[str]) -> str:
    """What makes two fan-outs the same: trigger, params and members, in order."""
    text = json.dumps([trigger, dict(params), list(members)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _plan(journal: Journal, plan_id: str) -> Plan | None:
    events = journal.read_stream(PREFIX + plan_id)
    started = next((e for e in events if e.type == ev.PLAN_STARTED), None)
    if started is None:
        return None
    p = ev.PlanStarted.from_payload(started.payload)
    return Plan(
        id=plan_id,
        trigger=p.trigger,
        params=dict(p.params or {}),
        members=list(p.members or []),
        parallel=int(p.parallel or 1),
        max_fail=float(p.max_fail if p.max_fail is not None else 100.0),
        key=p.key,
        started_seq=started.seq,
        finished=any(e.type == ev.PLAN_FINISHED for e in events),
        pattern=p.pattern,
    )


def load_plan(journal: Journal, plan_id: str) -> Plan:
    plan = _plan(journal, plan_id)
    if plan is None:
        known = [s.removeprefix(PREFIX) for s in journal.streams(PREFIX)]
        raise NoSuchPlan(plan=plan_id, hint=did_you_mean(plan_id, known))
    return plan


def plans(journal: Journal, *, unfinished_only: bool = False) -> list[Plan]:
    """Every plan, oldest first."""
    found = [p for s in journal.streams(PREFIX) if (p := _plan(journal, s[len(PREFIX) :]))]
    found.sort(key=lambda p: p.started_seq)
    return [p for p in found if not (unfinished_only and p.finished)]


def start_plan(
    journal: Journal,
    trigger: str,
    params: Mapping[str, Any],
    members: Sequence[str],
    *,
    parallel: int,
    max_fail: float,
    pattern: str | None = None,
) -> Plan:
    """Journal a new plan (before any member starts)."""
    plan_id = uuid7()
    key = plan_key(trigger, params, members)
    payload = ev.PlanStarted(
        trigger=trigger,
        params=dict(params),
        members=list(members),
        parallel=parallel,
        max_fail=max_fail,
        key=key,
        pattern=pattern,
    )
    [recorded] = journal.append(
        PREFIX + plan_id, [ev.new_event(payload, correlation_id=plan_id)], expected_version=0
    )
    return Plan(
        plan_id,
        trigger,
        dict(params),
        list(members),
        parallel,
        max_fail,
        key,
        recorded.seq,
        False,
        pattern,
    )


def same_unfinished(
    journal: Journal, trigger: str, params: Mapping[str, Any], members: Sequence[str]
) -> Plan | None:
    """The newest unfinished plan of exactly this fan-out, to continue instead of
    starting it over."""
    key = plan_key(trigger, params, members)
    matching = [p for p in plans(journal, unfinished_only=True) if p.key == key]
    return matching[-1] if matching else None


def members(journal: Journal, plan: Plan) -> dict[str, Member]:
    """Where every member of ``plan`` stands, from the events since it started."""
    wanted = set(plan.members)
    transition_of: dict[str, str] = {}  # member -> its transition id in this plan
    status: dict[str, Member] = {rid: Member(rid, "not_started") for rid in plan.members}
    types = (
        ev.COMMAND_ACCEPTED,
        ev.TRANSITION_STARTED,
        *ev.TRANSITION_ENDS,
        ev.ATTENTION_REQUIRED,
        ev.STEP_RESOLVED,
    )
    for event in journal.read_all(from_seq=plan.started_seq, types=types):
        rid = event.stream
        if rid not in wanted:
            continue
        p = ev.read(event)
        if isinstance(p, ev.CommandAccepted):
            if p.run == plan.id and event.correlation_id:
                transition_of[rid] = event.correlation_id
            continue
        if transition_of.get(rid) != event.correlation_id:
            continue  # another transition of this resource, not the plan's
        if isinstance(p, ev.TransitionStarted):
            status[rid] = Member(rid, "running", p.target)
        elif isinstance(p, ev.TransitionCompleted):
            status[rid] = Member(rid, "done", p.target)
        elif isinstance(p, ev.TransitionFailed | ev.TransitionAborted):
            step = p.step if isinstance(p, ev.TransitionFailed) else None
            status[rid] = Member(rid, "failed", p.target, step, p.error)
        elif isinstance(p, ev.AttentionRequired):
            status[rid] = Member(rid, "attention", None, p.step, p.reason)
        elif isinstance(p, ev.StepResolved):
            status[rid] = Member(rid, "running", None, p.step)
    return status


def counts(standing: Mapping[str, Member]) -> dict[str, int]:
    found = dict.fromkeys(MEMBER_STATUSES, 0)
    for m in standing.values():
        found[m.status] += 1
    return found


def run_plan(
    runner: Runner,
    plan: Plan,
    *,
    progress: bool = True,
    on_member: Callable[[Outcome], None] | None = None,
) -> FanoutResult:
    """Drive every member of ``plan`` that is not done: start the ones never started,
    resume the ones in progress; report the rest from the record. Journals
    ``plan.finished`` once no member is left to run."""
    journal = runner.journal
    standing = members(journal, plan)
    result = FanoutResult()
    todo: list[str] = []
    failed_before = 0
    for rid in plan.members:
        m = standing[rid]
        if m.status in ("not_started", "running"):
            todo.append(rid)
            continue
        if m.status == "done":
            result.outcomes.append(Outcome(rid, plan.trigger, "done", m.state))
        elif m.status == "failed":
            failed_before += 1
            result.outcomes.append(Outcome(rid, plan.trigger, "failed", m.state, m.step, m.error))
        else:
            state = runner.load(rid).state
            result.outcomes.append(Outcome(rid, plan.trigger, "attention", state, m.step, m.error))

    def one(rid: str) -> Outcome:
        if standing[rid].status == "running":
            try:
                return runner.resume(rid)
            except NotInProgress:  # it ended meanwhile: say how
                return _reported(journal, plan, rid, runner)
            except LeaseHeld as exc:
                return Outcome(rid, plan.trigger, "running", error=str(exc))
        out = runner.fire(rid, plan.trigger, plan.params, correlation_id=plan.id)
        if on_member is not None:
            on_member(out)
        return out

    ran = run_many(
        todo,
        one,
        parallel=plan.parallel,
        max_fail_pct=plan.max_fail,
        progress=progress,
        label=plan.trigger,
        failed_before=failed_before,
        total=len(plan.members),
    )
    result.outcomes.extend(ran.outcomes)
    result.not_started.extend(ran.not_started)
    order = {rid: i for i, rid in enumerate(plan.members)}
    result.outcomes.sort(key=lambda o: order.get(o.resource, len(order)))
    after = members(journal, plan)
    refused = {o.resource for o in ran.outcomes if o.status == "rejected"}
    left = [m for m in after.values() if m.status in ("not_started", "running")]
    if not plan.finished and all(m.status == "not_started" and m.resource in refused for m in left):
        # Everything ran to an end; members refused before they started (their state
        # does not allow the trigger, a guard is false) are counted as such.
        tally = counts(after)
        tally["not_started"] -= len(left)
        tally["rejected"] = len(left)
        finished = ev.PlanFinished(counts=tally)
        journal.append(plan.stream, [ev.new_event(finished, correlation_id=plan.id)])
    return result


def _reported(journal: Journal, plan: Plan, rid: str, runner: Runner) -> Outcome:
    m = members(journal, plan)[rid]
    if m.status == "done":
        return Outcome(rid, plan.trigger, "completed", m.state)
    if m.status == "failed":
        return Outcome(rid, plan.trigger, "failed", m.state, m.step, m.error)
    return Outcome(rid, plan.trigger, "attention", runner.load(rid).state, m.step, m.error)
