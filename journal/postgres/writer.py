"""The PostgreSQL write path behind ``append``: one statement, one round trip per batch.

A batch of append requests (a group commit's worth, ``journal.groupcommit``) is sent as
one call of ``fleetlog_append`` (``journal.postgres.append_fn``) in autocommit mode: the
function takes the journal's advisory lock, reads the chain's tail and decides, checks
and writes every request server-side, so the lock is held for that one statement, never
across a round trip nor an fsync. Durability comes after, outside the lock: callers of
``append`` wait for the shared flush (``journal.postgres.flusher``) when one is running;
otherwise (a lone appender, ``append_many``, bulk loads) the batch's own ``BARRIER``
follows its call in the same round trip (``_CALL_AND_FLUSH``). ``seq``
order is still commit order (the lock is released at commit), so a reader that sees seq
N has seen every seq below it. The new head is announced with ``NOTIFY fleetlog_events``
inside it (delivered on commit).

Event ids (UUIDv7) are made here, before the call, so an append whose commit is unknown
(the connection died while it was in flight) can be looked up afterwards by its first
event id: found means committed, all of it (``resolve``).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus

from fleetlog.journal.appender import AppendRequest, Row
from fleetlog.journal.base import (
    ConcurrencyConflict,
    Event,
    Fenced,
    JournalError,
    JournalStats,
    Lease,
    LeaseChanged,
)
from fleetlog.journal.groupcommit import Slot
from fleetlog.journal.ids import uuid7
from fleetlog.journal.leases import LeaseRow, check_fence
from fleetlog.journal.postgres.append_fn import FUNCTION

CHANNEL = "fleetlog_events"

SELECT_COLS = ", ".join("payload::text" if c == "payload" else c for c in Event.COLUMNS)

CALL = f"SELECT * FROM {FUNCTION}(%s, %s, %s, %s::json)"
_BY_ID = f"SELECT {SELECT_COLS} FROM events WHERE event_id = ANY(%s)"
#: Makes everything committed before it durable: a transactional WAL record, so its
#: commit flushes the WAL up to itself (``synchronous_commit`` on, as by default).
BARRIER = "SELECT pg_logical_emit_message(true, 'fleetlog', '')"


@dataclass(frozen=True, slots=True)
class Take:
    """A lease taken with the append that records it, if its row is still ``seen``."""

    lease: Lease
    seen: LeaseRow | None


@dataclass(frozen=True, slots=True)
class PgRequest:
    """An append as the function takes it: with its event ids, and the lease work done
    in its transaction (``take`` a lease first, or ``release`` its fence's lease after)."""

    append: AppendRequest
    event_ids: tuple[str, ...]
    take: Take | None = None
    release: bool = False
    #: Its caller makes it durable itself, through the shared flush (``Flusher``);
    #: otherwise the batch writing it flushes before answering.
    caller_flushes: bool = False

    @classmethod
    def of(
        cls,
        append: AppendRequest,
        take: Take | None = None,
        release: bool = False,
        caller_flushes: bool = False,
    ) -> PgRequest:
        event_ids = tuple(uuid7() for _ in append.events)
        return cls(append, event_ids, take, release, caller_flushes)


def batch_json(requests: Sequence[PgRequest]) -> str:
    """The batch as the function reads it: one JSON row per event, the first row of each
    request carrying the request's fields too (``f``), and one row without an event for
    a request that has none (lease work only)."""
    rows: list[dict[str, Any]] = []
    for n, request in enumerate(requests, 1):
        a = request.append
        first: dict[str, Any] = {"r": n, "f": True, "s": a.stream}
        if a.expected_version is not None:
            first["ev"] = a.expected_version
        if (cid := a.command_id) is not None:
            first["cid"] = cid
        if (f := a.fence) is not None:
            first.update(fr=f.resource, fo=f.owner, ft=f.token)
        if (take := request.take) is not None:
            lease = take.lease
            first.update(op="take", lo=lease.owner, lt=lease.token, le=lease.expires_at)
            if (seen := take.seen) is not None:
                first.update(so=seen[0], st=seen[1], se=seen[2])
        elif request.release:
            first["op"] = "release"
        if not a.events:
            rows.append(first)
        for i, (event_id, event) in enumerate(zip(request.event_ids, a.events, strict=True)):
            type_, cid, causation, correlation, actor, host, text = event
            row: dict[str, Any] = first if i == 0 else {"r": n, "f": False}
            row.update(id=event_id, ty=type_, ec=cid, ca=causation, co=correlation)
            row.update(ac=actor, ho=host, pl=text)
            rows.append(row)
    return json.dumps(rows, ensure_ascii=False, separators=(",", ":"))


def _outcome(request: PgRequest, rows: list[tuple[Any, ...]]) -> list[Row] | JournalError:
    """One request's result rows as its stored rows, or the error that is its outcome."""
    a = request.append
    status = rows[0][1]
    if status == "ok":
        if rows[0][2] is None:  # lease work only
            return []
        out: list[Row] = []
        for r, event, event_id in zip(rows, a.events, request.event_ids, strict=True):
            type_, cid, causation, correlation, actor, host, text = event
            out.append(
                (
                    *(r[2], event_id, a.stream, r[3], type_, cid, causation, correlation),
                    *(actor, host, r[4], text, r[5], r[6]),
                )
            )
        return out
    if status == "prior":
        return [(r[2], r[7], r[8], r[3], *r[9:15], r[4], r[15], r[5], r[6]) for r in rows]
    if status == "conflict":
        return ConcurrencyConflict(stream=a.stream, expected=a.expected_version, actual=rows[0][3])
    if status == "fenced" and a.fence is not None:
        r = rows[0]
        current: LeaseRow | None = None if r[17] is None else (r[16], int(r[17]), float(r[18]))
        refused: Fenced | None = check_fence(a.fence, current)
        if refused is not None:
            return refused
    if status == "changed":
        return LeaseChanged(resource=a.stream)
    return JournalError(f"the journal's append function answered {status!r} for {a.stream}")


#: The call and the flush in one round trip: the call in its own transaction (which
#: commits without waiting for its WAL and so frees the journal's lock at once), then the
#: flush in the next one. A flush sent after the answer cost a second round trip, which
#: for a lone appender (one thread, nothing else to share the flush with) was as long
#: again as the append. Several statements in one message need client-side binding.
_CALL_AND_FLUSH = f"BEGIN; {CALL}; COMMIT; {BARRIER}"


def _call_and_flush(conn: Any, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
    """The function's rows, once they are committed and flushed."""
    cur = psycopg.ClientCursor(conn)
    try:
        cur.execute(_CALL_AND_FLUSH, params)
        cur.nextset()  # past BEGIN's empty result, to the function's rows
        rows: list[tuple[Any, ...]] = cur.fetchall()
    except psycopg.Error:
        # A failed statement leaves the explicit transaction open and aborted: end it,
        # or the connection refuses everything after (the pool would discard it later).
        if not conn.closed and conn.info.transaction_status == TransactionStatus.INERROR:
            conn.execute("ROLLBACK")
        raise
    finally:
        cur.close()
    return rows


class PgBatchWriter:
    """Writes batches of requests; the caller provides a connection (autocommit)."""

    def __init__(self, lock_key: int, stats: JournalStats) -> None:
        self._lock_key = lock_key
        self._stats = stats

    def call(
        self, conn: Any, requests: Sequence[PgRequest], check: bool = True
    ) -> list[list[Row] | JournalError]:
        """Every request's outcome, in order, from one call of the function."""
        params = (self._lock_key, check, CHANNEL, batch_json(requests))
        if all(r.caller_flushes for r in requests):
            result = conn.execute(CALL, params).fetchall()
        else:
            result = _call_and_flush(conn, params)
        by_request: dict[int, list[tuple[Any, ...]]] = defaultdict(list)
        for r in result:
            by_request[r[0]].append(r)
        outcomes = [_outcome(request, by_request[i]) for i, request in enumerate(requests, 1)]
        self._stats.commits += 1
        self._stats.events += sum(len(o) for o in outcomes if not isinstance(o, BaseException))
        return outcomes

    def write(self, conn: Any, slots: list[Slot[PgRequest]]) -> None:
        """Write ``slots`` in one call; then give every member its rows or its error.
        Driver errors propagate: nobody has been told anything yet."""
        outcomes = self.call(conn, [slot.request for slot in slots])
        self._stats.appends += len(slots)
        for slot, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                slot.fail(outcome)
            else:
                slot.succeed(outcome)

    def write_unchecked(self, conn: Any, requests: Sequence[PgRequest]) -> int:
        """Write ``requests`` with no version or idempotency checks; how many events."""
        outcomes = self.call(conn, requests, check=False)
        return sum(len(o) for o in outcomes if not isinstance(o, BaseException))


def resolve(conn: Any, slots: list[Slot[PgRequest]]) -> list[Slot[PgRequest]]:
    """After a connection died with ``slots`` in flight: give every member whose events
    are in the journal (the call committed) its rows, and return the others (not
    written: they may be sent again). A member with no events cannot be told apart and
    is sent again (its lease work is idempotent)."""
    ids = [i for slot in slots for i in slot.request.event_ids]
    found: dict[str, Row] = {}
    if ids:
        found = {row[1]: row for row in conn.execute(_BY_ID, (ids,)).fetchall()}
    rest = []
    for slot in slots:
        event_ids = slot.request.event_ids
        if event_ids and event_ids[0] in found:
            slot.succeed([found[i] for i in event_ids])
        else:
            rest.append(slot)
    if found:
        conn.execute(BARRIER)  # committed, but perhaps not yet flushed
    return rest
