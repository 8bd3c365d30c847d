"""Folding the journal into resource records.

Replay never fires a trigger and never runs user code: each event's recorded ``from`` and
``to`` are checked and applied. A transition started under the current definition must
lead where its compiled table says; one started under an earlier definition (its
recorded ``definition_hash`` differs) keeps the destination it recorded, since that is
the plan it runs to the end. An event that does not fit (a ``from`` that is not the
current state, a state the definition no longer has) raises ``ReplayError`` naming the
stream, version and seq and what was expected — the journal is right about what
happened; the definition or the journal file is what needs looking at, and guessing
would hide it.

Snapshots are a cache only: a snapshot is used when it was taken under the same
definition hash and at or before the requested seq; results never depend on it. The
journal hands one out only when it still names the event it folds, with that event's
hash, and its seal holds (``journal.integrity``); ``fleetlog verify`` also folds each
one's events and compares (``engine.ops.snapshots``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NamedTuple, Protocol

from fleetlog.engine.model import checkpoint
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.events import FOLDED_TYPES
from fleetlog.engine.model.gcpause import no_cycle_collection
from fleetlog.engine.model.kinds import Kind, KindRegistry
from fleetlog.engine.model.records import InProgress, Resource, split_id
from fleetlog.errors import FleetlogError
from fleetlog.journal.base import Event, Journal

SNAPSHOT_EVERY = 64


class ReplayError(FleetlogError):
    """The journal holds an event the machine definition cannot explain."""

    msg_fmt = "replay: %(stream)s version %(version)s (seq %(seq)s): %(problem)s"
    exit_code = 4
    stream: str
    version: int
    seq: int
    problem: str


class Recorded(Protocol):
    """What a fold reads of an event: an ``Event``, or a row ``replay_all`` read."""

    @property
    def seq(self) -> int: ...
    @property
    def event_id(self) -> str: ...
    @property
    def stream(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def type(self) -> str: ...
    @property
    def command_id(self) -> str | None: ...
    @property
    def correlation_id(self) -> str | None: ...
    @property
    def recorded_at(self) -> str: ...


class _Row(NamedTuple):
    """A row as ``replay_all`` reads it (``_ROW_COLUMNS``), payload still text: a tuple
    costs a tenth of an ``Event`` to make, and a fleet-wide fold makes one per event.

    A transition's ids are not read with the rows (most transitions have ended by the
    end of the fold, and their ids with them): these read as blank, and ``replay_all``
    sets those of the transitions still in progress afterwards (``_transition_ids``)."""

    seq: int
    stream: str
    version: int
    type: str
    recorded_at: str
    payload: str

    @property
    def event_id(self) -> str:
        return ""

    @property
    def command_id(self) -> str | None:
        return None

    @property
    def correlation_id(self) -> str | None:
        return None


def _problem(event: Recorded, problem: str) -> ReplayError:
    return ReplayError(stream=event.stream, version=event.version, seq=event.seq, problem=problem)


def _check_state(kind: Kind, event: Recorded, state: Any, what: str) -> str:
    if not isinstance(state, str) or state not in kind.state_set:
        raise _problem(
            event,
            f"{what} state {state!r} is not a state of kind {kind.name!r} "
            f"(states: {', '.join(kind.spec.state_names)})",
        )
    return state


def _check_from(rec: Resource, event: Recorded, recorded: Any) -> None:
    if recorded != rec.state:
        raise _problem(
            event,
            f"{event.type} recorded from state {recorded!r}, but replay has {rec.id} "
            f"in state {rec.state!r}",
        )


def apply(rec: Resource | None, event: Event, registry: KindRegistry) -> Resource:
    """Apply one event to a record (None before ``resource.created``)."""
    return _apply(rec, event, ev.read(event), registry)


def _apply(
    rec: Resource | None, event: Recorded, p: ev.Payload | None, registry: KindRegistry
) -> Resource:
    """``apply`` with the event's typed payload ``p`` read already (``replay_all`` reads
    each distinct payload text once)."""
    if rec is None:
        if not isinstance(p, ev.ResourceCreated):
            raise _problem(event, f"{event.type} before resource.created")
        kind_name, name = split_id(event.stream)
        if kind_name not in registry:
            raise _problem(event, f"kind {kind_name!r} is not loaded")
        kind = registry.get(kind_name)
        state = _check_state(kind, event, p.state, "initial")
        return Resource(
            id=event.stream,
            kind=kind_name,
            name=name,
            state=state,
            params=dict(p.params or {}),
            version=event.version,
            last_seq=event.seq,
            updated_at=event.recorded_at,
        )
    kind = registry.get(rec.kind)
    if isinstance(p, ev.ResourceCreated):
        raise _problem(event, "resource.created for a resource that already exists")
    elif isinstance(p, ev.TransitionStarted):
        if rec.in_progress is not None:
            raise _problem(
                event,
                f"transition {p.trigger!r} started while {rec.in_progress.trigger!r} "
                "is still in progress",
            )
        _check_from(rec, event, p.source)
        target = _check_state(kind, event, p.target, "target")
        trigger = str(p.trigger)
        # The table that decided this transition is the one it recorded: a destination
        # edited since then changes what is fired from now on, not what was started.
        same_definition = p.definition_hash in (None, kind.spec.definition_hash)
        expected = kind.allowed(rec.state, trigger) if same_definition else target
        if expected != target:
            raise _problem(
                event,
                f"trigger {trigger!r} from {rec.state!r} leads to {expected!r} in the "
                f"definition, but the journal recorded {target!r}",
            )
        rec.in_progress = InProgress(
            trigger=trigger,
            source=rec.state,
            target=target,
            transition_id=event.correlation_id or event.event_id,
            command_id=event.command_id,
            started_seq=event.seq,
            started_version=event.version,
        )
        rec.attention = None
    elif isinstance(
        p, ev.StepStarted | ev.StepSucceeded | ev.StepFailed | ev.StepSkipped | ev.StepInDoubt
    ):
        if rec.in_progress is not None and not p.undo:
            rec.in_progress.step = p.step
    elif isinstance(p, ev.StepResolved):
        if rec.in_progress is not None:
            rec.in_progress.step = p.step
        rec.attention = None
    elif isinstance(p, ev.AttentionRequired):
        rec.attention = {"step": p.step, "reason": p.reason, "seq": event.seq}
    elif isinstance(p, ev.TransitionCompleted | ev.TransitionFailed | ev.TransitionAborted):
        if rec.in_progress is None:
            raise _problem(event, f"{event.type} with no transition in progress")
        _check_from(rec, event, p.source)
        to = _check_state(kind, event, p.target, "destination")
        if isinstance(p, ev.TransitionCompleted) and to != rec.in_progress.target:
            raise _problem(
                event,
                f"completed into {to!r}, but the transition in progress targets "
                f"{rec.in_progress.target!r}",
            )
        rec.state = to
        rec.in_progress = None
        rec.attention = None
    elif isinstance(p, ev.StateReconciled):
        _check_from(rec, event, p.source)
        rec.state = _check_state(kind, event, p.target, "reconciled")
    elif isinstance(p, ev.AttributesSet):
        if not isinstance(p.values, dict):
            raise _problem(event, "attributes.set without a values object")
        rec.params.update(p.values)
    elif isinstance(p, ev.BackendObserved):
        if p.status is not None:
            rec.observed = p.status
        rec.observed_at = p.event_time or event.recorded_at
    rec.version = event.version
    rec.last_seq = event.seq
    rec.updated_at = event.recorded_at
    return rec


def fold(events: Iterable[Event], registry: KindRegistry) -> dict[str, Resource]:
    records: dict[str, Resource] = {}
    for event in events:
        records[event.stream] = apply(records.get(event.stream), event, registry)
    return records


#: What ``apply`` reads of every event (not its causation, actor, host or hashes, nor
#: the ids only a ``transition.started``'s are read of), in the order of
#: ``Event.COLUMNS``; the rows are read as these tuples.
_ROW_COLUMNS: tuple[str, ...] = _Row._fields
_SEQ, _STREAM, _VERSION, _TYPE, _AT, _PAYLOAD = range(6)
#: What ``_transition_ids`` reads of a ``transition.started``.
_ID_COLUMNS = ("seq", "event_id", "command_id", "correlation_id")
#: The payload keys ``apply`` reads of a ``transition.started`` (``Journal.read_all_rows``'s
#: ``project``): the payload also carries the transition's whole plan, owner and locks,
#: which replay never reads and which make it the one large payload of a fleet; cut to
#: these it is the same text for every resource the transition ran on, decoded once.
#: ``tests/engine/model/test_replay.py`` holds ``replay_all`` to ``load_resource``, which
#: reads whole payloads.
_PROJECT: dict[str, tuple[str, ...]] = {
    ev.TRANSITION_STARTED: ("trigger", "from", "to", "definition_hash"),
}


def replay_all(
    journal: Journal,
    registry: KindRegistry,
    to_seq: int | None = None,
    *,
    use_checkpoint: bool = True,
) -> dict[str, Resource]:
    """Every resource as of ``to_seq`` (None: now). Versions are the streams' own (which
    count history-only events too), not just the folded ones. With ``use_checkpoint``,
    the fold continues from the journal's fleet checkpoint when one holds
    (``checkpoint.load``): the same records, from fewer events.

    This is the hot path of a fleet-wide replay. Most events are ``step.*`` and all they
    change is the current step of the transition in progress, so their rows are kept
    undecoded and only the last one that matters is decoded when the stream's next other
    event arrives (or at the end). Every other event goes through ``apply`` with its
    checks, in journal order.

    The cyclic garbage collector is paused meanwhile: the fold makes several objects per
    event (rows, records, their dictionaries), none of them part of a cycle, and the
    collections its allocations set off would walk the records made so far again and
    again, to free nothing.
    """
    start = checkpoint.load(journal, registry, to_seq) if use_checkpoint else None
    return _replay_from(journal, registry, to_seq, start)


def _replay_from(
    journal: Journal,
    registry: KindRegistry,
    to_seq: int | None,
    start: tuple[int, dict[str, Resource]] | None,
    heads: dict[str, int] | None = None,
) -> dict[str, Resource]:
    """``replay_all`` from ``start``; ``heads``: the streams' versions at ``to_seq``,
    when the caller read them already."""
    with no_cycle_collection():
        records = _fold_rows(journal, registry, to_seq, start)
    _transition_ids(journal, records)
    if heads is None:
        heads = journal.stream_heads(to_seq)
    for stream, version in heads.items():
        rec = records.get(stream)
        if rec is not None:
            rec.version = version
    return records


def keep_checkpoint(
    journal: Journal,
    registry: KindRegistry,
    every: int = checkpoint.EVERY,
    per_stream: float = checkpoint.PER_STREAM,
) -> int | None:
    """Keep a fleet checkpoint at the journal's head when ``every`` events or more, and
    ``per_stream`` times as many events as the journal has streams, followed the last
    one; the seq it was kept at, or None when not due. Folds only the events after the
    last checkpoint, so a writer pays for what it appended."""
    if not journal.keeps_checkpoints:
        return None
    head = journal.head()
    since = head - (journal.checkpoint_seq(checkpoint.NAME) or 0)
    if not head or since < every:
        return None
    heads = journal.stream_heads(head)
    if per_stream and since < per_stream * len(heads):
        return None
    problems = len(journal.snapshot_problems)
    kept = checkpoint.load(journal, registry, head)
    if len(journal.snapshot_problems) > problems:
        return None  # one that lies is left for verify to name, not written over
    records = _replay_from(journal, registry, head, kept, heads)
    journal.put_checkpoint(checkpoint.NAME, head, checkpoint.encode(records, registry))
    return head


def _fold_rows(
    journal: Journal,
    registry: KindRegistry,
    to_seq: int | None,
    start: tuple[int, dict[str, Resource]] | None = None,
) -> dict[str, Resource]:
    """``replay_all``'s fold of the rows, before the transitions' ids and the streams'
    versions are read; from ``start`` (a checkpoint's seq and records) when given."""
    from_seq, records = start if start is not None else (0, {})
    deferred: dict[str, list[tuple[Any, ...]]] = {}
    typed = _PayloadCache()
    # Names bound once: this loop runs once per folded event of the whole journal.
    record_of, payload_of, steps, ends = records.get, typed.typed, ev.STEP_TYPES, ev.TRANSITION_ENDS
    new = tuple.__new__
    rows = journal.read_all_rows(
        from_seq=from_seq,
        to_seq=to_seq,
        types=FOLDED_TYPES,
        columns=_ROW_COLUMNS,
        project=_PROJECT,
    )
    for row in rows:
        stream = row[_STREAM]
        type_ = row[_TYPE]
        rec = record_of(stream)
        if rec is not None:
            if type_ in steps:
                pending = deferred.get(stream)
                if pending is None:
                    deferred[stream] = [row]
                else:
                    pending.append(row)
                continue
            if stream in deferred:
                # The step a transition is at is not read when this event ends it.
                _apply_steps(rec, deferred.pop(stream), None if type_ in ends else typed)
        event: _Row = new(_Row, row)
        records[stream] = _apply(rec, event, payload_of(type_, row[_PAYLOAD]), registry)
    for stream, pending in deferred.items():
        _apply_steps(records[stream], pending, typed)
    return records


def _transition_ids(journal: Journal, records: dict[str, Resource]) -> None:
    """The ids of the transitions in progress (the fold reads them blank), from their
    ``transition.started`` events. Nothing is read when none is in progress (most of
    the time); during a rollout, the ``transition.started`` events between the first and
    the last one in progress, in one range; a few far apart (a resource stuck since long
    ago), one by one, since a read costs about as much as skipping a hundred events."""
    started = {
        rec.in_progress.started_seq: rec.in_progress
        for rec in records.values()
        if rec.in_progress is not None
    }
    if not started:
        return
    first, last = min(started), max(started)
    if len(started) * 100 < last - first:
        ranges = [(seq - 1, seq) for seq in sorted(started)]
    else:
        ranges = [(first - 1, last)]
    for after, upto in ranges:
        rows = journal.read_all_rows(
            from_seq=after, to_seq=upto, types=(ev.TRANSITION_STARTED,), columns=_ID_COLUMNS
        )
        for seq, event_id, command_id, correlation_id in rows:
            ip = started.get(seq)
            if ip is not None:
                ip.transition_id = correlation_id or event_id
                ip.command_id = command_id


class _PayloadCache:
    """Each distinct payload text decoded (and typed) once per replay. A fleet's events
    repeat: the ``transition.started`` of one trigger on 100,000 resources is the same
    text 100,000 times, so a fleet-wide fold decodes a few hundred payloads, not a
    million. Payloads are never changed by a fold (``apply`` copies what it keeps), so
    sharing one decoded object is safe. Bounded: a journal of all-distinct payloads
    costs a dictionary lookup per event and a reset now and then."""

    LIMIT = 50_000

    def __init__(self) -> None:
        self._seen: dict[str, dict[str, tuple[dict[str, Any], ev.Payload | None]]] = {}
        self._size = 0

    def get(self, type_: str, text: str) -> tuple[dict[str, Any], ev.Payload | None]:
        """The decoded payload and its typed form (None for a type outside the
        vocabulary)."""
        of_type = self._seen.get(type_)
        if of_type is None:
            of_type = self._seen[type_] = {}
        hit = of_type.get(text)
        if hit is None:
            payload = json.loads(text)
            cls = ev.VOCABULARY.get(type_)
            hit = (payload, None if cls is None else cls.from_payload(payload))
            if self._size >= self.LIMIT:
                for seen in self._seen.values():
                    seen.clear()
                self._size = 0
            of_type[text] = hit
            self._size += 1
        return hit

    def typed(self, type_: str, text: str) -> ev.Payload | None:
        return self.get(type_, text)[1]


def _apply_steps(rec: Resource, rows: list[tuple[Any, ...]], typed: _PayloadCache | None) -> None:
    """What a run of step events does to a record: the current step is that of the last
    one not part of an undo; a ``step.resolved`` among them clears attention. ``typed``
    None: the current step is not needed (the next event ends the transition)."""
    last = rows[-1]
    rec.version, rec.last_seq, rec.updated_at = last[_VERSION], last[_SEQ], last[_AT]
    for r in rows:
        if r[_TYPE] == ev.STEP_RESOLVED:
            rec.attention = None
            break
    if rec.in_progress is None or typed is None:
        return
    for row in reversed(rows):
        payload = typed.get(row[_TYPE], row[_PAYLOAD])[0]
        if not payload.get("undo"):  # every step event's payload has ``step`` and ``undo``
            rec.in_progress.step = payload.get("step")
            return


def load_resource(
    journal: Journal,
    registry: KindRegistry,
    resource_id: str,
    to_seq: int | None = None,
    use_snapshots: bool = True,
) -> Resource | None:
    """One resource's record, from a snapshot plus the events after it when that is valid."""
    rec: Resource | None = None
    from_version = 1
    kind_name, _ = split_id(resource_id)
    definition = registry.get(kind_name).spec.definition_hash if kind_name in registry else None
    if use_snapshots and to_seq is None:
        snap = journal.get_snapshot(resource_id)
        if snap is not None and snap[1].get("definition_hash") == definition:
            rec = Resource.from_dict(snap[1]["record"])
            from_version = snap[0] + 1
    events = journal.read_stream(resource_id, from_version=from_version, to_seq=to_seq)
    folded = 0
    for event in events:
        if event.type not in FOLDED_TYPES:
            if rec is not None:
                rec.version = event.version
            continue
        rec = apply(rec, event, registry)
        folded += 1
    if rec is not None and use_snapshots and to_seq is None and folded >= SNAPSHOT_EVERY:
        journal.put_snapshot(
            resource_id, rec.version, {"definition_hash": definition, "record": rec.to_dict()}
        )
    return rec
