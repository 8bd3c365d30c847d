"""The step loop: one transition's plan, run step by step with every start and outcome
journaled.

Fresh and resumed transitions share this loop: it starts from where the journal says the
transition stands (``Progress``, reconstructed from its events) and skips what finished.
Before each side effect ``step.started`` is journaled under the lease's fencing token;
its outcome follows. A step found started with no outcome is *in doubt*: its check
decides, or it is re-run when that is safe, or the resource needs attention.
"""

from __future__ import annotations

import contextlib
import shlex
from dataclasses import replace
from typing import Any

from fleetlog.dsl.spec import StepSpec
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.progress import StepState
from fleetlog.engine.runtime import actions, attributes
from fleetlog.engine.runtime.ensure import ensure
from fleetlog.engine.runtime.outcome import Outcome, Stopping
from fleetlog.engine.runtime.reintroduce import reintroduced
from fleetlog.engine.runtime.task import Task
from fleetlog.engine.runtime.undo import fail_transition
from fleetlog.errors import FleetlogError
from fleetlog.journal import Event, Fenced


def drive(task: Task) -> Outcome:
    """Run what is left of the task's plan to an outcome."""
    try:
        outcome = _run_plan(task)
    except BaseException:
        # Stopped between steps, or an error: the outcome held back still counts, unless
        # the lease is gone, and then it can never be written (nor hide the reason).
        with contextlib.suppress(Fenced):
            task.writer.flush(task.rid)
        raise
    task.writer.flush(task.rid)
    return outcome


def _run_plan(task: Task) -> Outcome:
    prog, rec, rid = task.progress, task.record, task.rid
    if prog.phase == "run" and prog.attention is None:
        for step in prog.plan:
            st = prog.steps[step.name]
            if st.status in ("succeeded", "skipped"):
                continue
            if _step(task, step, st) != "done":
                break
    if prog.attention is not None:
        att = prog.attention
        return Outcome(rid, prog.trigger, "attention", rec.state, att["step"], att["reason"])
    if prog.phase == "undo":
        return fail_transition(task)
    kind = task.kind
    if prog.definition_hash == kind.spec.definition_hash:
        live = replace(rec, in_progress=None)
        kind.fire(live, prog.trigger)
        to = live.state
    else:
        # Started under an earlier definition: the recorded plan runs to the end,
        # destination included, even if the file now sends the trigger elsewhere.
        to = prog.target
    done = ev.TransitionCompleted(trigger=prog.trigger, source=rec.state, target=to)
    task.writer.finish(rid, task.leases, done, prog.transition_id, prog.causation_id)
    last = prog.plan[-1].name if prog.plan else None
    output = prog.steps[last].output if last else ""
    return Outcome(rid, prog.trigger, "completed", to, last, output=output)


#: How often a step whose outcome came back unknown is run again in one go (when that
#: is safe) before it counts as failed.
IN_DOUBT_RERUNS = 2


def resolve_hint(rid: str, step: str) -> str:
    """The command line that settles a step in doubt, ready to type: the operator finds
    out whether the step took effect and picks its ``--as``."""
    return (
        "find out whether it took effect, then type: fleetlog resolve "
        f"{shlex.quote(rid)} --step {shlex.quote(step)} --as done --reason 'it took effect' "
        "(or --as retry to run it again, --as abort to fail the transition and run its undo)"
    )


def _in_doubt(task: Task, step: StepSpec, st: StepState, lost: str | None = None) -> str | None:
    """A step started whose outcome is unknown (never recorded, or lost with the
    connection): 'done' if its check shows the effect, 'attention' if re-running it could
    repeat a side effect, else None (run it again: it is idempotent, or its check shows
    the effect is not there)."""
    prog, rid = task.progress, task.rid
    safe_to_rerun = step.idempotent or step.action.kind in ("ensure", "wait")
    if lost is None:
        lost = (
            f"step {step.name!r} started (attempt {st.attempts}) but its outcome was never recorded"
        )
    reason = None
    if step.check is not None:
        task.writer.flush(rid)
        verdict, out = actions.probe_verdict(task.backend, task.scope, step.check)
        if verdict:
            found = ev.StepSucceeded(step=step.name, attempt=st.attempts, via="check", output=out)
            task.writer.record(rid, found, prog.transition_id)
            st.status = "succeeded"
            return "done"
        if verdict is None and not safe_to_rerun:
            reason = (
                f"{lost}, and its check could not run ({out}); running it again "
                "could repeat its side effect"
            )
    elif not safe_to_rerun:
        reason = (
            f"{lost}; it is not idempotent and has no check, so running it again "
            "could repeat its side effect"
        )
    if reason is None:
        return None
    reason = f"{reason}; {resolve_hint(rid, step.name)}"
    task.writer.record(rid, ev.AttentionRequired(step=step.name, reason=reason), prog.transition_id)
    prog.attention = {"step": step.name, "reason": reason}
    return "attention"


