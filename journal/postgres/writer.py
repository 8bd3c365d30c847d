"""The PostgreSQL write transaction behind ``append``: one transaction per batch.

Every batch takes ``pg_advisory_xact_lock`` on the journal's key first and only then
reads the chain's tail, the current versions of the streams it touches and which of its
command ids are already recorded (one pipelined round trip). The lock is held until
commit, so transactions that append commit in the order they took it: ``seq`` order is
commit order, and a reader that sees seq N has seen every seq below it (no gaps to guess
about). Planning is ``journal.appender.BatchPlan``, shared with SQLite, so versions,
timestamps and hashes are computed by the same code. The new head is announced with
``NOTIFY fleetlog_events`` inside the transaction (delivered on commit).
"""

from __future__ import annotations

from typing import Any

from fleetlog.journal.appender import COMMAND_ACCEPTED, AppendRequest, BatchPlan, Row
from fleetlog.journal.base import GENESIS_HASH, Event, JournalStats
from fleetlog.journal.clock import us_from_iso
from fleetlog.journal.groupcommit import Slot
from fleetlog.journal.leases import LeaseRow, check_fence

#: Lease rows by resource, as a batch read them.
FenceRows = dict[str, LeaseRow]

CHANNEL = "fleetlog_events"

_COLS = ", ".join(Event.COLUMNS)
SELECT_COLS = ", ".join("payload::text" if c == "payload" else c for c in Event.COLUMNS)
_TYPES = {"seq": "bigint", "version": "bigint", "payload": "text"}
# All rows of a batch as one array per column, and the NOTIFY, in one statement.
INSERT_MANY = (
    f"WITH new AS (INSERT INTO events ({_COLS}) SELECT "
    + ", ".join("payload::json" if c == "payload" else c for c in Event.COLUMNS)
    + " FROM unnest("
    + ", ".join(f"%s::{_TYPES.get(c, 'text')}[]" for c in Event.COLUMNS)
    + f") AS r({_COLS})) SELECT pg_notify(%s, %s)"
)
_TAIL = "SELECT seq, hash, recorded_at FROM events ORDER BY seq DESC LIMIT 1"
_VERSIONS = "SELECT stream, max(version) FROM events WHERE stream = ANY(%s) GROUP BY stream"
_KNOWN = f"SELECT command_id FROM events WHERE type = '{COMMAND_ACCEPTED}' AND command_id = ANY(%s)"
_ACCEPTED = (
    "SELECT stream, version, recorded_at FROM events "
    f"WHERE type = '{COMMAND_ACCEPTED}' AND command_id = %s"
)
_FENCES = (
    "SELECT resource, owner, token, expires_at FROM leases "
    "WHERE resource = ANY(%s) ORDER BY resource FOR SHARE"
)
_STREAM_FROM = (
    f"SELECT {SELECT_COLS} FROM events "
    "WHERE stream = %s AND version >= %s AND recorded_at = %s ORDER BY version"
)


class PgBatchWriter:
    """Writes batches of append requests; the caller provides a connection per batch."""

    def __init__(self, lock_key: int, stats: JournalStats) -> None:
        self._lock_key = lock_key
        self._stats = stats

    def _plan(self, conn: Any, requests: list[AppendRequest]) -> tuple[BatchPlan, FenceRows]:
        """The batch's plan, and the lease rows of the batch's fences, read under
        ``FOR SHARE``: a lease cannot change hands between this check and the commit (a
        claimant's ``FOR UPDATE`` waits for it), so a fence that holds here holds when
        the rows become visible."""
        streams = sorted({r.stream for r in requests})
        command_ids = sorted({c for r in requests if (c := r.command_id) is not None})
        fenced = sorted({f.resource for r in requests if (f := r.fence) is not None})
        with conn.pipeline():  # one round trip; the lock is taken before the reads run
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (self._lock_key,))
            tail_cur = conn.execute(_TAIL)
            versions_cur = conn.execute(_VERSIONS, (streams,))
            known_cur = conn.execute(_KNOWN, (command_ids,)) if command_ids else None
            fence_cur = conn.execute(_FENCES, (fenced,)) if fenced else None
        fences: FenceRows = {}
        if fence_cur is not None:
            for resource, owner, token, expires_at in fence_cur.fetchall():
                fences[resource] = (owner, int(token), float(expires_at))
        tail = tail_cur.fetchone()
        versions = {stream: int(v) for stream, v in versions_cur.fetchall()}
        known = {cid for (cid,) in known_cur.fetchall()} if known_cur is not None else set()
        if tail is None:
            seq, prev, last_us = 0, GENESIS_HASH, 0
        else:
            seq, prev, last_us = tail[0], tail[1], us_from_iso(tail[2])

        def current_version(stream: str) -> int:
            found = versions.get(stream)
            if found is None:  # not prefetched (cannot happen for requests given above)
                (found,) = conn.execute(
                    "SELECT coalesce(max(version), 0) FROM events WHERE stream = %s", (stream,)
                ).fetchone()
            return int(found)

        def recorded_append(command_id: str) -> list[Row] | None:
            if command_id not in known:
                return None
            return recorded_rows(conn, command_id)

        return BatchPlan(seq, prev, last_us, current_version, recorded_append), fences

    def write(self, conn: Any, slots: list[Slot[AppendRequest]]) -> None:
        """Plan and commit ``slots`` on ``conn`` (autocommit mode); then give every
        member its rows or its error. Driver errors propagate: nobody has been told
        anything yet, so the caller may retry the members one by one."""
        with conn.transaction():
            plan, fences = self._plan(conn, [slot.request for slot in slots])
            outcomes: list[Any] = []
            for slot in slots:
                fence = slot.request.fence
                refused = None if fence is None else check_fence(fence, fences.get(fence.resource))
                outcomes.append(refused if refused is not None else plan.add(slot.request))
            self._insert(conn, plan)
        self._stats.commits += 1
        self._stats.appends += len(slots)
        self._stats.events += len(plan.rows)
        for slot, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                slot.fail(outcome)
            else:
                slot.succeed(outcome)

    def write_unchecked(self, conn: Any, requests: list[AppendRequest]) -> int:
        """Plan and commit ``requests`` with no version or idempotency checks."""
        with conn.transaction():
            plan, _fences = self._plan(conn, requests)
            for request in requests:
                plan.add(request, check=False)
            self._insert(conn, plan)
        self._stats.commits += 1
        self._stats.events += len(plan.rows)
        return len(plan.rows)

    @staticmethod
    def _insert(conn: Any, plan: BatchPlan) -> None:
        """Every row and the NOTIFY in one statement (one round trip)."""
        rows = plan.rows
        if rows:
            columns = list(zip(*rows, strict=True))
            conn.execute(INSERT_MANY, [list(c) for c in columns] + [CHANNEL, str(plan.last_seq)])


def recorded_rows(conn: Any, command_id: str) -> list[Row] | None:
    """The rows written by the append that first recorded ``command_id``: they follow
    its ``command.accepted`` event in its stream and share its ``recorded_at``, which
    no other append has (``journal.appender``)."""
    row = conn.execute(_ACCEPTED, (command_id,)).fetchone()
    if row is None:
        return None
    rows: list[Row] = conn.execute(_STREAM_FROM, row).fetchall()
    return rows
