"""The compiled form of a machine definition: frozen, hashable, JSON-round-trippable.

Everything downstream (the engine, the journal's recorded plans, diagrams) reads these
dataclasses, never the parse tree. Source positions are kept for error messages but are
excluded from equality and from the definition hash, so that reformatting a file or
editing its comments changes neither.

A step's plan is recorded in the journal as ``step_to_data(step)`` and read back with
``step_from_data``: resume follows the recorded plan even when the ``.fsm`` file changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import field
from typing import Any, Literal, TypeAlias

from fleetlog.frozen import frozen

# A guard expression is a small tree of tuples, pure data (no user code ever runs):
#   ("lit", value)                      a str/int/float/bool/None literal
#   ("name", "storage")                 a machine or transition param, or a builtin:
#                                       "name", "kind", "state", "trigger"
#   ("attr", "target", "state")         a param or the state of a referenced resource
#   ("list", (e1, e2, ...))             a list literal, for `in`
#   ("not", e)   ("and", a, b)   ("or", a, b)
#   ("cmp", op, a, b)                   op in ==, !=, <, <=, >, >=, in, not in
Expr: TypeAlias = tuple[Any, ...]

ParamType = Literal["str", "int", "float", "bool", "enum", "ref", "refs"]
ProbeOp = Literal["succeeds", "fails", "contains", "equals"]


@frozen
class Pos:
    """Where something was written: 1-based line and column."""

    line: int = 0
    col: int = 0


_NOPOS = Pos()


def _pos() -> Any:
    """Kept for callers; fields below spell it out so linters see a plain ``field``."""
    return field(default=_NOPOS, compare=False, repr=False)


@frozen
class ParamSpec:
    """A typed parameter of a machine or of one transition.

    ``ref`` params hold the id (``KIND/NAME``) of another resource of ``ref_kind``;
    ``refs`` params (written ``list[ref KIND]``) a list of such ids, in order.
    ``has_default`` distinguishes "no default" from a default of ``None``.
    """

    name: str
    type: ParamType
    default: Any = None
    has_default: bool = False
    choices: tuple[str, ...] = ()
    ref_kind: str | None = None
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)

    @property
    def type_label(self) -> str:
        """The type as written in a ``.fsm`` file."""
        if self.type == "ref":
            return f"ref {self.ref_kind}"
        if self.type == "refs":
            return f"list[ref {self.ref_kind}]"
        return self.type


@frozen
class SecretSpec:
    """A value resolved at run time (env ``FLEETLOG_SECRET_<NAME>`` or a resolver) and
    redacted from the journal, logs and output."""

    name: str
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class StateSpec:
    name: str
    initial: bool = False
    error: bool = False
    final: bool = False
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class ObserveRule:
    """Backend status ``pattern`` (exact, or an fnmatch glob when it has ``*?[``) -> state."""

    pattern: str
    state: str
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)

    @property
    def is_glob(self) -> bool:
        return any(c in self.pattern for c in "*?[")


@frozen
class AbsentSpec:
    """``absent if exit N [contains|equals "X"]``: the only outcome of the observe
    command that proves the resource absent (anything else that is not a status is
    *unknown*). ``op``/``expected`` are read on stdout and stderr together."""

    exit: int | None = None
    op: Literal["contains", "equals"] | None = None
    expected: str | None = None


@frozen
class ListingSpec:
    """``list|jobs "CMD" [on REF] format NAME [columns "a,b"] [separator "|"]``: a
    command whose output a listing format parses (resources, or the backend's jobs)."""

    command: str
    format: str
    on: str | None = None
    columns: tuple[str, ...] = ()
    separator: str | None = None
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class AbsentOk:
    """``absent ok in S1, S2 [unless action T1, T2]``: a resource in these states may be
    absent from the backend (an ERROR build that never created anything) unless the
    last action asked of it was one of these triggers (Synnefo: ERROR servers are stale
    only when the user asked to destroy them)."""

    states: tuple[str, ...]
    unless: tuple[str, ...] = ()


@frozen
class CompareSpec:
    """``compare GROUP: param = "backend field", ...``: attributes reconcile checks
    against the listing (a finding of class ``unsynced_GROUP``) and ingest updates."""

    group: str
    pairs: tuple[tuple[str, str], ...]
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class JobRule:
    """``job "OPERATION" status[, status] -> STATE``: what a backend job's outcome means
    for the resource (Synnefo's opcode table), applied by ingest and by reconcile."""

    operation: str
    statuses: tuple[str, ...]
    state: str
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class ObserveSpec:
    """How a backend's status maps to states, and how the backend is read.

    ``command`` (``on`` a ref) is the probe that reads one resource's status on a host;
    ``listing`` reads every resource of the kind at once (and so finds orphans);
    ``jobs`` reads the backend's job queue. Everything after ``rules`` was added with
    reconciliation's full rule set; empty values are left out of the definition hash so
    machines that do not use them keep theirs.
    """

    command: str | None
    rules: tuple[ObserveRule, ...]
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)
    on: str | None = None
    absent: AbsentSpec | None = None
    unknown: tuple[str, ...] = ()
    listing: ListingSpec | None = None
    jobs: ListingSpec | None = None
    owned: str | None = None
    job_attr: str | None = None
    building: tuple[str, ...] = ()
    grace: float = 0.0
    absent_ok: tuple[AbsentOk, ...] = ()
    compares: tuple[CompareSpec, ...] = ()
    job_rules: tuple[JobRule, ...] = ()
    delete_orphans: str | None = None

    def compared(self) -> dict[str, str]:
        """Every compared param and the backend field it is read from."""
        return {param: fld for c in self.compares for param, fld in c.pairs}


@frozen
class ProbeSpec:
    """A read-only command and how to judge its result.

    ``succeeds``: exit 0; ``fails``: non-zero exit; ``contains``: stdout contains
    ``expected``; ``equals``: stdout stripped equals ``expected``. ``on`` names a ref param
    whose host runs the probe (None: the resource's own host).
    """

    command: str
    op: ProbeOp = "succeeds"
    expected: str | None = None
    on: str | None = None
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class RetrySpec:
    """Up to ``count`` more attempts after the first, ``every`` seconds apart, the
    interval multiplied by ``backoff`` after each attempt."""

    count: int
    every: float = 0.0
    backoff: float = 1.0


@frozen
class RunAction:
    """``run "cmd" [on REF]``: a shell command, ``{param}`` interpolated shell-quoted."""

    command: str
    on: str | None = None
    kind: Literal["run"] = "run"


@frozen
class CallAction:
    """``call plugin.name(k=v, ...)``: a registered step plugin. Argument values are
    literals or ``("name", p)`` / ``("attr", ref, p)`` expressions resolved at run time."""

    plugin: str
    args: tuple[tuple[str, Any], ...] = ()
    kind: Literal["call"] = "call"


@frozen
class EnsureAction:
    """``ensure REF is STATE via TRIGGER``: REF is ``self`` or a ref param. With ``each``
    (``ensure each REFS [reversed] is ...``) REF is a ``list[ref]`` param and every
    resource it names is ensured in turn, in list order or, ``reverse``, last first."""

    ref: str
    state: str
    trigger: str
    kind: Literal["ensure"] = "ensure"
    each: bool = False
    reverse: bool = False


@frozen
class WaitAction:
    """``wait PROBE until ... timeout D every D``: poll a probe until it holds."""

    probe: ProbeSpec
    timeout: float
    every: float
    kind: Literal["wait"] = "wait"


Action: TypeAlias = RunAction | CallAction | EnsureAction | WaitAction


@frozen
class SetSpec:
    """``set NAME = VALUE``: after the step succeeds, param ``NAME`` of the resource takes
    ``value`` (an ``Expr``: a literal, a param, ``ref.attr``) or, with ``output``, the
    step's stdout (stripped; with ``pattern``, the first group of its first match)."""

    name: str
    value: Any = None
    output: bool = False
    pattern: str | None = None
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class StepSpec:
    """One side-effecting action of a transition's plan and how to run it safely."""

    name: str
    action: Action
    retry: RetrySpec | None = None
    timeout: float | None = None
    check: ProbeSpec | None = None
    idempotent: bool = False
    when: Expr | None = None
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)
    # Added after the first draft, so it comes last: ``undo run "CMD"`` / ``undo call
    # P(...)`` / ``undo ensure R is S via T`` on a step, the compensation run when
    # ``on failure ... undo [this step]``.
    compensate: RunAction | CallAction | EnsureAction | None = None
    # ``set NAME = VALUE`` (repeatable): attributes the step records into the resource
    # when it succeeds; left out of the hash when empty.
    sets: tuple[SetSpec, ...] = ()


