"""The SQLite write transaction behind ``append``: one ``BEGIN IMMEDIATE`` per batch.

The tail (last seq, hash, time) is read after ``BEGIN IMMEDIATE`` has taken the write
lock, so appenders in other processes cannot interleave and fork the chain. The tail
and stream versions this process wrote are cached and reused as long as
``PRAGMA data_version`` (read inside the transaction) says no other connection has
committed since: that saves a query per stream on the hot path and stays right with
writers in other processes. Outcomes
are handed to callers only after ``COMMIT`` succeeds; if the transaction fails, nobody
has been told anything and the caller may retry the members one by one.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from journal.appender import COMMAND_ACCEPTED, AppendRequest, BatchPlan, Row
from journal.base import GENESIS_HASH, Event, JournalError, JournalStats
from journal.clock import us_from_iso
from journal.groupcommit import Slot

_COLS = ", ".join(Event.COLUMNS)
_MAX_CACHED_STREAMS = 100_000
_INSERT = f"INSERT INTO events ({_COLS}) VALUES ({', '.join('?' * len(Event.COLUMNS))})"
_TAIL = "SELECT seq, hash, recorded_at FROM events ORDER BY seq DESC LIMIT 1"
_VERSION = "SELECT max(version) FROM events WHERE stream = ?"
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
        conn = self._conn
        cur = self._cur
        cur.execute("BEGIN IMMEDIATE")
        try:
            plan = self._plan()
            outcomes: list[Any] = []
            appends = 0
            for slot in slots:
                request = slot.request
                if isinstance(request, TxnOp):
                    try:
                        outcomes.append(request.run(conn))
                    except JournalError as e:
                        outcomes.append(e)
                else:
                    outcomes.append(plan.add(request))
                    appends += 1
            rows = plan.rows
            if len(rows) == 1:
                cur.execute(_INSERT, rows[0])
            elif rows:
                cur.executemany(_INSERT, rows)
            cur.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
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
