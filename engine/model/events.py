"""The event vocabulary: every event type fleetlog journals, and what its payload holds.

One module, read everywhere (Ironic keeps its states in one place, eventsourcing its
events as typed classes): a type is a name constant (``TRANSITION_STARTED``), its payload
a frozen dataclass with ``to_payload`` and ``from_payload``. Writers build the dataclass
and journal ``new_event(payload)``; readers ask ``read(event)`` for the typed payload
instead of picking keys out of a dict. What each part of fleetlog folds (replay, the
worker's index, the audit) is declared here once, per type, not kept as lists in each.

Payload keys are the journal's, byte for byte (``from``, ``class``, ``as`` included):
changing one would change every hash from then on and make old journals unreadable. A
key missing from an old or damaged event reads as the field's default (or None); the
readers that care (replay) check what they use and say which event is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from types import MappingProxyType
from typing import Any, ClassVar, Self

from fleetlog.frozen import frozen
from fleetlog.journal import Event, NewEvent

RESOURCE_CREATED = "resource.created"
COMMAND_ACCEPTED = "command.accepted"
COMMAND_REJECTED = "command.rejected"
TRANSITION_STARTED = "transition.started"
STEP_STARTED = "step.started"
STEP_SUCCEEDED = "step.succeeded"
STEP_FAILED = "step.failed"
STEP_SKIPPED = "step.skipped"
STEP_RESOLVED = "step.resolved"
STEP_IN_DOUBT = "step.in_doubt"
ATTENTION_REQUIRED = "attention.required"
TRANSITION_COMPLETED = "transition.completed"
TRANSITION_FAILED = "transition.failed"
TRANSITION_ABORTED = "transition.aborted"
STATE_RECONCILED = "state.reconciled"
BACKEND_OBSERVED = "backend.observed"
DRIFT_DETECTED = "drift.detected"
LOCK_ACQUIRED = "lock.acquired"
LOCK_RELEASED = "lock.released"
LOCK_BROKEN = "lock.broken"
HOST_KEY_ACCEPTED = "host_key.accepted"
BACKEND_BOUND = "backend.bound"
PLAN_STARTED = "plan.started"
PLAN_FINISHED = "plan.finished"
PLAN_CONTINUED = "plan.continued"
ATTRIBUTES_SET = "attributes.set"


#: ``from`` and ``to`` are keywords in Python: the fields are ``source`` and ``target``.
_FROM_TO: Mapping[str, str] = MappingProxyType({"source": "from", "target": "to"})


class Payload:
    """Base of every payload class: the generic ``to_payload``/``from_payload``.

    ``KEYS`` maps a field to its payload key where Python cannot use the key as a name;
    ``OPTIONAL`` lists fields left out of the payload when None (so payloads keep the
    shape they have always had). The class flags say who folds the type."""

    TYPE: ClassVar[str]
    KEYS: ClassVar[Mapping[str, str]] = MappingProxyType({})
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()
    #: Replay folds it into the resource record (everything else is history only).
    FOLDED: ClassVar[bool] = False
    #: It changes what a worker may run (``fleetlog.engine.ops.worker.WorkIndex``).
    WORK: ClassVar[bool] = False
    #: It ends the transition in progress.
    ENDS_TRANSITION: ClassVar[bool] = False

    def to_payload(self) -> dict[str, Any]:
        # Every step writes a few of these: the first call makes a function for the
        # class (as dataclasses makes __init__) and puts it in this method's place, so
        # later calls cost a third of a generic loop over the fields.
        cls = type(self)
        writer = _make_writer(cls)
        setattr(cls, "to_payload", writer)  # noqa: B010  (typed as the method it replaces)
        return writer(self)

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Self:
        return cls(**{name: payload.get(key, default) for name, key, default in _layout(cls)})


_LAYOUTS: dict[type[Payload], tuple[tuple[str, str, Any], ...]] = {}


def _make_writer(cls: type[Payload]) -> Callable[[Any], dict[str, Any]]:
    """``to_payload`` of ``cls`` as straight-line code: the payload's keys in field
    order, optional ones only when set."""
    lines = ["def to_payload(self):", "    out = {}"]
    for name, key, _default in _layout(cls):
        if name in cls.OPTIONAL:
            lines.append(f"    if self.{name} is not None:")
            lines.append(f"        out[{key!r}] = self.{name}")
        else:
            lines.append(f"    out[{key!r}] = self.{name}")
    lines.append("    return out")
    scope: dict[str, Any] = {}
    exec("\n".join(lines), scope)
    writer: Callable[[Any], dict[str, Any]] = scope["to_payload"]
    return writer


def _layout(cls: type[Payload]) -> tuple[tuple[str, str, Any], ...]:
    """(field, payload key, value when absent) of a payload class, worked out once:
    replay reads a payload per folded event."""
    layout = _LAYOUTS.get(cls)
    if layout is None:
        layout = _LAYOUTS[cls] = tuple(
            (f.name, cls.KEYS.get(f.name, f.name), None if f.default is MISSING else f.default)
            for f in fields(cls)  # type: ignore[arg-type]
        )
    return layout


# ------------------------------------------------------------------ resources, commands
@frozen
class ResourceCreated(Payload):
    TYPE = RESOURCE_CREATED
    FOLDED = True
    OPTIONAL = frozenset({"definition_hash", "finding"})

    kind: str
    params: dict[str, Any]
    state: Any  # a state name; replay checks it
    definition_hash: str | None = None
    #: The ``drift.detected`` that an adopted orphan's creation fixes.
    finding: dict[str, Any] | None = None


@frozen
class CommandAccepted(Payload):
    TYPE = COMMAND_ACCEPTED
    WORK = True
    OPTIONAL = frozenset({"submitted"})

    trigger: str
    params: dict[str, Any]
    resource: str
    #: The fan-out run it belongs to (one correlation for many resources).
    run: str | None = None
    #: Journaled by ``fire --submit`` for a worker to start.
    submitted: bool | None = None


@frozen
class CommandRejected(Payload):
    TYPE = COMMAND_REJECTED
    WORK = True

    trigger: str | None
    error: str


# ------------------------------------------------------------------ transitions
@frozen
class FailurePlan:
    """``on failure -> STATE undo [steps]`` as ``transition.started`` records it."""

    state: str | None
    undo: list[str]


@frozen
class TransitionStarted(Payload):
    TYPE = TRANSITION_STARTED
    FOLDED = True
    WORK = True
    KEYS = _FROM_TO
    OPTIONAL = frozenset({"backend", "host"})

    trigger: str
    source: Any  # ``from``: a state name; replay checks it
    target: Any  # ``to``
    params: dict[str, Any]
    #: The steps as they were when it started: resume follows these, not the file.
    plan: list[dict[str, Any]]
    failure: dict[str, Any] | None
    definition_hash: str | None
    locks: list[str]
    owner: str | None = None
    token: int | None = None
    #: Where its steps run: resuming it anywhere else is refused.
    backend: str | None = None
    host: str | None = None

    @property
    def failure_plan(self) -> FailurePlan | None:
        f = self.failure or None
        if f is None:
            return None
        return FailurePlan(f.get("state"), list(f.get("undo") or []))


@frozen
class TransitionCompleted(Payload):
    TYPE = TRANSITION_COMPLETED
    FOLDED = WORK = ENDS_TRANSITION = True
    KEYS = _FROM_TO
    OPTIONAL = frozenset({"skipped", "output"})

    trigger: str
    source: Any
    target: Any
    #: Why nothing ran: the transition's ``skip if`` probe held.
    skipped: str | None = None
    output: str | None = None


@frozen
class TransitionFailed(Payload):
    TYPE = TRANSITION_FAILED
    FOLDED = WORK = ENDS_TRANSITION = True
    KEYS = _FROM_TO

    trigger: str
    source: Any
    target: Any
    step: str | None
    error: str | None


@frozen
class TransitionAborted(Payload):
    """Read for journals that hold it; fleetlog ends an aborted step's transition with
    ``transition.failed``."""

    TYPE = TRANSITION_ABORTED
    FOLDED = WORK = ENDS_TRANSITION = True
    KEYS = _FROM_TO

    trigger: str | None
    source: Any
    target: Any
    error: str | None = None


# ------------------------------------------------------------------ steps
@frozen
class StepStarted(Payload):
    TYPE = STEP_STARTED
    FOLDED = True
    OPTIONAL = frozenset({"undo"})

    step: str
    attempt: int
    #: The fencing token of the lease it ran under.
    token: int | None
    undo: bool | None = None


@frozen
class StepSucceeded(Payload):
    TYPE = STEP_SUCCEEDED
    FOLDED = True
    OPTIONAL = frozenset({"undo", "exit_code", "command", "duration", "via", "error"})

    step: str
    attempt: int | None = None
    output: str = ""
    exit_code: int | None = None
    command: str | None = None
    duration: float | None = None
    undo: bool | None = None
    #: How a step in doubt was found done (``check``).
    via: str | None = None
    error: str | None = None


@frozen
class StepFailed(Payload):
    TYPE = STEP_FAILED
    FOLDED = True
    OPTIONAL = frozenset({"undo", "command", "will_retry"})

    step: str
    attempt: int | None = None
    output: str = ""
    exit_code: int | None = None
    command: str | None = None
    error: str | None = None
    will_retry: bool | None = None
    undo: bool | None = None


@frozen
class StepSkipped(Payload):
    TYPE = STEP_SKIPPED
    FOLDED = True
    OPTIONAL = frozenset({"output", "undo"})

    step: str
    reason: str  # when | check
    output: str | None = None
    undo: bool | None = None


@frozen
class StepInDoubt(Payload):
    """A step whose command was sent but whose outcome is unknown (the connection was
    lost after it ran, its process was killed): what is decided next is journaled next."""

    TYPE = STEP_IN_DOUBT
    FOLDED = True
    OPTIONAL = frozenset({"undo"})

    step: str
    attempt: int | None
    reason: str | None
    undo: bool | None = None


@frozen
class StepResolved(Payload):
    """An operator's decision about a step in doubt (``fleetlog resolve``)."""

    TYPE = STEP_RESOLVED
    FOLDED = WORK = True
    KEYS = MappingProxyType({"how": "as"})

    step: str
    how: str  # done | retry | abort
    reason: str