@frozen
class FailureSpec:
    """``on failure -> STATE undo [s1, s2]``: compensations run in reverse order."""

    state: str
    undo: tuple[str, ...] = ()
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)


@frozen
class TransitionSpec:
    trigger: str
    sources: tuple[str, ...]
    dest: str
    params: tuple[ParamSpec, ...] = ()
    locks: tuple[str, ...] = ()
    skip_if: ProbeSpec | None = None
    steps: tuple[StepSpec, ...] = ()
    on_failure: FailureSpec | None = None
    pos: Pos = field(default=_NOPOS, compare=False, repr=False)
    # Added after the first draft, so it comes last: ``transition t : a -> b when GUARD``.
    # A pure guard on the whole transition (same form as a step's ``when``): when it does
    # not hold, the command is refused before any side effect.
    when: Expr | None = None

    def step(self, name: str) -> StepSpec:
        for s in self.steps:
            if s.name == name:
                return s
        raise KeyError(name)


@frozen
class MachineSpec:
    """One kind of resource, compiled. ``definition_hash`` is the SHA-256 of the canonical
    form (positions and ``source`` excluded), recorded on every transition started."""

    name: str
    title: str
    params: tuple[ParamSpec, ...]
    secrets: tuple[SecretSpec, ...]
    states: tuple[StateSpec, ...]
    observe: ObserveSpec | None
    transitions: tuple[TransitionSpec, ...]
    source: str = field(default="", compare=False, repr=False)
    filename: str = field(default="", compare=False)
    definition_hash: str = field(default="", compare=False)

    @property
    def initial(self) -> str:
        return next(s.name for s in self.states if s.initial)

    @property
    def state_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.states)

    def state(self, name: str) -> StateSpec:
        for s in self.states:
            if s.name == name:
                return s
        raise KeyError(name)

    def transition(self, trigger: str) -> TransitionSpec:
        for t in self.transitions:
            if t.trigger == trigger:
                return t
        raise KeyError(trigger)

    def param(self, name: str) -> ParamSpec:
        for p in self.params:
            if p.name == name:
                return p
        raise KeyError(name)

    @property
    def step_count(self) -> int:
        return sum(len(t.steps) for t in self.transitions)


