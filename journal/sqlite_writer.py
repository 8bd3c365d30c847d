"""The SQLite write behind ``append``: one statement, or one transaction, per batch.

The tail (last seq, hash, time) and the stream versions this process wrote are cached.
A batch of appends is first planned on that cache and written by one multi-row INSERT
(``BatchWriter._write_alone``): if another connection appended meanwhile, the INSERT
hits a ``seq`` that is taken (sequence numbers are contiguous) and nothing is written.
Then, and whenever the batch holds lease work, the batch is planned again inside
``BEGIN IMMEDIATE``, with the tail re-read if ``PRAGMA data_version`` says another
connection committed: appenders in other processes cannot interleave and fork the
chain. Outcomes are handed to callers only after the commit; if it fails, nobody has
been told anything and the caller may retry the members one by one.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleetlog.journal.appender import COMMAND_ACCEPTED, AppendRequest, BatchPlan, Row
from fleetlog.journal.base import GENESIS_HASH, Event, JournalError, JournalStats
from fleetlog.journal.clock import us_from_iso
from fleetlog.journal.groupcommit import Slot
from fleetlog.journal.leases import LeaseRow, check_fence

_COLS = ", ".join(Event.COLUMNS)
_MAX_CACHED_STREAMS = 1_000_000
_ONE_ROW = f"({', '.join('?' * len(Event.COLUMNS))})"
_INSERT = f"INSERT INTO events ({_COLS}) VALUES {_ONE_ROW}"
#: Most rows one INSERT statement carries (14 parameters each; SQLite allows 32,766).
_ROWS_PER_INSERT = 512
_TAIL = "SELECT seq, hash, recorded_at FROM events ORDER BY seq DESC LIMIT 1"
_VERSION = "SELECT max(version) FROM events WHERE stream = ?"
#: Streams whose versions one statement reads (``_prefetch_versions``).
_VERSIONS_PER_SELECT = 500
#: Fewer uncached streams than this in a batch are read one statement each, as needed.
_PREFETCH_MIN = 16
_ACCEPTED = (
    "SELECT stream, version, recorded_at FROM events "
    f"WHERE type = '{COMMAND_ACCEPTED}' AND command_id = ?"
)
_STREAM_FROM = f"SELECT {_COLS} FROM events WHERE stream = ? AND version >= ? ORDER BY version"


@dataclass(frozen=True, slots=True)
class TxnOp:
    """Work that shares a group commit's transaction without being an append: the lease
    changes. A lease taken or released on its own transaction held the write lock for
    six statements, each giving up the GIL and waiting to get it back, while a hundred
    appenders queued behind it; inside a batch it is two statements and no commit of
    its own. ``run`` gets the connection; a ``JournalError`` it raises (``LeaseHeld``)
    is its caller's outcome alone."""

    run: Callable[[sqlite3.Connection], Any]
    #: The lease it changes.
    resource: str


Request = AppendRequest | TxnOp


