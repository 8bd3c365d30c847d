"""What the SQL journals share: the read statements (events and leases) and the
batched appends (``append_many``, ``append_batch_unchecked``).

SQLite and PostgreSQL hold the same ``events`` table and answer the same questions with
the same statements. They differ only in the parameter marker (``?`` / ``%s``), in how
the payload column reads back as its canonical JSON text (PostgreSQL's ``json`` column
needs ``::text``), in how "type is one of these" is written, and in what a few
questions are best answered by (``streams``, ``seq_at_time``, which stay with each
backend). Both group-commit appends through a ``GroupCommitter``. Keeping the rest here
means a fix lands on both backends at once, and the contract suite checks it on both.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, ClassVar

from fleetlog.journal.appender import (
    AppendRequest,
    event_from_row,
    events_from_rows,
    prepare_events,
)
from fleetlog.journal.base import Event, Journal, JournalError, Lease, NewEvent
from fleetlog.journal.groupcommit import GroupCommitter

# Rows per statement when reading ranges: short statements, so a slow consumer never
# holds a read transaction (SQLite: WAL checkpoints) or a connection (PostgreSQL) long.
READ_BATCH = 2000


class SQLJournal(Journal):
    """A journal over one SQL ``events`` table: its reads and its batched appends."""

    #: the driver's parameter marker
    P: ClassVar[str]
    #: the payload column as its stored JSON text
    PAYLOAD_TEXT: ClassVar[str]
    actor: str
    host: str

    @abc.abstractmethod
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """Rows of one read statement; driver errors become ``JournalError``."""

    @abc.abstractmethod
    def _bulk(self, requests: list[AppendRequest]) -> int:
        """Write requests in one transaction without checks; the number of events."""

    @abc.abstractmethod
    def _types_clause(self, types: Sequence[str]) -> tuple[str, list[Any]]:
        """A ``type`` condition matching any of ``types``, with its parameters."""

    #: ``SELECT <every column> FROM events``, set for each backend class
    SELECT: ClassVar[str]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "PAYLOAD_TEXT" in cls.__dict__:
            cls.SELECT = f"SELECT {cls._columns()} FROM events"

    @classmethod
    def _columns(cls, columns: Sequence[str] = Event.COLUMNS) -> str:
        return ", ".join(cls.PAYLOAD_TEXT if c == "payload" else c for c in columns)

    # -- writing -------------------------------------------------------------------------
    _committer: GroupCommitter[Any]

    def append_many(self, appends: Sequence[tuple[str, Sequence[NewEvent]]]) -> list[list[Event]]:
        requests: list[AppendRequest] = []
        for stream, events in appends:
            if not isinstance(stream, str) or not stream:
                raise JournalError("stream must be a non-empty string")
            requests.append(
                AppendRequest(stream, prepare_events(events, self.actor, self.host), None)
            )
        slots = self._committer.submit_many([r for r in requests if r.events])
        outcomes: list[Any] = []
        for slot in slots:
            try:
                outcomes.append(events_from_rows(self._committer.collect(slot)))
            except JournalError as exc:
                outcomes.append(exc)
        first_error = next((o for o in outcomes if isinstance(o, JournalError)), None)
        if first_error is not None:
            raise first_error
        written = iter(outcomes)
        return [next(written) if r.events else [] for r in requests]

    def append_batch_unchecked(
        self, appends: Iterable[tuple[str, Sequence[NewEvent]]], chunk: int = 20_000
    ) -> int:
        """Append many (stream, events) pairs in large transactions, for fixtures and
        benchmarks: versions, chain and timestamps are assigned as by ``append``, but
        there is no expected-version check, no idempotency and no group commit.
        Returns the number of events written."""
        written = 0
        pending: list[AppendRequest] = []
        for stream, events in appends:
            pending.append(
                AppendRequest(stream, prepare_events(events, self.actor, self.host), None)
            )
            if len(pending) >= chunk:
                written += self._bulk(pending)
                pending = []
        if pending:
            written += self._bulk(pending)
        return written

    # -- reading -------------------------------------------------------------------------
    def read_stream(
        self, stream: str, from_version: int = 1, to_seq: int | None = None
    ) -> list[Event]:
        p = self.P
        sql = f"{self.SELECT} WHERE stream = {p} AND version >= {p}"
        params: tuple[Any, ...] = (stream, from_version)
        if to_seq is not None:
            sql += f" AND seq <= {p}"
            params += (to_seq,)
        return [event_from_row(r) for r in self._query(sql + " ORDER BY version", params)]

    def read_all(
        self,
        from_seq: int = 0,
        to_seq: int | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[Event]:
        for rows in self._batches(from_seq, to_seq, types, self._columns()):
            for r in rows:
                yield event_from_row(r)

    def read_all_rows(
        self,
        from_seq: int = 0,
        to_seq: int | None = None,
        types: Sequence[str] | None = None,
        columns: Sequence[str] = Event.COLUMNS,
    ) -> Iterator[tuple[Any, ...]]:
        """``read_all`` without building ``Event`` objects: tuples of ``columns`` (default
        ``Event.COLUMNS``) with the payload left as its canonical JSON text, for folds
        over the whole journal that cannot afford an object per event. ``seq`` must come
        first when columns are chosen, since batches continue from the last seq."""
        unknown = [c for c in columns if c not in Event.COLUMNS]
        if unknown or not columns or columns[0] != "seq":
            raise JournalError(f"read_all_rows columns must start with seq; bad: {unknown}")
        for rows in self._batches(from_seq, to_seq, types, self._columns(columns)):
            yield from rows

    def _batches(
        self, from_seq: int, to_seq: int | None, types: Sequence[str] | None, columns: str
    ) -> Iterator[list[Any]]:
        """Fetch in seq ranges, one short statement each. Appends commit in seq order, so
        no seq below the last one read can appear later."""
        p = self.P
        where = f"seq > {p}"
        extra: list[Any] = []
        if to_seq is not None:
            where += f" AND seq <= {p}"
            extra.append(to_seq)
        if types:
            clause, values = self._types_clause(types)
            where += f" AND {clause}"
            extra.extend(values)
        sql = f"SELECT {columns} FROM events WHERE {where} ORDER BY seq LIMIT {READ_BATCH}"
        last = from_seq
        while True:
            rows = self._query(sql, (last, *extra))
            if not rows:
                return
            yield rows
            if len(rows) < READ_BATCH:
                return
            last = rows[-1][0]

    def head(self) -> int:
        return int(self._query("SELECT coalesce(max(seq), 0) FROM events")[0][0])

    def stream_version(self, stream: str) -> int:
        rows = self._query(
            f"SELECT coalesce(max(version), 0) FROM events WHERE stream = {self.P}", (stream,)
        )
        return int(rows[0][0])

    def stream_heads(self, to_seq: int | None = None) -> dict[str, int]:
        sql = "SELECT stream, max(version) FROM events"
        params: tuple[Any, ...] = ()
        if to_seq is not None:
            sql += f" WHERE seq <= {self.P}"
            params = (to_seq,)
        rows = self._query(sql + " GROUP BY stream", params)
        return {stream: int(version) for stream, version in rows}

    def events_for_command(self, command_id: str) -> list[Event]:
        rows = self._query(f"{self.SELECT} WHERE command_id = {self.P} ORDER BY seq", (command_id,))
        return [event_from_row(r) for r in rows]

    def get_lease(self, resource: str) -> Lease | None:
        rows = self._query(
            "SELECT owner, token, expires_at FROM leases "
            f"WHERE resource = {self.P} AND owner IS NOT NULL",
            (resource,),
        )
        if not rows:
            return None
        owner, token, expires_at = rows[0]
        return Lease(resource, owner, int(token), float(expires_at))
