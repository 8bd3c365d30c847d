"""``on failure -> STATE undo [steps]``: compensations, then the failure state.

Only steps named in ``undo`` that had taken effect are compensated, in reverse plan
order (OEDACLI's UNDO… order), each journaled as a ``step.*`` event with ``undo: true``.
A compensation that fails is recorded and the others still run: leaving later
compensations undone because an earlier one failed would strand more of the change.
Resume skips compensations already journaled as finished.
"""

from __future__ import annotations

from fleetlog.dsl.spec import StepSpec
from fleetlog.engine.model import events as ev
from fleetlog.engine.runtime import actions
from fleetlog.engine.runtime.outcome import Outcome
from fleetlog.engine.runtime.task import Task


def fail_transition(task: Task) -> Outcome:
    prog, rid, writer = task.progress, task.rid, task.writer
    corr = prog.transition_id
    errors: list[str] = []
    for step in reversed(prog.plan):
        if step.name not in prog.undo or prog.steps[step.name].status != "succeeded":
            continue
        done = prog.compensations.get(step.name)
        if done is not None and done.status in ("succeeded", "failed"):
            continue
        attempt = (done.attempts if done else 0) + 1
        token = task.leases.token(rid)
        writer.record(rid, ev.StepStarted(step.name, attempt, token, undo=True), corr)
        res = compensate(task, step)
        command = res.command or None
        outcome: ev.Payload
        if res.ok:
            outcome = ev.StepSucceeded(
                step.name, attempt, res.output, command=command, undo=True, error=res.error
            )
        else:
            outcome = ev.StepFailed(
                step.name, attempt, res.output, command=command, error=res.error, undo=True
            )
        writer.record(rid, outcome, corr)
        if not res.ok:
            errors.append(f"undo of {step.name} failed: {res.error}")
    to = prog.failure_state or prog.source
    error = "; ".join([prog.error or "failed", *errors])
    failed = ev.TransitionFailed(
        trigger=prog.trigger, source=prog.source, target=to, step=prog.failed_step, error=error
    )
    writer.finish(rid, task.leases, failed, corr, prog.causation_id)
    return Outcome(rid, prog.trigger, "failed", to, prog.failed_step, error)


def compensate(task: Task, step: StepSpec) -> actions.ActionResult:
    comp = step.compensate
    if comp is None:
        return actions.ActionResult(True, output="(nothing to undo)")
    if comp.kind == "call":
        return actions.run_call(task.backend, task.scope, comp, task.plugins)
    return actions.run_command(task.backend, task.scope, comp.command, comp.on, step.timeout)
