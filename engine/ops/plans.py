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

A rolling plan (``--batch``, ``--canary``, ``--rate``: ``rolling``) journals its batches
in ``plan.started`` too, so ``resume`` goes on at the batch where it stopped, and every
decision to go past the end of a batch that was not automatic (a confirmed or checked
canary, accepted failures) is journaled as ``plan.continued``, with its author.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import did_you_mean
from fleetlog.engine.ops.fanout import FanoutResult, Stop, run_many
from fleetlog.engine.ops.rolling import (
    BY_ACCEPT,
    BY_CHECK,
    BY_YES,
    GO,
    Pacer,
    Rollout,
    Verdict,
    run_check,
    verdict,
)
from fleetlog.engine.runtime import NotInProgress, Outcome, Runner, reintroduced
from fleetlog.errors import FleetlogError, UsageError
from fleetlog.journal import Journal, LeaseHeld
from fleetlog.journal.ids import uuid7

PREFIX = "plan/"
MEMBER_STATUSES = ("done", "failed", "attention", "running", "not_started")


class NoSuchPlan(UsageError):
    msg_fmt = "no fan-out plan %(plan)r in the journal%(hint)s"


class DamagedPlan(FleetlogError):
    msg_fmt = "fan-out plan %(plan)s: its batches hold %(sizes)d members, its list %(members)d"


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
    rollout: Rollout = field(default_factory=Rollout)

    @property
    def stream(self) -> str:
        return PREFIX + self.id

    @property
    def batches(self) -> list[list[str]]:
        return self.rollout.split(self.members)


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
    members = list(p.members or [])
    sizes = tuple(int(n) for n in p.batches or ())
    if sizes and sum(sizes) != len(members):
        raise DamagedPlan(plan=plan_id, sizes=sum(sizes), members=len(members))
    return Plan(
        id=plan_id,
        trigger=p.trigger,
        params=dict(p.params or {}),
        members=members,
        parallel=int(p.parallel or 1),
        max_fail=float(p.max_fail if p.max_fail is not None else 100.0),
        key=p.key,
        started_seq=started.seq,
        finished=any(e.type == ev.PLAN_FINISHED for e in events),
        pattern=p.pattern,
        rollout=Rollout(p.batch, sizes, int(p.canary or 0), p.canary_check, p.rate),
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
    rollout: Rollout | None = None,
) -> Plan:
    """Journal a new plan (before any member starts), with its batches if it rolls."""
    plan_id = uuid7()
    key = plan_key(trigger, params, members)
    roll = rollout or Rollout()
    payload = ev.PlanStarted(
        trigger=trigger,
        params=dict(params),
        members=list(members),
        parallel=parallel,
        max_fail=max_fail,
        key=key,
        pattern=pattern,
        batch=roll.batch,
        batches=list(roll.sizes) or None,
        canary=roll.canary or None,
        canary_check=roll.canary_check,
        rate=roll.rate,
    )
    [recorded] = journal.append(
        PREFIX + plan_id, [ev.new_event(payload, correlation_id=plan_id)], expected_version=0
    )
    return Plan(
        id=plan_id,
        trigger=trigger,
        params=dict(params),
        members=list(members),
        parallel=parallel,
        max_fail=max_fail,
        key=key,
        started_seq=recorded.seq,
        finished=False,
        pattern=pattern,
        rollout=roll,
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


def continuations(journal: Journal, plan: Plan) -> list[ev.PlanContinued]:
    """Every ``plan.continued`` of ``plan``, oldest first."""
    return [
        p
        for e in journal.read_stream(plan.stream)
        if e.type == ev.PLAN_CONTINUED and isinstance(p := ev.read(e), ev.PlanContinued)
    ]


#: A member's standing as one of its outcomes in this run says it.
_STANDING = {
    "completed": "done",
    "skipped": "done",
    "done": "done",
    "failed": "failed",
    "rejected": "failed",
    "attention": "attention",
    "running": "running",
}


def batch_verdict(
    plan: Plan, index: int, statuses: Mapping[str, str], continued: Sequence[ev.PlanContinued]
) -> Verdict:
    """The verdict at the end of batch ``index`` (0-based) of ``plan``, from where its
    members stand and the plan's journaled continuations."""
    mine = [c for c in continued if c.batch == index + 1]
    return verdict(
        statuses,
        canary=index == 0 and plan.rollout.canary > 0,
        max_fail=plan.max_fail,
        forgiven=frozenset(r for c in mine for r in c.forgiven or ()),
        confirmed=bool(mine),
    )


@dataclass(frozen=True)
class BatchStanding:
    """Where one batch of a plan stands, for ``status --plan``."""

    number: int  # 1-based
    canary: bool
    members: list[str]
    counts: dict[str, int]
    #: How the plan was let go on past its end (``plan.continued``'s ``by``), in order.
    continued: list[str]
    #: Why the plan waits at this batch (None: it does not), and the command that goes on.
    waiting: str | None
    command: str | None = None


def next_command(plan: Plan, said: Verdict) -> str:
    """The exact command that takes ``plan`` past a batch whose verdict is ``said``:
    ``--yes`` confirms a canary, ``--accept-failures`` accepts failures, and a plain
    resume finishes members still running elsewhere (or runs the canary check again)."""
    flag = ""
    if said.failures:
        flag = " --accept-failures"
    elif said.confirm and not plan.rollout.canary_check:
        flag = " --yes"
    return f"fleetlog resume --plan {plan.id}{flag}"


def batch_standings(
    journal: Journal, plan: Plan, standing: Mapping[str, Member]
) -> list[BatchStanding]:
    """Every batch of ``plan`` (one for a plan that does not roll) and whether the plan
    waits there, from the record alone: no probe is run, nothing is journaled."""
    continued = continuations(journal, plan)
    batches = plan.batches
    out = []
    for index, batch in enumerate(batches):
        statuses = {rid: standing[rid].status for rid in batch}
        nxt = batches[index + 1] if index + 1 < len(batches) else []
        waiting = command = None
        if not any(standing[rid].status != "not_started" for rid in nxt):
            said = batch_verdict(plan, index, statuses, continued)
            held = nxt or any(s == "not_started" for s in statuses.values())
            if (said.failures or said.confirm) and held:
                waiting, command = said.reason, next_command(plan, said)
        out.append(
            BatchStanding(
                number=index + 1,
                canary=index == 0 and plan.rollout.canary > 0,
                members=batch,
                counts=counts({rid: standing[rid] for rid in batch}),
                continued=[c.by for c in continued if c.batch == index + 1],
                waiting=waiting,
                command=command,
            )
        )
    return out


def run_plan(
    runner: Runner,
    plan: Plan,
    *,
    progress: bool = True,
    on_member: Callable[[Outcome], None] | None = None,
    on_batch: Callable[[int, int, list[str]], None] | None = None,
    yes: bool = False,
    accept_failures: bool = False,
) -> FanoutResult:
    """Drive every member of ``plan`` that is not done, batch by batch: start the ones
    never started, resume the ones in progress; report the rest from the record. A batch
    starts only once the one before it ended and its verdict (``rolling.verdict``) lets
    the plan go on; otherwise the plan stops there, the rest not started, and the result
    says why and the command that continues it. Journals ``plan.finished`` once no
    member is left to run.

    ``yes``: a canary that passed goes on without its check (``--yes``).
    ``accept_failures``: the failures the plan stopped at no longer count
    (``resume --accept-failures``), once, for the stop it was at.
    ``on_batch(number, of, members)``: told before a batch of a rolling plan starts."""
    journal = runner.journal
    standing = members(journal, plan)
    continued = continuations(journal, plan)
    per_second = plan.rollout.per_second
    pace = Pacer(per_second).wait if per_second else None
    batches = plan.batches
    result = FanoutResult()
    refused: set[str] = set()

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

    def go_on(index: int, by: str, **extra: Any) -> None:
        payload = ev.PlanContinued(batch=index + 1, by=by, **extra)
        journal.append(plan.stream, [ev.new_event(payload, correlation_id=plan.id)])
        continued.append(payload)

    def stop(index: int, said: Verdict, reason: str = "", code: int = 1) -> Stop:
        command = next_command(plan, said)
        return Stop(reason or said.reason, index + 1, len(batches), command, code)

    for index, batch in enumerate(batches):
        canary = index == 0 and plan.rollout.canary > 0
        statuses = {rid: standing[rid].status for rid in batch}
        if accept_failures:  # a stop inside this batch, being accepted
            before = batch_verdict(plan, index, statuses, continued)
            if before.failures and any(s == "not_started" for s in statuses.values()):
                go_on(index, BY_ACCEPT, forgiven=list(before.members))
                accept_failures = False
        todo = [rid for rid in batch if statuses[rid] in ("not_started", "running")]
        if reintroduced("fanout") and any(m.status != "not_started" for m in standing.values()):
            todo = [rid for rid in todo if statuses[rid] == "running"]  # test hook: old resume
        to_run = set(todo)  # a set: a list here made a fan-out of N members cost N²
        for rid in batch:
            if rid not in to_run:
                result.outcomes.append(_recorded(runner, plan, standing[rid]))
        if todo and on_batch is not None and len(batches) > 1:
            on_batch(index + 1, len(batches), todo)
        forgiven = {r for c in continued if c.batch == index + 1 for r in c.forgiven or ()}
        ran = run_many(
            todo,
            one,
            parallel=plan.parallel,
            max_fail_pct=0.0 if canary else plan.max_fail,
            progress=progress,
            label=plan.trigger
            if len(batches) == 1
            else f"{plan.trigger} (batch {index + 1}/{len(batches)})",
            failed_before=sum(
                1 for r, s in statuses.items() if s == "failed" and r not in forgiven
            ),
            total=len(batch),
            pace=pace,
        )
        if todo:
            accept_failures = False  # it accepts the stop the plan was at, not new ones
        result.outcomes.extend(ran.outcomes)
        refused.update(o.resource for o in ran.outcomes if o.status == "rejected")
        statuses.update((o.resource, _STANDING.get(o.status, "failed")) for o in ran.outcomes)
        later = [rid for b in batches[index + 1 :] for rid in b]
        if later and any(standing[rid].status != "not_started" for rid in batches[index + 1]):
            result.not_started.extend(ran.not_started)
            continue  # went past this end before: its verdict was given then
        said = batch_verdict(plan, index, statuses, continued)
        if said.failures and accept_failures and not ran.not_started:
            go_on(index, BY_ACCEPT, forgiven=list(said.members))
            accept_failures = False
            said = batch_verdict(plan, index, statuses, continued)
        if said.confirm and yes:
            go_on(index, BY_YES)
            said = GO
        elif said.confirm and plan.rollout.canary_check:
            check = run_check(
                plan.rollout.canary_check, plan=plan.id, trigger=plan.trigger, canary=batch
            )
            if check.passed:
                go_on(index, BY_CHECK, check=plan.rollout.canary_check)
                said = GO
            else:
                why = f"exit {check.code}" if check.code is not None else "not run"
                detail = f": {check.detail}" if check.detail else ""
                reason = f"the canary check failed ({why}{detail}; resuming checks again)"
                command = next_command(plan, said) + " --yes"
                result.stopped = Stop(reason, index + 1, len(batches), command)
        elif said.confirm:
            result.stopped = stop(index, said, code=3)
        elif not said.go and (said.failures or later):
            result.stopped = stop(index, said)
        if result.stopped is not None or not later:
            result.not_started.extend(ran.not_started)
            if result.stopped is not None:
                result.not_started.extend(later)
            break
    order = {rid: i for i, rid in enumerate(plan.members)}
    result.outcomes.sort(key=lambda o: order.get(o.resource, len(order)))
    result.not_started.sort(key=lambda rid: order.get(rid, len(order)))
    after = members(journal, plan)
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


def _recorded(runner: Runner, plan: Plan, m: Member) -> Outcome:
    """The outcome of a member that ended before this run, from the record."""
    if m.status == "done":
        return Outcome(m.resource, plan.trigger, "done", m.state)
    if m.status == "failed":
        return Outcome(m.resource, plan.trigger, "failed", m.state, m.step, m.error)
    state = runner.load(m.resource).state
    return Outcome(m.resource, plan.trigger, "attention", state, m.step, m.error)


def _reported(journal: Journal, plan: Plan, rid: str, runner: Runner) -> Outcome:
    m = members(journal, plan)[rid]
    if m.status == "done":
        return Outcome(rid, plan.trigger, "completed", m.state)
    if m.status == "failed":
        return Outcome(rid, plan.trigger, "failed", m.state, m.step, m.error)
    return Outcome(rid, plan.trigger, "attention", runner.load(rid).state, m.step, m.error)
