"""Static checks on one compiled machine: everything that can be wrong inside one file.

Each check is a small function returning diagnostics; ``check_machine`` runs them all
and returns every problem, so an author sees the whole list at once (Ironic's
``_validate_user_steps`` collects, then raises). Errors point at the offending token
with a "did you mean" when a declared name is close. Unreachable states are warnings:
a machine may be written top-down, states before the transitions that reach them. So is
an error state no transition leaves: a resource that fails into it would stay there.

Checks across kinds (a ``ref`` to a kind that is not loaded, ``ensure`` on another
kind's states) live in ``dsl.linking``: they need every machine at once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable, Iterator
from typing import Any

from fleetlog.dsl.diagnostics import Diagnostic, Severity, did_you_mean
from fleetlog.dsl.errors import TemplateError
from fleetlog.dsl.interpolate import Placeholder, misquoted
from fleetlog.dsl.interpolate import parse as parse_template
from fleetlog.dsl.literals import decode_string
from fleetlog.dsl.sourcemap import Use
from fleetlog.dsl.spec import MachineSpec, ParamSpec, Pos, SecretSpec, TransitionSpec

BUILTINS = ("name", "kind", "state", "trigger")
"""Names every guard and template may read: the resource's name and kind, its current
state, and the trigger being fired."""

RESERVED = (*BUILTINS, "self")

ENSURE_WORDS = ("each", "reversed")
"""Words of ``ensure each LIST reversed``: a param so named could not be ensured."""


def check_machine(
    spec: MachineSpec,
    uses: Iterable[Use] = (),
    plugins: Collection[str] | None = None,
    formats: Collection[str] | None = None,
) -> list[Diagnostic]:
    """Every problem in ``spec``: errors and warnings (unreachable states, error states
    with no way out, undo of a step that has nothing to undo)."""
    uses = list(uses)
    report = _Report(spec)
    check_initial(spec, report)
    check_duplicates(spec, report)
    check_reserved_names(spec, report)
    check_uses(spec, uses, report, plugins, formats)
    check_quoting(uses, report)
    check_defaults(spec, uses, report)
    check_observe(spec, report)
    check_sets(spec, report)
    check_reachable(spec, report)
    check_way_out(spec, report)
    return report.diagnostics


class _Report:
    """Diagnostics for one file, positioned and de-duplicated."""

    def __init__(self, spec: MachineSpec) -> None:
        self.file = spec.filename or "<string>"
        self.diagnostics: list[Diagnostic] = []
        self._seen: set[tuple[int, int, str]] = set()

    def add(
        self,
        pos: Pos,
        message: str,
        length: int = 1,
        hint: str | None = None,
        severity: Severity = "error",
    ) -> None:
        key = (pos.line, pos.col, message)
        if key not in self._seen:
            self._seen.add(key)
            self.diagnostics.append(
                Diagnostic(self.file, pos.line, pos.col, message, severity, hint, max(1, length))
            )


# ---- declarations ----------------------------------------------------------------------
def check_initial(spec: MachineSpec, report: _Report) -> None:
    """Exactly one ``initial state``."""
    initial = [s for s in spec.states if s.initial]
    if not spec.states:
        report.add(Pos(1, 1), f"machine '{spec.name}' declares no states")
    elif not initial:
        first = spec.states[0]
        report.add(
            first.pos,
            f"machine '{spec.name}' has no initial state",
            len(first.name),
            hint=f"write 'initial state {first.name}' for the state resources start in",
        )
    for extra in initial[1:]:
        report.add(
            extra.pos,
            f"'{extra.name}' is a second initial state (the first is "
            f"'{initial[0].name}' at line {initial[0].pos.line})",
            len(extra.name),
        )


def check_duplicates(spec: MachineSpec, report: _Report) -> None:
    """States, machine names (params and secrets), triggers, steps and transition params
    are each declared once; a transition param may not hide a machine-level name."""
    _duplicates(report, "state", "", ((s.name, s.pos) for s in spec.states))
    declared: list[ParamSpec | SecretSpec] = [*spec.params, *spec.secrets]
    _duplicates(report, "param or secret", "", ((p.name, p.pos) for p in declared))
    _duplicates(report, "transition", "", ((t.trigger, t.pos) for t in spec.transitions))
    machine_names = {p.name for p in declared}
    for t in spec.transitions:
        where = f" in '{t.trigger}'"
        _duplicates(report, "step", where, ((s.name, s.pos) for s in t.steps))
        _duplicates(report, "param", where, ((p.name, p.pos) for p in t.params))
        for p in t.params:
            if p.name in machine_names:
                report.add(
                    p.pos,
                    f"param '{p.name}' of '{t.trigger}' hides the machine's '{p.name}'",
                    len(p.name),
                    hint="give it another name",
                )


def _duplicates(report: _Report, what: str, where: str, items: Iterable[tuple[str, Pos]]) -> None:
    first: dict[str, Pos] = {}
    for name, pos in items:
        if name in first:
            report.add(
                pos,
                f"{what} '{name}' is declared twice{where} (first at line {first[name].line})",
                len(name),
            )
        else:
            first[name] = pos


def check_reserved_names(spec: MachineSpec, report: _Report) -> None:
    """Params and secrets may not be called like a builtin (``name``, ``state``, ...) or
    like a word of ``ensure each``."""
    for p in _all_names(spec):
        if p.name in RESERVED:
            report.add(
                p.pos, f"'{p.name}' is a builtin name; call the param something else", len(p.name)
            )
        elif p.name in ENSURE_WORDS:
            report.add(
                p.pos,
                f"'{p.name}' is a word of 'ensure each LIST reversed'; call the param "
                "something else",
                len(p.name),
            )


def _all_names(spec: MachineSpec) -> Iterator[ParamSpec | SecretSpec]:
    yield from spec.params
    yield from spec.secrets
    for t in spec.transitions:
        yield from t.params


# ---- name uses -------------------------------------------------------------------------
class _Scope:
    """What a name can mean at one place: the machine's names plus one transition's."""

    def __init__(self, spec: MachineSpec) -> None:
        self.spec = spec
        self.states = {s.name: s for s in spec.states}
        self.transitions: dict[str, TransitionSpec] = {}
        for t in spec.transitions:
            self.transitions.setdefault(t.trigger, t)
        self.params = {p.name: p for p in spec.params}
        self.secrets = {s.name for s in spec.secrets}

    def params_in(self, trigger: str | None) -> dict[str, ParamSpec]:
        t = self.transitions.get(trigger) if trigger else None
        return {**self.params, **{p.name: p for p in t.params}} if t else self.params

    def names_in(self, trigger: str | None) -> set[str]:
        return set(self.params_in(trigger)) | self.secrets | set(BUILTINS)


def check_uses(
    spec: MachineSpec,
    uses: Iterable[Use],
    report: _Report,
    plugins: Collection[str] | None,
    formats: Collection[str] | None = None,
) -> None:
    """Every state, trigger, step, name, ref and plugin a use names exists and fits."""
    scope = _Scope(spec)
    for use in uses:
        if use.role in ("state", "source"):
            _check_state(scope, use, report)
        elif use.role == "trigger" and use.name not in scope.transitions:
            report.add(
                use.pos,
                f"unknown trigger '{use.name}' in {use.context}",
                use.length,
                did_you_mean(use.name, scope.transitions),
            )
        elif use.role == "undo":
            _check_undo(scope, use, report)
        elif use.role == "value":
            _check_value(scope, use, report)
        elif use.role == "ref":
            _check_ref(scope, use, report)
        elif use.role == "plugin" and plugins is not None and use.name not in plugins:
            hint = did_you_mean(use.name, plugins) or (
                None if plugins else "no step plugins are registered"
            )
            report.add(use.pos, f"unknown plugin '{use.name}'", use.length, hint)
        elif use.role == "choice":
            _check_choice(scope, use, report)
        elif use.role == "attribute" and use.name not in scope.params:
            report.add(
                use.pos,
                f"{use.context} names '{use.name}', which is not a param of the machine",
                use.length,
                did_you_mean(use.name, scope.params)
                or "an attribute is a machine param: declare it with 'param'",
            )
        elif use.role == "format" and formats is not None and use.name not in formats:
            report.add(
                use.pos,
                f"unknown listing format '{use.name}'",
                use.length,
                did_you_mean(use.name, formats) or f"known: {', '.join(sorted(formats))}",
            )


def _check_state(scope: _Scope, use: Use, report: _Report) -> None:
    state = scope.states.get(use.name)
    if state is None:
        report.add(
            use.pos,
            f"unknown state '{use.name}' in {use.context}",
            use.length,
            did_you_mean(use.name, scope.states),
        )
    elif use.role == "source" and state.final:
        report.add(
            use.pos,
            f"transition '{use.transition}' leaves final state '{use.name}'",
            use.length,
            hint="a final state has no way out; drop it from the sources",
        )


def _check_undo(scope: _Scope, use: Use, report: _Report) -> None:
    t = scope.transitions.get(use.transition or "")
    steps = {s.name: s for s in t.steps} if t else {}
    if use.name not in steps:
        report.add(
            use.pos,
            f"undo names '{use.name}', which is not a step of '{use.transition}'",
            use.length,
            did_you_mean(use.name, steps),
        )
    elif steps[use.name].compensate is None:
        report.add(
            use.pos,
            f"undo names '{use.name}', which has no 'undo run' or 'undo call' to compensate it",
            use.length,
            severity="warning",
        )


def _check_value(scope: _Scope, use: Use, report: _Report) -> None:
    names = scope.names_in(use.transition)
    label = use.name + (f".{use.attr}" if use.attr else "")
    if use.name not in names:
        words = set(scope.states) | {c for p in scope.params.values() for c in p.choices}
        hint = did_you_mean(use.name, names) or (
            f'write "{use.name}" for the string' if use.name in words else None
        )
        report.add(use.pos, f"unknown name '{use.name}' in {use.context}", use.length, hint)
        return
    if use.context == "a guard" and use.name in scope.secrets:
        report.add(
            use.pos,
            f"a guard cannot read secret '{use.name}'",
            use.length,
            hint="guards are journaled and replayed; secrets never are",
        )
        return
    param = scope.params_in(use.transition).get(use.name)
    if param is not None and param.type == "refs" and use.context != "a guard":
        report.add(
            use.pos,
            f"'{label}' is a list of resources ({param.type_label}); only a guard can read "
            f"it, and only whole (== [], in)",
            use.length,
            hint=f"use 'ensure each {use.name} ...' to act on each of them",
        )
        return
    if use.attr is not None:
        if param is None or param.type != "ref":
            what = f"{_a(param.type_label)} param" if param else "not a param"
            report.add(
                use.pos,
                f"'{label}' reads an attribute of '{use.name}', which is "
                f"{what}; only ref params have attributes",
                use.length,
            )


def _check_ref(scope: _Scope, use: Use, report: _Report) -> None:
    """``ensure``, ``on`` and ``lock`` name self or a ref param; ``ensure each`` a
    ``list[ref]`` param."""
    params = scope.params_in(use.transition)
    if use.context == "ensure each":
        wanted, expected = "refs", "a list[ref KIND] param"
    else:
        wanted, expected = "ref", "self or a ref param"
        if use.name == "self":
            return
    param = params.get(use.name)
    names = [p.name for p in params.values() if p.type == wanted]
    if param is None:
        report.add(
            use.pos,
            f"unknown ref '{use.name}' in {use.context}; expected {expected}",
            use.length,
            did_you_mean(use.name, names if wanted == "refs" else [*names, "self"]),
        )
    elif param.type != wanted:
        hint = None
        if param.type == "refs" and use.context == "ensure":
            hint = f"write 'ensure each {use.name} ...' to ensure every resource it names"
        elif param.type == "ref" and wanted == "refs":
            hint = f"write 'ensure {use.name} ...' for a single resource"
        report.add(
            use.pos,
            f"{use.context} needs {expected}, but '{use.name}' is {_a(param.type_label)} param",
            use.length,
            hint,
        )


def _check_choice(scope: _Scope, use: Use, report: _Report) -> None:
    param = scope.params_in(use.transition).get(use.name)
    value = use.attr or ""
    if param is not None and param.type == "enum" and value not in param.choices:
        report.add(
            use.pos,
            f"'{value}' is not a choice of '{param.name}' ({', '.join(param.choices)})",
            use.length,
            did_you_mean(value, param.choices),
        )


# ---- shell quoting ----------------------------------------------------------------------
def check_quoting(uses: Iterable[Use], report: _Report) -> None:
    """No ``{placeholder}`` inside shell quotes (or after a backslash or ``$``) in any
    command: ``run``, ``wait``, probes, ``undo run``, observe and listing commands.

    Values are substituted already single-quoted; wrapped again they are read unquoted
    (``'... {v}'``) or with ``$(...)`` live (``"... {v}"``): a value becomes a command.
    """
    for use in uses:
        if use.role != "command":
            continue
        text, offsets = decode_string(use.name)
        try:
            found = misquoted(text)
        except TemplateError:
            continue  # reported by the compiler
        for seg, where in found:
            label = "{" + seg.name + (f".{seg.attr}" if seg.attr else "") + "}"
            pos = Pos(use.pos.line, use.pos.col + offsets[seg.offset])
            if where in ("single quotes", "double quotes"):
                message = f"placeholder {label} is inside {where} in a command"
                advice = f"write {label} outside quotes"
            else:
                message = f"placeholder {label} follows {where} in a command"
                advice = f"write {label} as a word of its own, without the {where[2:]}"
            report.add(
                pos,
                message,
                len(label),
                hint=f"interpolated values are already shell-quoted; {advice}",
            )


# ---- defaults --------------------------------------------------------------------------
def check_defaults(spec: MachineSpec, uses: Iterable[Use], report: _Report) -> None:
    """A default has its param's type; an enum default is one of its choices."""
    scope = _Scope(spec)
    for use in uses:
        if use.role != "default":
            continue
        param = scope.params_in(use.transition).get(use.name)
        if param is None:
            continue
        problem = default_problem(param, bare=use.attr == "bare")
        if problem:
            message, hint = problem
            report.add(use.pos, message, use.length, hint)