class BatchWriter:
    """Writes batches of append requests on one connection (the caller serialises)."""

    def __init__(self, conn: sqlite3.Connection, stats: JournalStats) -> None:
        self._conn = conn
        # One cursor reused for the per-transaction statements: conn.execute builds a
        # new cursor object each time (~0.5 µs, three or four times per append).
        self._cur = conn.cursor()
        self._stats = stats
        self._data_version: int | None = None  # what the caches below are valid for
        self._tail: tuple[int, str, int] | None = None  # (seq, hash, recorded_at µs)
        self._versions: dict[str, int] = {}

    def close(self) -> None:
        """Before the connection closes: a statement that failed (disk full) stays
        referenced by the cursor, and SQLite keeps a connection with a live statement
        open (locks held, no checkpoint) until it is finalized."""
        self._cur.close()

    def invalidate(self) -> None:
        """Forget cached state (after writing events other than through this writer)."""
        self._data_version = None
        self._tail = None
        self._versions.clear()

    def _plan(self) -> BatchPlan:
        conn = self._conn
        (data_version,) = self._cur.execute("PRAGMA data_version").fetchone()
        if data_version != self._data_version or self._tail is None:
            self.invalidate()
            row = conn.execute(_TAIL).fetchone()
            if row is None:
                self._tail = (0, GENESIS_HASH, 0)
            else:
                self._tail = (row[0], row[1], us_from_iso(row[2]))
            self._data_version = data_version
        seq, prev, last_us = self._tail
        return BatchPlan(seq, prev, last_us, self._current_version, self._recorded_append)

    def _current_version(self, stream: str) -> int:
        version = self._versions.get(stream)
        if version is None:
            (found,) = self._conn.execute(_VERSION, (stream,)).fetchone()
            version = int(found or 0)
            if len(self._versions) >= _MAX_CACHED_STREAMS:
                self._versions.clear()
            self._versions[stream] = version
        return version

    def _prefetch_versions(self, slots: list[Slot[Request]]) -> None:
        """Read the versions of the batch's streams not cached yet, 500 per statement,
        before planning: a batch of new streams (``inventory load``, thousands of
        resources) would otherwise ask for each one's version alone, a statement and a
        GIL round trip per append. The values are the ones ``_current_version`` would
        read (0 for a stream with no events); the caller's checks are unchanged: in a
        transaction they are current, and outside one (``_write_alone``) another
        connection's append since shows as a taken ``seq``."""
        cache = self._versions
        wanted = list(
            dict.fromkeys(
                r.stream
                for s in slots
                if isinstance(r := s.request, AppendRequest) and r.stream not in cache
            )
        )
        if len(wanted) < _PREFETCH_MIN:
            return
        if len(cache) + len(wanted) > _MAX_CACHED_STREAMS:
            cache.clear()
        for start in range(0, len(wanted), _VERSIONS_PER_SELECT):
            chunk = wanted[start : start + _VERSIONS_PER_SELECT]
            found = dict(self._conn.execute(_versions_select(len(chunk)), chunk).fetchall())
            for stream in chunk:
                cache[stream] = int(found.get(stream) or 0)

    def _recorded_append(self, command_id: str) -> list[Row] | None:
        row = self._conn.execute(_ACCEPTED, (command_id,)).fetchone()
        if row is None:
            return None
        # The append's events follow the command.accepted event in its stream and share
        # its recorded_at (see journal.appender); the next append has a later one.
        stream, version, at = row
        rows = []
        for r in self._conn.execute(_STREAM_FROM, (stream, version)):
            if r[10] != at:
                break
            rows.append(r)
        return rows

    def write(self, slots: list[Slot[Request]]) -> None:
        """Plan and commit ``slots``; then give every member its rows or its error."""
        if not self._write_alone(slots):
            self._write_locked(slots)

    def write_together(self, slots: list[Slot[Request]]) -> None:
        """Plan and commit ``slots`` in one transaction however many they are (no batch
        size), then give every member its rows or its error: ``append_many`` of a large
        batch, whose appends need neither group commit nor a transaction each."""
        self._write_locked(slots)

    def _write_alone(self, slots: list[Slot[Request]]) -> bool:
        """The common case in one statement: a batch of appends planned on the cached
        tail and written by one multi-row INSERT in autocommit mode (atomic, and
        committed and synced by itself). Every SQLite call made while the write lock is
        held gives up the GIL and waits to get it back, and with a hundred threads that
        wait is most of a batch's time: this path makes one call where the locked path
        makes four. False (nothing written) whenever the cache cannot be trusted to
        decide: no tail yet, lease work, a refusal computed from the cache, a batch too
        big for one statement, or another connection's append, which shows as a
        duplicate ``seq`` because sequence numbers are contiguous. The locked path then
        plans again from what is on disk.
        """
        if self._tail is None or any(
            isinstance(s.request, TxnOp) or s.request.lease_op is not None for s in slots
        ):
            return False
        self._prefetch_versions(slots)
        seq, prev, last_us = self._tail
        plan = BatchPlan(seq, prev, last_us, self._current_version, self._recorded_append)
        outcomes: list[Any] = []
        for slot in slots:
            assert isinstance(slot.request, AppendRequest)
            outcome = plan.add(slot.request)
            if isinstance(outcome, BaseException):
                return False
            outcomes.append(outcome)
        rows = plan.rows
        if not rows or len(rows) > _ROWS_PER_INSERT:
            return False
        fences = sorted(
            {
                (f.resource, f.owner, f.token)
                for s in slots
                if (f := s.request.fence) is not None  # type: ignore[union-attr]
            }
        )
        values = [v for row in rows for v in row]
        try:
            if not fences:
                self._cur.execute(_multi_insert(len(rows)), values)
            else:
                # The fences are checked by the INSERT itself (one statement, so one
                # snapshot): it writes every row while every fence holds, else none.
                params = [*values, *(v for f in fences for v in f), len(fences)]
                self._cur.execute(_fenced_insert(len(rows), len(fences)), params)
                if self._cur.rowcount != len(rows):
                    return False  # a fence fails: the locked path says whose
        except sqlite3.IntegrityError:
            self.invalidate()
            return False
        self._done(slots, plan, outcomes, len(slots))
        return True

    def _write_locked(self, slots: list[Slot[Request]]) -> None:
        """One ``BEGIN IMMEDIATE`` transaction, planned on the tail read inside it."""
        conn = self._conn
        cur = self._cur
        cur.execute("BEGIN IMMEDIATE")
        try:
            plan = self._plan()
            self._prefetch_versions(slots)
            outcomes: list[Any] = []
            appends = 0
            fences = _FenceRows(conn, slots)
            for slot in slots:
                request = slot.request
                if isinstance(request, TxnOp):
                    fences.forget(request.resource)
                    try:
                        outcomes.append(request.run(conn))
                    except JournalError as e:
                        outcomes.append(e)
                else:
                    outcomes.append(self._add(conn, plan, request, fences))
                    appends += 1
            rows = plan.rows
            for start in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[start : start + _ROWS_PER_INSERT]
                cur.execute(_multi_insert(len(chunk)), [v for row in chunk for v in row])
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._done(slots, plan, outcomes, appends)

    @staticmethod
    def _add(
        conn: sqlite3.Connection, plan: BatchPlan, request: AppendRequest, fences: _FenceRows
    ) -> Any:
        """Plan one append, running its lease work first unless it would be refused."""
        if request.fence is not None:
            refused = check_fence(request.fence, fences.row(request.fence.resource))
            if refused is not None:
                return refused
        if request.lease_op is not None:
            refusal = plan.conflict(request)
            if refusal is not None:
                return refusal
            fences.forget(request.stream)
            try:
                request.lease_op(conn)
            except JournalError as e:
                return e
        return plan.add(request)

    def _done(
        self, slots: list[Slot[Request]], plan: BatchPlan, outcomes: list[Any], appends: int
    ) -> None:
        self._remember(plan)
        stats = self._stats
        stats.commits += 1
        stats.appends += appends
        stats.events += len(plan.rows)
        for slot, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                slot.fail(outcome)
            else:
                slot.succeed(outcome)

    def write_unchecked(self, requests: list[AppendRequest]) -> int:
        """Plan and commit ``requests`` with no version or idempotency checks."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            plan = self._plan()
            for request in requests:
                plan.add(request, check=False)
            conn.executemany(_INSERT, plan.rows)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self._remember(plan)
        self._stats.commits += 1
        self._stats.events += len(plan.rows)
        return len(plan.rows)

    def _remember(self, plan: BatchPlan) -> None:
        """Adopt the committed plan's tail and versions as the cached state."""
        self._tail = (plan.last_seq, plan.last_hash, plan.last_us)
        self._versions.update(plan.versions)


