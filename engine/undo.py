"""``on failure -> STATE undo [steps]``: compensations, then the failure state.

Only steps named in ``undo`` that had taken effect are compensated, in reverse plan
order (OEDACLI's UNDO… order), each journaled as a ``step.*`` event with ``undo: true``.
A compensation that fails is recorded and the others still run: leaving later
compensations undone because an earlier one failed would strand more of the change.
Resume skips compensations already journaled as finished.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dsl.spec import StepSpec
from engine import actions
from engine.leases import LeaseSet
from engine.progress import Progress
from engine.values import Scope

if TYPE_CHECKING:
    from engine.executor import Outcome, Runner


def fail_transition(
    runner: Runner, rid: str, prog: Progress, scope: Scope, leases: LeaseSet
) -> Outcome:
    from engine.executor import Outcome

    corr = prog.transition_id
    errors: list[str] = []
    for step in reversed(prog.plan):
        if step.name not in prog.undo or prog.steps[step.name].status != "succeeded":
            continue
        done = prog.compensations.get(step.name)
        if done is not None and done.status in ("succeeded", "failed"):
            continue
        base = {"step": step.name, "undo": True, "attempt": (done.attempts if done else 0) + 1}
        runner.record(rid, "step.started", {**base, "token": leases.token(rid)}, corr)
        res = compensate(runner, step, scope)
        outcome = {**base, "output": res.output, "error": res.error}
        if res.command:
            outcome["command"] = res.command
        runner.record(rid, "step.succeeded" if res.ok else "step.failed", outcome, corr)
        if not res.ok:
            errors.append(f"undo of {step.name} failed: {res.error}")
    to = prog.failure_state or prog.source
    error = "; ".join([prog.error or "failed", *errors])
    failed = {
        "trigger": prog.trigger,
        "from": prog.source,
        "to": to,
        "step": prog.failed_step,
        "error": error,
    }
    runner.finish(rid, leases, "transition.failed", failed, prog)
    return Outcome(rid, prog.trigger, "failed", to, prog.failed_step, error)


def compensate(runner: Runner, step: StepSpec, scope: Scope) -> actions.ActionResult:
    comp = step.compensate
    if comp is None:
        return actions.ActionResult(True, output="(nothing to undo)")
    if comp.kind == "call":
        return actions.run_call(runner.backend, scope, comp, runner.registry.plugins)
    return actions.run_command(runner.backend, scope, comp.command, comp.on, step.timeout)