def default_problem(param: ParamSpec, bare: bool = False) -> tuple[str, str | None] | None:
    """(message, hint) when ``param.default`` does not fit ``param.type``; else None.
    ``none`` fits every type: it means "no value unless given"."""
    value: Any = param.default
    if value is None and not bare:
        return None
    if param.type == "enum":
        if value not in param.choices:
            return (
                f"default '{value}' of '{param.name}' is not one of its choices "
                f"({', '.join(param.choices)})",
                did_you_mean(str(value), param.choices),
            )
        return None
    if bare:
        return (
            f"default '{value}' of {param.type_label} param '{param.name}' is a bare word",
            f'quote it: "{value}"' if param.type in ("str", "ref") else None,
        )
    if param.type == "refs" or isinstance(value, tuple):
        if param.type == "refs" and value == ():
            return None
        if param.type == "refs":
            return (
                f"default of '{param.name}' is {_describe(value)}, but a {param.type_label} "
                "param can only default to [] (or none)",
                None,
            )
        return (f"default of '{param.name}' is [], but '{param.name}' is {_a(param.type)}", None)
    fits = {
        "str": isinstance(value, str),
        "ref": isinstance(value, str),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
    }[param.type]
    if fits:
        return None
    return (
        f"default of '{param.name}' is {_describe(value)}, but '{param.name}' is {_a(param.type)}",
        None,
    )


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the bool {'true' if value else 'false'}"
    if isinstance(value, int):
        return f"the int {value}"
    if isinstance(value, float):
        return f"the float {value}"
    return f'the string "{value}"'