@frozen
class AttentionRequired(Payload):
    TYPE = ATTENTION_REQUIRED
    FOLDED = WORK = True

    step: str | None
    reason: str | None


# ------------------------------------------------------------------ the backend's view
@frozen
class StateReconciled(Payload):
    TYPE = STATE_RECONCILED
    FOLDED = True
    KEYS = _FROM_TO
    OPTIONAL = frozenset({"message"})

    source: Any
    target: Any
    #: The ``drift.detected`` it fixes: ``{id, class, observed}``.
    finding: dict[str, Any] | None = None
    #: Or the ingested backend message that moved it: ``{id, operation, job_status,
    #: status}``.
    message: dict[str, Any] | None = None


@frozen
class AttributesSet(Payload):
    """Params of the resource take new values: recorded by a step's ``set``, by ingest
    (a resize the backend reports) or by a reconcile fix (the backend's values)."""

    TYPE = ATTRIBUTES_SET
    FOLDED = True
    OPTIONAL = frozenset({"step", "finding", "message"})

    values: dict[str, Any]
    #: What they were, for the audit.
    previous: dict[str, Any]
    step: str | None = None
    #: The ``drift.detected`` it fixes: ``{id, class}``.
    finding: dict[str, Any] | None = None
    #: The ingested message that reported them.
    message: str | None = None


