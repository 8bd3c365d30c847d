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

from collections.abc import Iterable
from typing import Any

from fleetlog.engine.model import events as ev
from fleetlog.engine.model.events import FOLDED_TYPES
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


def _problem(event: Event, problem: str) -> ReplayError:
    return ReplayError(stream=event.stream, version=event.version, seq=event.seq, problem=problem)


def _check_state(kind: Kind, event: Event, state: Any, what: str) -> str:
    if not isinstance(state, str) or state not in kind.state_set:
        raise _problem(
            event,
            f"{what} state {state!r} is not a state of kind {kind.name!r} "
            f"(states: {', '.join(kind.spec.state_names)})",
        )
    return state


def _check_from(rec: Resource, event: Event, recorded: Any) -> None:
    if recorded != rec.state:
        raise _problem(
            event,
            f"{event.type} recorded from state {recorded!r}, but replay has {rec.id} "
            f"in state {rec.state!r}",
        )


def apply(rec: Resource | None, event: Event, registry: KindRegistry) -> Resource:
    """Apply one event to a record (None before ``resource.created``)."""
    p = ev.read(event)
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


_ROW_COLUMNS = Event.COLUMNS[:12]  # everything but the hashes


def replay_all(
    journal: Journal, registry: KindRegistry, to_seq: int | None = None
) -> dict[str, Resource]:
    """Every resource as of ``to_seq`` (None: now). Versions are the streams' own (which
    count history-only events too), not just the folded ones.

    This is the hot path of a fleet-wide replay. Most events are ``step.*`` and all they
    change is the current step of the transition in progress, so their rows are kept
    undecoded and only the last one that matters is decoded when the stream's next other
    event arrives (or at the end). Every other event goes through ``apply`` with its
    checks, in journal order.
    """
    import json

    loads = json.loads
    records: dict[str, Resource] = {}
    deferred: dict[str, list[tuple[Any, ...]]] = {}
    for row in journal.read_all_rows(to_seq=to_seq, types=FOLDED_TYPES, columns=_ROW_COLUMNS):
        stream = row[2]
        rec = records.get(stream)
        if rec is not None and row[4] in ev.STEP_TYPES:
            deferred.setdefault(stream, []).append(row)
            continue
        if rec is not None and stream in deferred:
            _apply_steps(rec, deferred.pop(stream))
        event = Event(
            row[0],
            row[1],
            stream,
            row[3],
            row[4],
            row[5],
            row[6],
            row[7],
            row[8],
            row[9],
            row[10],
            loads(row[11]),
            "",
            "",
        )
        records[stream] = apply(rec, event, registry)
    for stream, rows in deferred.items():
        _apply_steps(records[stream], rows)
    for stream, version in journal.stream_heads(to_seq).items():
        rec = records.get(stream)
        if rec is not None:
            rec.version = version
    return records


def _apply_steps(rec: Resource, rows: list[tuple[Any, ...]]) -> None:
    """What a run of step events does to a record: the current step is that of the last
    one not part of an undo; a ``step.resolved`` among them clears attention."""
    import json

    last = rows[-1]
    rec.version, rec.last_seq, rec.updated_at = last[3], last[0], last[10]
    if any(r[4] == ev.STEP_RESOLVED for r in rows):
        rec.attention = None
    if rec.in_progress is None:
        return
    for row in reversed(rows):
        payload = json.loads(row[11])
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
