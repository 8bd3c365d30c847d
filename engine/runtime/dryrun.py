"""``fire --dry-run``: what a transition would do, judged by read-only probes only.

Nothing is journaled and no side-effecting command runs: the plan is validated exactly as
a real fire would validate it (table, guards, params), then each step is classified.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetlog.dsl.spec import EnsureAction, TransitionSpec
from fleetlog.engine.model.values import Scope
from fleetlog.engine.runtime import actions

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend


@dataclass(frozen=True)
class PlannedStep:
    """One line of a dry run: what would happen to a step and why."""

    step: str
    action: str
    would: str  # run | skip (when) | skip (check) | skip (transition)
    detail: str = ""


def plan(backend: Backend, scope: Scope, t: TransitionSpec) -> list[PlannedStep]:
    """Each step of ``t`` classified, for a transition already validated (the runner's
    ``dry_run`` validates it exactly as ``fire`` would)."""
    if t.skip_if is not None:
        holds, _ = actions.probe(backend, scope, t.skip_if)
        if holds:
            why = f"probe holds: {t.skip_if.command}"
            return [PlannedStep(s.name, s.action.kind, "skip (transition)", why) for s in t.steps]
    out = []
    for s in t.steps:
        if s.when is not None and not actions.guard_holds(scope, s.when):
            out.append(PlannedStep(s.name, s.action.kind, "skip (when)"))
            continue
        if s.check is not None:
            holds, _ = actions.probe(backend, scope, s.check)
            if holds:
                out.append(PlannedStep(s.name, s.action.kind, "skip (check)", s.check.command))
                continue
        detail = ""
        if s.action.kind == "run":
            detail = actions.render_for_journal(s.action.command, scope)
        elif isinstance(s.action, EnsureAction):
            detail = _ensure_detail(scope, s.action)
        out.append(PlannedStep(s.name, s.action.kind, "run", detail))
    return out


def _ensure_detail(scope: Scope, a: EnsureAction) -> str:
    """``ensure`` names what it would act on; each of those is judged when it runs."""
    if a.each:
        targets = list(scope.params.get(a.ref) or [])
        if a.reverse:
            targets.reverse()
        what = ", ".join(targets) or f"({a.ref}: none)"
    else:
        what = scope.record.id if a.ref == "self" else str(scope.params.get(a.ref))
    return f"ensure {what} is {a.state} via {a.trigger}"