def _step(task: Task, step: StepSpec, st: StepState) -> str:
    """Run one step to an outcome: 'done', 'failed' or 'attention'."""
    prog, rid, scope, writer = task.progress, task.rid, task.scope, task.writer
    corr = prog.transition_id
    opened = task.opened
    if opened is not None and st.status == "in_doubt" and st.started_event_id == opened.event_id:
        task.opened = None  # journaled with the transition's start, a moment ago
    else:
        opened = None
    if st.status == "in_doubt" and opened is None:
        decided = _in_doubt(task, step, st)
        if decided is not None:
            return decided
    if step.when is not None and not actions.guard_holds(scope, step.when):
        writer.record(rid, ev.StepSkipped(step=step.name, reason="when"), corr)
        st.status = "skipped"
        return "done"
    retry = step.retry
    max_attempts = 1 + (retry.count if retry else 0)
    reruns_left = IN_DOUBT_RERUNS
    while True:
        if opened is not None:
            started, opened = opened, None
        else:
            if step.check is not None and st.status != "in_doubt":
                writer.flush(rid)  # the probe asks the backend: write what we know first
                holds, out = actions.probe(task.backend, scope, step.check)
                if holds:
                    skipped = ev.StepSkipped(step=step.name, reason="check", output=out)
                    writer.record(rid, skipped, corr)
                    st.status = "skipped"
                    return "done"
            st.attempts += 1
            _check_fence(task)
            started = writer.record(
                rid,
                ev.StepStarted(step=step.name, attempt=st.attempts, token=task.leases.token(rid)),
                corr,
            )
        st.status = "in_doubt"
        st.started_event_id = started.event_id
        try:
            res = _act(task, step, started)
        except FleetlogError as exc:  # a missing secret, a dangling ref: the step fails
            res = actions.ActionResult(False, error=scope.redact(str(exc)))
        if res.attention is not None:
            # Blocked on something an operator must settle first; the step stays
            # started with no outcome, and runs again once resolved as retry.
            reason = (
                f"{res.attention}; once that is settled, type: fleetlog resolve "
                f"{shlex.quote(rid)} --step {shlex.quote(step.name)} --as retry "
                "--reason 'its dependency is settled'"
            )
            writer.record(rid, ev.AttentionRequired(step=step.name, reason=reason), corr)
            prog.attention = {"step": step.name, "reason": reason}
            return "attention"
        if res.in_doubt and reintroduced("in_doubt"):
            res = replace(res, in_doubt=False)  # test hook: the old "just a failure"
        if res.in_doubt and reruns_left > 0:
            writer.record(
                rid, ev.StepInDoubt(step=step.name, attempt=st.attempts, reason=res.error), corr
            )
            lost = f"step {step.name!r} (attempt {st.attempts}) was sent but {res.error}"
            decided = _in_doubt(task, step, st, lost)
            if decided is not None:
                return decided
            reruns_left -= 1
            continue  # safe to run again: idempotent, or its check found no effect
        values: dict[str, Any] = {}
        if res.ok and step.sets:
            try:
                values = attributes.step_values(task.kind, step, scope, res.output)
            except FleetlogError as exc:
                # The command ran: running it again is no answer to unreadable output.
                res = replace(res, ok=False, error=str(exc))
                max_attempts = st.attempts
        if res.ok:
            writer.hold(
                rid,
                ev.StepSucceeded(
                    step=step.name,
                    attempt=st.attempts,
                    output=res.output,
                    exit_code=res.exit_code,
                    command=res.command or None,
                    duration=round(res.duration, 6),
                ),
                corr,
            )
            if values:
                previous = {k: task.record.params.get(k) for k in values}
                writer.hold(rid, attributes.recorded(step, values, previous), corr)
                tparams = frozenset(p.name for p in task.kind.transition(prog.trigger).params)
                attributes.apply_values(scope, tparams, values)
            st.status = "succeeded"
            st.output = res.output
            return "done"
        will_retry = st.attempts < max_attempts
        writer.record(
            rid,
            ev.StepFailed(
                step=step.name,
                attempt=st.attempts,
                output=res.output,
                exit_code=res.exit_code,
                command=res.command or None,
                error=res.error,
                will_retry=will_retry,
            ),
            corr,
        )
        if not will_retry:
            st.status = "failed"
            prog.failed_step = step.name
            prog.error = res.error
            return "failed"
        st.status = "pending"
        assert retry is not None
        task.sleep(retry.every * (retry.backoff ** (st.attempts - 1)))


def _check_fence(task: Task) -> None:
    """Before a side effect: stop if asked to, or if the lease may no longer be ours."""
    leases = task.leases
    if task.stopping.is_set():
        raise Stopping(f"{', '.join(leases.resources)}: stopped before the next step")
    fenced = leases.fenced(task.rid)
    if fenced is not None:
        raise fenced


def _act(task: Task, step: StepSpec, started: Event) -> actions.ActionResult:
    a: Any = step.action
    if a.kind == "run":
        return actions.run_command(task.backend, task.scope, a.command, a.on, step.timeout)
    if a.kind == "call":
        return actions.run_call(task.backend, task.scope, a, task.plugins, step.timeout)
    if a.kind == "wait":
        return actions.run_wait(task.backend, task.scope, a, task.sleep)
    if a.kind == "ensure":
        return ensure(task, a, causation_id=started.event_id, timeout=step.timeout)
    return actions.ActionResult(False, error=f"unknown action {a.kind!r}")
