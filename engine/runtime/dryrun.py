"""``fire --dry-run``: what a transition would do, judged by read-only probes only.

Nothing is journaled and no side-effecting command runs: the plan is validated exactly as
a real fire would validate it (table, guards, params), then each step is classified.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetlog.dsl import evaluate, to_text
from fleetlog.dsl.spec import CallAction, EnsureAction, TransitionSpec, WaitAction
from fleetlog.engine.model.values import Scope
from fleetlog.engine.runtime import actions
from fleetlog.errors import FleetlogError

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend


@dataclass(frozen=True)
class PlannedStep:
    """One line of a dry run: what would happen to a step and why."""

    step: str
    action: str
    would: str  # run | skip (when) | skip (check) | skip (transition)
    detail: str = ""


@dataclass(frozen=True)
class DryRun:
    """A whole dry run of one resource: where it would go, and each step's fate."""

    resource: str
    trigger: str
    source: str
    target: str
    steps: list[PlannedStep] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The text form: a header saying what this is, then one row per step."""
        out = [
            f"{self.resource} {self.trigger}: {self.source} -> {self.target} "
            "(dry run: read-only probes only; nothing journaled, nothing changed)",
            f"  {'would':<18} {'step':<20} {'action':<7} detail",
        ]
        out.extend(
            f"  {s.would:<18} {s.step:<20} {s.action:<7} {s.detail}".rstrip() for s in self.steps
        )
        if not self.steps:
            out.append("  (no steps: only the state changes)")
        return out


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
        elif isinstance(s.action, CallAction):
            detail = _call_detail(scope, s.action)
        elif isinstance(s.action, WaitAction):
            detail = _wait_detail(scope, s.action)
        out.append(PlannedStep(s.name, s.action.kind, "run", detail))
    return out


def _call_detail(scope: Scope, a: CallAction) -> str:
    """``plugin(arg=value, ...)`` with the values it would get (secrets redacted)."""
    args = ", ".join(f"{k}={_arg_text(scope, v)}" for k, v in a.args)
    return f"{a.plugin}({args})"


def _arg_text(scope: Scope, value: Any) -> str:
    expr = isinstance(value, tuple) and value and value[0] in ("name", "attr", "lit")
    if expr and value[0] == "name" and value[1] in scope.secret_names:
        return f"<secret:{value[1]}>"
    try:
        shown = evaluate(value, scope.lookup) if expr else value
    except FleetlogError:
        return to_text(value)  # unreadable now: shown as written; the step reports it
    if isinstance(shown, list | tuple):
        return "[" + ", ".join(to_text(("lit", x)) for x in shown) + "]"
    return to_text(("lit", shown))


def _wait_detail(scope: Scope, a: WaitAction) -> str:
    """``until PROBE, every D, up to D``: what the wait polls and for how long."""
    p = a.probe
    command = actions.render_for_journal(p.command, scope)
    cond = {
        "succeeds": "succeeds",
        "fails": "fails",
        "contains": f"contains {to_text(('lit', p.expected or ''))}",
        "equals": f"equals {to_text(('lit', p.expected or ''))}",
    }[p.op]
    where = f" on {p.on}" if p.on else ""
    return f"until `{command}`{where} {cond}, every {a.every:g}s, up to {a.timeout:g}s"


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