# ---- observe and set -------------------------------------------------------------------
def check_observe(spec: MachineSpec, report: _Report) -> None:
    """The parts of an observe block that only make sense together."""
    obs = spec.observe
    if obs is None:
        return
    if obs.absent is not None and obs.command is None:
        report.add(
            obs.pos,
            "'absent if' judges the observe command, and there is none",
            hint='write observe "COMMAND" { absent if ... }',
        )
    if obs.building and obs.job_attr is None:
        report.add(
            obs.pos,
            "'building' judges a build against its job: say where its id is",
            hint="add 'job id in PARAM' (the param a step records the job id in)",
        )
    if (obs.building or obs.job_attr) and obs.jobs is None:
        report.add(
            obs.pos,
            "'building' and 'job id in' need the backend's jobs",
            hint='add jobs "COMMAND" format NAME',
        )
    if obs.delete_orphans is not None and obs.listing is None:
        report.add(
            obs.pos,
            "'delete orphans via' needs a listing to find orphans",
            hint='add list "COMMAND" format NAME',
        )
    for listing in (obs.listing, obs.jobs):
        if listing is not None and _placeholders(listing.command):
            report.add(
                listing.pos,
                "a listing runs once for every resource it lists: its command cannot "
                f"read one resource's values ({', '.join(_placeholders(listing.command))})",
                hint="write the command in full",
            )
    if obs.owned is not None and obs.listing is None:
        report.add(obs.pos, "'owned' filters a listing, and there is none", severity="warning")
    groups = [c.group for c in obs.compares]
    for c in obs.compares:
        if groups.count(c.group) > 1:
            report.add(c.pos, f"compare group '{c.group}' is declared twice")
    seen: dict[str, str] = {}
    for c in obs.compares:
        for param, _field in c.pairs:
            if param in seen:
                report.add(c.pos, f"'{param}' is compared in '{seen[param]}' and '{c.group}'")
            seen[param] = c.group
            p = next((x for x in spec.params if x.name == param), None)
            if p is not None and p.type in ("ref", "refs"):
                report.add(
                    c.pos,
                    f"'{param}' is a {p.type_label} param; compare reads values",
                    hint="compare str, int, float, bool or enum params",
                )
    pairs = [(r.operation, st) for r in obs.job_rules for st in r.statuses]
    for rule in obs.job_rules:
        for st in rule.statuses:
            if pairs.count((rule.operation, st)) > 1:
                report.add(rule.pos, f"job rule for {rule.operation} {st} is declared twice")