@functools.lru_cache(maxsize=_ROWS_PER_INSERT)
def _multi_insert(n: int) -> str:
    return f"INSERT INTO events ({_COLS}) VALUES " + ", ".join([_ONE_ROW] * n)


@functools.lru_cache(maxsize=8)
def _versions_select(n: int) -> str:
    """The current version of each of ``n`` streams (those with events)."""
    marks = ", ".join("?" * n)
    return f"SELECT stream, max(version) FROM events WHERE stream IN ({marks}) GROUP BY stream"


@functools.lru_cache(maxsize=256)
def _fenced_insert(n: int, fences: int) -> str:
    """``n`` rows, written only if each of ``fences`` (resource, owner, token) is the
    lease as stored: the count of matching lease rows is the last parameter."""
    return (
        f"INSERT INTO events ({_COLS}) SELECT * FROM (VALUES "
        + ", ".join([_ONE_ROW] * n)
        + ") WHERE (SELECT count(*) FROM leases WHERE (resource, owner, token) IN (VALUES "
        + ", ".join(["(?, ?, ?)"] * fences)
        + ")) = ?"
    )


class _FenceRows:
    """The lease rows a locked batch's fences are checked against: read for every fenced
    request of the batch in one query (a statement per append cost the write lock a
    GIL round trip each); a row the batch's own lease work changes is read again."""

    def __init__(self, conn: sqlite3.Connection, slots: list[Slot[Request]]) -> None:
        self._conn = conn
        self._resources = sorted(
            {
                f.resource
                for s in slots
                if isinstance(s.request, AppendRequest) and (f := s.request.fence) is not None
            }
        )
        self._rows: dict[str, LeaseRow | None] | None = None

    def forget(self, resource: str) -> None:
        if self._rows is not None:
            self._rows.pop(resource, None)

    def row(self, resource: str) -> LeaseRow | None:
        if self._rows is None:
            self._rows = dict.fromkeys(self._resources)
            for start in range(0, len(self._resources), 500):
                chunk = self._resources[start : start + 500]
                query = (
                    "SELECT resource, owner, token, expires_at FROM leases "
                    f"WHERE resource IN ({', '.join('?' * len(chunk))})"
                )
                for res, owner, token, expires_at in self._conn.execute(query, chunk):
                    self._rows[res] = (owner, int(token), float(expires_at))
        if resource not in self._rows:
            self._rows[resource] = lease_row(self._conn, resource)
        return self._rows[resource]


def lease_row(conn: sqlite3.Connection, resource: str) -> LeaseRow | None:
    """The lease row of ``resource`` as stored, in the caller's transaction."""
    row = conn.execute(
        "SELECT owner, token, expires_at FROM leases WHERE resource = ?", (resource,)
    ).fetchone()
    return None if row is None else (row[0], int(row[1]), float(row[2]))