@frozen
class BackendObserved(Payload):
    TYPE = BACKEND_OBSERVED
    FOLDED = True
    OPTIONAL = frozenset({"job"})

    status: str | None
    event_time: str | None = None
    message_id: str | None = None
    source: str | None = None
    job: dict[str, Any] | None = None


@frozen
class DriftDetected(Payload):
    TYPE = DRIFT_DETECTED
    KEYS = MappingProxyType({"cls": "class"})
    OPTIONAL = frozenset({"fix", "unfixable"})

    cls: str
    resource: str
    evidence: dict[str, Any]
    fix: dict[str, Any] | None = None
    unfixable: str | None = None


# ------------------------------------------------------------------ leases, ssh
@frozen
class LockAcquired(Payload):
    TYPE = LOCK_ACQUIRED

    owner: str
    token: int
    ttl: float | None = None


@frozen
class LockReleased(Payload):
    TYPE = LOCK_RELEASED

    owner: str
    token: int


@frozen
class LockBroken(Payload):
    TYPE = LOCK_BROKEN

    previous_owner: str
    previous_token: int
    reason: str
    owner: str
    token: int


@frozen
class HostKeyAccepted(Payload):
    TYPE = HOST_KEY_ACCEPTED

    host: str
    key_type: str
    fingerprint: str


@frozen
class BackendBound(Payload):
    """The backend a journal's steps run on (stream ``settings/backend``): set by the
    first command that runs a step, changed only by ``fleetlog backend set``."""

    TYPE = BACKEND_BOUND

    backend: str
    previous: str | None = None
    reason: str | None = None