def _placeholders(command: str) -> list[str]:
    try:
        segments = parse_template(command)
    except TemplateError:
        return []  # reported by the compiler
    return ["{" + seg.name + "}" for seg in segments if isinstance(seg, Placeholder)]


def check_sets(spec: MachineSpec, report: _Report) -> None:
    """``set NAME = VALUE`` gives the param a value of its type."""
    scope = _Scope(spec)
    for t in spec.transitions:
        params = scope.params_in(t.trigger)
        for step in t.steps:
            for st in step.sets:
                target = scope.params.get(st.name)
                if target is None:
                    continue  # reported as an unknown attribute
                if target.type == "refs":
                    report.add(
                        st.pos, f"'{st.name}' is a {target.type_label} param; set records one value"
                    )
                    continue
                if st.output:
                    continue  # read and converted when the step has run
                value = st.value
                if value[0] == "lit":
                    problem = default_problem(
                        dataclasses.replace(target, default=value[1], has_default=True)
                    )
                    if problem:
                        report.add(
                            st.pos,
                            problem[0].replace("default", "value", 1),
                            len(st.name),
                            problem[1],
                        )
                elif value[0] == "name":
                    source = params.get(value[1])
                    if source is not None and source.type_label != target.type_label:
                        report.add(
                            st.pos,
                            f"set {st.name} = {value[1]}: '{value[1]}' is "
                            f"{_a(source.type_label)}, '{st.name}' is {_a(target.type_label)}",
                            len(st.name),
                        )


