"""Making appends durable outside the append lock, many at a time: the shared flush.

``fleetlog_append`` commits without waiting for its WAL to reach the disk, so the
journal's lock is free as soon as the rows are visible (``append_fn``). Before an append
is reported written, its caller waits here for a flush that began after its commit: a
``BARRIER`` statement, group-committed (``journal.groupcommit``) so the callers queued
meanwhile share one fsync. While one batch of a process waits for its flush, the next
batch is already being appended: a process's throughput is set by the slower of the two
stages, not by their sum.

A flush that loses its connection cannot tell whether the server went down before the
appends it covers reached the disk (a crash, not a clean restart, loses them): once
reconnected it looks for each member's first event id, and a member whose events are
gone is told so (``Vanished``), to be appended again.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fleetlog.journal.base import JournalError
from fleetlog.journal.groupcommit import GroupCommitter, Slot
from fleetlog.journal.postgres.reconnect import Reconnector, is_disconnect
from fleetlog.journal.postgres.writer import BARRIER, PgRequest

_PRESENT = "SELECT event_id FROM events WHERE event_id = ANY(%s)"


class Vanished(JournalError):
    """An append committed without its flush, and lost with the server: append again."""

    msg_fmt = "the append to %(stream)s was lost with the database server; appending again"


class Flusher:
    """Waits, for many callers at once, until their committed appends are durable."""

    def __init__(self, pool: Any, reconnect: Reconnector) -> None:
        self._pool = pool
        self._reconnect = reconnect
        self._committer: GroupCommitter[PgRequest] = GroupCommitter(self._flush)

    @property
    def idle(self) -> bool:
        """No flush running or queued (read without the lock: either answer is safe,
        it only decides who sends the flush)."""
        return self._committer.idle

    def wait(self, request: PgRequest) -> None:
        """Return once ``request`` (appended and committed) is on disk; ``Vanished`` if
        it was lost instead."""
        self._committer.submit(request)

    def _flush(self, slots: list[Slot[PgRequest]]) -> None:
        lost = False

        def attempt() -> None:
            nonlocal lost
            with self._pool.connection() as conn:
                if lost:
                    _mark_vanished(conn, slots)
                try:
                    conn.execute(BARRIER)
                except psycopg.Error as e:
                    if is_disconnect(e):
                        lost = True
                    raise

        self._reconnect.run("flushing appends", attempt)
        for slot in slots:
            if not slot.done:
                slot.succeed(None)


def _mark_vanished(conn: Any, slots: list[Slot[PgRequest]]) -> None:
    firsts = [s.request.event_ids[0] for s in slots if s.request.event_ids and not s.done]
    present = {row[0] for row in conn.execute(_PRESENT, (firsts,)).fetchall()}
    for slot in slots:
        ids = slot.request.event_ids
        if ids and not slot.done and ids[0] not in present:
            slot.fail(Vanished(stream=slot.request.append.stream))