# ---------------------------------------------------------------------------------------
# Canonical data form: for the definition hash and for plans recorded in the journal.

_ACTIONS: dict[str, type] = {
    "run": RunAction,
    "call": CallAction,
    "ensure": EnsureAction,
    "wait": WaitAction,
}


_NOT_DATA = frozenset({"pos", "source", "filename", "definition_hash"})
_DATA_FIELDS: dict[type, tuple[str, ...]] = {}
#: Fields added after machines were journaled: left out of the data form while they
#: hold their default, so a machine that does not use them keeps its definition hash.
_LATE_FIELDS: dict[type, frozenset[str]] = {
    StepSpec: frozenset({"sets"}),
    ObserveSpec: frozenset(
        {
            "on",
            "absent",
            "unknown",
            "listing",
            "jobs",
            "owned",
            "job_attr",
            "building",
            "grace",
            "absent_ok",
            "compares",
            "job_rules",
            "delete_orphans",
        }
    ),
}
_DEFAULTS: dict[tuple[type, str], Any] = {}


def _data_fields(cls: type) -> tuple[str, ...]:
    """The fields of a spec class that are data, in declaration order (cached: compiling
    a large machine calls ``to_data`` tens of thousands of times)."""
    names = _DATA_FIELDS.get(cls)
    if names is None:
        names = tuple(f.name for f in dataclasses.fields(cls) if f.name not in _NOT_DATA)
        _DATA_FIELDS[cls] = names
        for f in dataclasses.fields(cls):
            if f.name in _LATE_FIELDS.get(cls, ()):
                _DEFAULTS[(cls, f.name)] = f.default
    return names


def to_data(obj: Any) -> Any:
    """Plain JSON-able data for a spec object, without source positions."""
    cls = type(obj)
    if hasattr(cls, "__dataclass_fields__"):
        late = _LATE_FIELDS.get(cls)
        data: dict[str, Any] = {}
        for name in _data_fields(cls):
            value = getattr(obj, name)
            if late and name in late and value == _DEFAULTS[(cls, name)]:
                continue
            data[name] = to_data(value)
        return data
    if isinstance(obj, tuple | list):
        return [to_data(x) for x in obj]
    return obj


def _tuplify(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tuplify(v) for v in value)
    return value


def _probe_from_data(d: dict[str, Any] | None) -> ProbeSpec | None:
    return None if d is None else ProbeSpec(**d)


def step_to_data(step: StepSpec) -> dict[str, Any]:
    data: dict[str, Any] = to_data(step)
    return data


def _action_from_data(d: dict[str, Any]) -> Action:
    a = dict(d)
    kind = a["kind"]
    if kind == "wait":
        a["probe"] = _probe_from_data(a["probe"])
    elif kind == "call":
        a["args"] = tuple((k, _tuplify(v)) for k, v in a["args"])
    action: Action = _ACTIONS[kind](**a)
    return action


def step_from_data(d: dict[str, Any]) -> StepSpec:
    """Rebuild a step recorded in the journal (inverse of ``step_to_data``)."""
    retry = d.get("retry")
    comp = d.get("compensate")
    compensate = None if comp is None else _action_from_data(comp)
    assert compensate is None or isinstance(compensate, RunAction | CallAction | EnsureAction)
    return StepSpec(
        name=d["name"],
        action=_action_from_data(d["action"]),
        retry=None if retry is None else RetrySpec(**retry),
        timeout=d.get("timeout"),
        check=_probe_from_data(d.get("check")),
        idempotent=bool(d.get("idempotent", False)),
        when=_tuplify(d.get("when")),
        compensate=compensate,
        sets=tuple(
            SetSpec(x["name"], _tuplify(x.get("value")), bool(x.get("output")), x.get("pattern"))
            for x in d.get("sets", ())
        ),
    )


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def definition_hash(spec: MachineSpec) -> str:
    """SHA-256 of the canonical data form: same meaning, same hash."""
    return hashlib.sha256(canonical_json(to_data(spec)).encode()).hexdigest()