# ---- reachability ----------------------------------------------------------------------
def check_reachable(spec: MachineSpec, report: _Report) -> None:
    """Warn about states no transition, failure or observe rule can lead to."""
    initial = [s.name for s in spec.states if s.initial]
    if len(initial) != 1:
        return  # check_initial already said so; reachability would be noise
    edges: dict[str, set[str]] = {}
    for t in spec.transitions:
        targets = {t.dest} | ({t.on_failure.state} if t.on_failure else set())
        for src in t.sources:
            edges.setdefault(src, set()).update(targets)
    seen = {initial[0]} | {r.state for r in (spec.observe.rules if spec.observe else ())}
    todo = list(seen)
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    for state in spec.states:
        if state.name not in seen:
            report.add(
                state.pos,
                f"state '{state.name}' is unreachable from '{initial[0]}'",
                len(state.name),
                hint="no transition, 'on failure' or observe rule leads to it",
                severity="warning",
            )


def check_way_out(spec: MachineSpec, report: _Report) -> None:
    """Warn about an error state that no transition leaves (and that is not ``final``):
    a resource whose transition fails into it stays there for good, whatever the
    operator learns about the failure."""
    leaves = {src for t in spec.transitions for src in t.sources}
    initial = next((s.name for s in spec.states if s.initial), None)
    for state in spec.states:
        if state.error and not state.final and state.name not in leaves:
            back = initial if initial and initial != state.name else "STATE"
            report.add(
                state.pos,
                f"error state '{state.name}' has no transition out: a resource that "
                "lands there stays there for good",
                len(state.name),
                hint=f"add a way out, e.g. 'transition reset : {state.name} -> {back}', "
                "or flag it 'final' if that is meant",
                severity="warning",
            )
