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
definition hash and at or before the requested seq; results never depend on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from fleetlog.engine.model.kinds import Kind, KindRegistry
from fleetlog.engine.model.records import InProgress, Resource, split_id
from fleetlog.errors import FleetlogError
from fleetlog.journal.base import Event, Journal

SNAPSHOT_EVERY = 64

# Event types that change a record. Everything else (locks, outputs of probes,
# drift findings, commands) is history only.
FOLDED_TYPES: tuple[str, ...] = (
    "resource.created",
    "transition.started",
    "step.started",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.resolved",
    "attention.required",
    "transition.completed",
    "transition.failed",
    "transition.aborted",
    "state.reconciled",
    "backend.observed",
)


class ReplayError(FleetlogError):
    """The journal holds an event the machine definition cannot explain."""

    msg_fmt = "replay: %(stream)s version %(version)s (seq %(seq)s): %(problem)s"
    exit_code = 4
    stream: str
    version: int
    seq: int
    problem: str


def _problem(ev: Event, problem: str) -> ReplayError:
    return ReplayError(stream=ev.stream, version=ev.version, seq=ev.seq, problem=problem)


def _check_state(kind: Kind, ev: Event, state: Any, what: str) -> str:
    if not isinstance(state, str) or state not in kind.state_set:
        raise _problem(
            ev,
            f"{what} state {state!r} is not a state of kind {kind.name!r} "
            f"(states: {', '.join(kind.spec.state_names)})",
        )
    return state


def _check_from(rec: Resource, ev: Event) -> None:
    recorded = ev.payload.get("from")
    if recorded != rec.state:
        raise _problem(
            ev,
            f"{ev.type} recorded from state {recorded!r}, but replay has {rec.id} "
            f"in state {rec.state!r}",
        )


def apply(rec: Resource | None, ev: Event, registry: KindRegistry) -> Resource:
    """Apply one event to a record (None before ``resource.created``)."""
    p = ev.payload
    if rec is None:
        if ev.type != "resource.created":
            raise _problem(ev, f"{ev.type} before resource.created")
        kind_name, name = split_id(ev.stream)
        if kind_name not in registry:
            raise _problem(ev, f"kind {kind_name!r} is not loaded")
        kind = registry.get(kind_name)
        state = _check_state(kind, ev, p.get("state"), "initial")
        return Resource(
            id=ev.stream,
            kind=kind_name,
            name=name,
            state=state,
            params=dict(p.get("params") or {}),
            version=ev.version,
            last_seq=ev.seq,
            updated_at=ev.recorded_at,
        )
    kind = registry.get(rec.kind)
    t = ev.type
    if t == "resource.created":
        raise _problem(ev, "resource.created for a resource that already exists")
    elif t == "transition.started":
        if rec.in_progress is not None:
            raise _problem(
                ev,
                f"transition {p.get('trigger')!r} started while {rec.in_progress.trigger!r} "
                "is still in progress",
            )
        _check_from(rec, ev)
        target = _check_state(kind, ev, p.get("to"), "target")
        trigger = str(p.get("trigger"))
        # The table that decided this transition is the one it recorded: a destination
        # edited since then changes what is fired from now on, not what was started.
        recorded_under = p.get("definition_hash")
        same_definition = recorded_under in (None, kind.spec.definition_hash)
        expected = kind.allowed(rec.state, trigger) if same_definition else target
        if expected != target:
            raise _problem(
                ev,
                f"trigger {trigger!r} from {rec.state!r} leads to {expected!r} in the "
                f"definition, but the journal recorded {target!r}",
            )
        rec.in_progress = InProgress(
            trigger=trigger,
            source=rec.state,
            target=target,
            transition_id=ev.correlation_id or ev.event_id,
            command_id=ev.command_id,
            started_seq=ev.seq,
            started_version=ev.version,
        )
        rec.attention = None
    elif t in ("step.started", "step.succeeded", "step.failed", "step.skipped", "step.resolved"):
        if rec.in_progress is not None and not p.get("undo"):
            rec.in_progress.step = p.get("step")
        if t == "step.resolved":
            rec.attention = None
    elif t == "attention.required":
        rec.attention = {"step": p.get("step"), "reason": p.get("reason"), "seq": ev.seq}
    elif t in ("transition.completed", "transition.failed", "transition.aborted"):
        if rec.in_progress is None:
            raise _problem(ev, f"{t} with no transition in progress")
        _check_from(rec, ev)
        to = _check_state(kind, ev, p.get("to"), "destination")
        if t == "transition.completed" and to != rec.in_progress.target:
            raise _problem(
                ev,
                f"completed into {to!r}, but the transition in progress targets "
                f"{rec.in_progress.target!r}",
            )
        rec.state = to
        rec.in_progress = None
        rec.attention = None
    elif t == "state.reconciled":
        _check_from(rec, ev)
        rec.state = _check_state(kind, ev, p.get("to"), "reconciled")
    elif t == "backend.observed":
        rec.observed = p.get("status")
        rec.observed_at = p.get("event_time") or ev.recorded_at
    rec.version = ev.version
    rec.last_seq = ev.seq
    rec.updated_at = ev.recorded_at
    return rec


def fold(events: Iterable[Event], registry: KindRegistry) -> dict[str, Resource]:
    records: dict[str, Resource] = {}
    for ev in events:
        records[ev.stream] = apply(records.get(ev.stream), ev, registry)
    return records


_ROW_COLUMNS = Event.COLUMNS[:12]  # everything but the hashes
_STEP_TYPES = frozenset(
    ("step.started", "step.succeeded", "step.failed", "step.skipped", "step.resolved")
)


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
        if rec is not None and row[4] in _STEP_TYPES:
            deferred.setdefault(stream, []).append(row)
            continue
        if rec is not None and stream in deferred:
            _apply_steps(rec, deferred.pop(stream))
        ev = Event(
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
        records[stream] = apply(rec, ev, registry)
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
    if any(r[4] == "step.resolved" for r in rows):
        rec.attention = None
    if rec.in_progress is None:
        return
    for row in reversed(rows):
        payload = json.loads(row[11])
        if not payload.get("undo"):
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
    for ev in events:
        if ev.type not in FOLDED_TYPES:
            if rec is not None:
                rec.version = ev.version
            continue
        rec = apply(rec, ev, registry)
        folded += 1
    if rec is not None and use_snapshots and to_seq is None and folded >= SNAPSHOT_EVERY:
        journal.put_snapshot(
            resource_id, rec.version, {"definition_hash": definition, "record": rec.to_dict()}
        )
    return rec
