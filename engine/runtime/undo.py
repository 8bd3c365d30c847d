"""``on failure -> STATE undo [steps]``: compensations, then the failure state.

Only steps named in ``undo`` that had taken effect are compensated, in reverse plan
order (OEDACLI's UNDO… order), each journaled as a ``step.*`` event with ``undo: true``.
A compensation that fails is recorded and the others still run: leaving later
compensations undone because an earlier one failed would strand more of the change.
Resume skips compensations already journaled as finished.
"""

from __future__ import annotations

from fleetlog.dsl.spec import EnsureAction, StepSpec
from fleetlog.engine.model import events as ev
from fleetlog.engine.runtime import actions
from fleetlog.engine.runtime.ensure import ensure
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
        begun = writer.record(rid, ev.StepStarted(step.name, attempt, token, undo=True), corr)
        res = compensate(task, step, begun.event_id)
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
    _no_way_out(task, to)
    return Outcome(rid, prog.trigger, "failed", to, prog.failed_step, error)


def _no_way_out(task: Task, state: str) -> None:
    """Tell the operator (once per kind and state, never journaled) when the failure
    state is one no transition leaves (``machines check`` warns of it): what to add to
    the machine to get the resource out."""
    spec = task.kind.spec
    if state not in spec.state_names or spec.state(state).final:
        return
    if task.kind.triggers_from(state):
        return
    task.intake.tell(
        f"{task.rid} is now in {state!r}, which no transition of {spec.name} leaves: add "
        f"one to {spec.filename or 'its .fsm file'} (e.g. `transition reset : {state} -> "
        f"{spec.initial}`), then `fleetlog fire {task.rid} reset`",
        key=(spec.name, state),
    )


def compensate(task: Task, step: StepSpec, causation_id: str) -> actions.ActionResult:
    comp = step.compensate
    if comp is None:
        return actions.ActionResult(True, output="(nothing to undo)")
    if isinstance(comp, EnsureAction):  # bring another resource back (a fenced node up)
        return ensure(task, comp, causation_id=causation_id, timeout=step.timeout)
    if comp.kind == "call":
        return actions.run_call(task.backend, task.scope, comp, task.plugins, step.timeout)
    return actions.run_command(task.backend, task.scope, comp.command, comp.on, step.timeout)