# ------------------------------------------------------------------ fan-out plans
@frozen
class PlanStarted(Payload):
    """One fan-out, journaled whole before its first member starts (stream
    ``plan/<id>``): ``resume`` finishes it from this record alone."""

    TYPE = PLAN_STARTED
    OPTIONAL = frozenset({"pattern", "batch", "batches", "canary", "canary_check", "rate"})

    trigger: str
    params: dict[str, Any]
    #: The expanded members, in the order they are started.
    members: list[str]
    parallel: int
    max_fail: float
    #: What makes two fires "the same fan-out": a digest of trigger, params and members.
    key: str
    pattern: str | None = None
    #: A rolling plan (``fleetlog.engine.ops.rolling``): ``--batch`` as given ("10%"),
    #: the sizes of its batches in order (the canary's first), ``--canary`` K, the
    #: ``--canary-check`` command and ``--rate`` as given ("5/s"). Absent: one batch.
    batch: str | None = None
    batches: list[int] | None = None
    canary: int | None = None
    canary_check: str | None = None
    rate: str | None = None


@frozen
class PlanFinished(Payload):
    """Every member of the plan completed, failed or is waiting for an operator."""

    TYPE = PLAN_FINISHED

    counts: dict[str, int]


@frozen
class PlanContinued(Payload):
    """A rolling plan may go on past the end of batch ``batch`` (1-based), where it
    stopped or would stop: its canary passed the ``--canary-check`` (``by`` "canary-check"),
    an operator confirmed it (``by`` "yes"), or accepted its failures (``by``
    "accept-failures": the failed members, ``forgiven``, no longer count against the
    batch's ``--max-fail``)."""

    TYPE = PLAN_CONTINUED
    OPTIONAL = frozenset({"check", "forgiven"})

    batch: int
    by: str
    check: str | None = None
    forgiven: list[str] | None = None


VOCABULARY: dict[str, type[Payload]] = {
    cls.TYPE: cls
    for cls in (
        ResourceCreated,
        CommandAccepted,
        CommandRejected,
        TransitionStarted,
        TransitionCompleted,
        TransitionFailed,
        TransitionAborted,
        StepStarted,
        StepSucceeded,
        StepFailed,
        StepSkipped,
        StepInDoubt,
        StepResolved,
        AttentionRequired,
        StateReconciled,
        AttributesSet,
        BackendObserved,
        DriftDetected,
        LockAcquired,
        LockReleased,
        LockBroken,
        HostKeyAccepted,
        BackendBound,
        PlanStarted,
        PlanFinished,
        PlanContinued,
    )
}

#: Types replay folds into records (in vocabulary order).
FOLDED_TYPES: tuple[str, ...] = tuple(t for t, c in VOCABULARY.items() if c.FOLDED)
#: Types that change what a worker may run.
WORK_TYPES: tuple[str, ...] = tuple(t for t, c in VOCABULARY.items() if c.WORK)
#: Types that end the transition in progress.
TRANSITION_ENDS: tuple[str, ...] = tuple(t for t, c in VOCABULARY.items() if c.ENDS_TRANSITION)
#: Types of one step's life.
STEP_TYPES: frozenset[str] = frozenset(
    (STEP_STARTED, STEP_SUCCEEDED, STEP_FAILED, STEP_SKIPPED, STEP_IN_DOUBT, STEP_RESOLVED)
)
#: Types that move a resource from one state to another (``from`` and ``to``).
MOVES: tuple[str, ...] = (
    TRANSITION_STARTED,
    TRANSITION_COMPLETED,
    TRANSITION_FAILED,
    TRANSITION_ABORTED,
    STATE_RECONCILED,
)


def read(event: Event) -> Payload | None:
    """The typed payload of ``event``, or None for a type outside the vocabulary (an
    event a newer fleetlog or a plugin wrote: history to show, nothing to fold)."""
    cls = VOCABULARY.get(event.type)
    return None if cls is None else cls.from_payload(event.payload)


def new_event(
    payload: Payload,
    *,
    command_id: str | None = None,
    causation_id: str | None = None,
    correlation_id: str | None = None,
) -> NewEvent:
    """The ``NewEvent`` that journals ``payload`` under its type."""
    return NewEvent(payload.TYPE, payload.to_payload(), command_id, causation_id, correlation_id)
