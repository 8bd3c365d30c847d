"""Checks across kinds, run once every machine is compiled.

A ``ref vm`` param, an ``ensure target is exascale_ready via configure_exascale`` step
and a ``{source.name}`` placeholder all name things in *another* file, so they can only
be checked when the whole set of machines is known. ``link_check`` returns errors and
lets the caller raise: the engine links every loaded machine, ``machines check`` links
the files given against the shipped ones. Positions are the spec's own (the param or
the step), so no parse tree is needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from fleetlog.dsl.diagnostics import Diagnostic, did_you_mean
from fleetlog.dsl.guards import names as guard_names
from fleetlog.dsl.interpolate import placeholders
from fleetlog.dsl.spec import (
    EnsureAction,
    MachineSpec,
    ParamSpec,
    Pos,
    ProbeSpec,
    RunAction,
    StepSpec,
    TransitionSpec,
    WaitAction,
)

REF_ATTRS = ("name", "kind", "state")
"""What ``ref.x`` may read besides the referenced kind's params."""


def link_check(specs: Mapping[str, MachineSpec]) -> list[Diagnostic]:
    """Every cross-kind error in ``specs`` (kind name -> spec)."""
    out: list[Diagnostic] = []
    for spec in specs.values():
        out.extend(_check_ref_kinds(spec, specs))
        for t in spec.transitions:
            for step in t.steps:
                out.extend(_check_ensure(spec, t, step, specs))
                out.extend(_check_attrs(spec, t, step, specs))
    return out


def _diag(
    spec: MachineSpec, pos: Pos, message: str, length: int, hint: str | None = None
) -> Diagnostic:
    return Diagnostic(
        spec.filename or spec.name, pos.line, pos.col, message, "error", hint, max(1, length)
    )


def _params(spec: MachineSpec, t: TransitionSpec | None) -> dict[str, ParamSpec]:
    own = {p.name: p for p in spec.params}
    return {**own, **{p.name: p for p in t.params}} if t else own


def _kind_of(
    ref: str, spec: MachineSpec, t: TransitionSpec, specs: Mapping[str, MachineSpec]
) -> MachineSpec | None:
    if ref == "self":
        return spec
    param = _params(spec, t).get(ref)
    if param is None or param.type not in ("ref", "refs") or param.ref_kind is None:
        return None  # an unknown ref is dsl.checks' error, not ours
    return specs.get(param.ref_kind)


def _check_ref_kinds(spec: MachineSpec, specs: Mapping[str, MachineSpec]) -> Iterator[Diagnostic]:
    """``ref KIND`` names a loaded kind."""
    params = [*spec.params, *(p for t in spec.transitions for p in t.params)]
    for p in params:
        if p.type in ("ref", "refs") and p.ref_kind not in specs:
            yield _diag(
                spec,
                p.pos,
                f"param '{p.name}' refers to kind '{p.ref_kind}', which is not loaded",
                len(p.name),
                did_you_mean(p.ref_kind or "", specs),
            )


def _check_ensure(
    spec: MachineSpec, t: TransitionSpec, step: StepSpec, specs: Mapping[str, MachineSpec]
) -> Iterator[Diagnostic]:
    """``ensure R is S via T`` (the step's action or its ``undo``): S is a state and T a
    trigger of R's kind, T leads to S."""
    for action in (step.action, step.compensate):
        if isinstance(action, EnsureAction):
            yield from _check_one_ensure(spec, t, step, action, specs)


def _check_one_ensure(
    spec: MachineSpec,
    t: TransitionSpec,
    step: StepSpec,
    action: EnsureAction,
    specs: Mapping[str, MachineSpec],
) -> Iterator[Diagnostic]:
    target = _kind_of(action.ref, spec, t, specs)
    if target is None:
        return
    where = f"kind '{target.name}'"
    n = len(step.name)
    if action.state not in target.state_names:
        yield _diag(
            spec,
            step.pos,
            f"step '{step.name}' ensures state '{action.state}', which {where} does not have",
            n,
            did_you_mean(action.state, target.state_names),
        )
    triggers = [x.trigger for x in target.transitions]
    if action.trigger not in triggers:
        yield _diag(
            spec,
            step.pos,
            f"step '{step.name}' ensures via '{action.trigger}', which is not a trigger of {where}",
            n,
            did_you_mean(action.trigger, triggers),
        )
        return
    dest = target.transition(action.trigger).dest
    if dest != action.state and action.state in target.state_names:
        yield _diag(
            spec,
            step.pos,
            f"step '{step.name}' ensures '{action.state}' via "
            f"'{action.trigger}', but '{action.trigger}' leads to '{dest}'",
            n,
        )


def _check_attrs(
    spec: MachineSpec, t: TransitionSpec, step: StepSpec, specs: Mapping[str, MachineSpec]
) -> Iterator[Diagnostic]:
    """``ref.attr`` in guards and placeholders names a param of the ref's kind (or a
    builtin: name, kind, state)."""
    for ref, attr in _attr_reads(t, step):
        target = _kind_of(ref, spec, t, specs)
        if target is None or ref == "self":
            continue
        allowed = [*REF_ATTRS, *(p.name for p in target.params)]
        if attr not in allowed:
            yield _diag(
                spec,
                step.pos,
                f"step '{step.name}' reads '{ref}.{attr}', but kind "
                f"'{target.name}' has no param '{attr}'",
                len(step.name),
                did_you_mean(attr, allowed),
            )


def _attr_reads(t: TransitionSpec, step: StepSpec) -> Iterator[tuple[str, str]]:
    for expr in (step.when, t.when):
        if expr is not None:
            yield from ((r, a) for r, a in guard_names(expr) if a is not None)
    templates: list[str] = []
    action = step.action
    probes: list[ProbeSpec | None] = [step.check]
    if isinstance(action, RunAction):
        templates.append(action.command)
    elif isinstance(action, WaitAction):
        probes.append(action.probe)
    templates.extend(p.command for p in probes if p is not None)
    for text in templates:
        try:
            found = placeholders(text)
        except ValueError:
            continue  # malformed templates are reported by dsl.checks
        yield from ((r, a) for r, a in found if a is not None)
    for _, value in getattr(action, "args", ()):
        if isinstance(value, tuple) and len(value) == 3 and value[0] == "attr":
            yield (value[1], value[2])
