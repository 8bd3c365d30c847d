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
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from fleetlog.journal.appender import (
    AppendRequest,
    event_from_row,
    events_from_rows,
    prepare_events,
)
from fleetlog.journal.base import (
    GENESIS_HASH,
    Event,
    Head,
    IntegrityReport,
    Journal,
    JournalError,
    JournalIntegrityError,
    Lease,
    NewEvent,
)
from fleetlog.journal.canonical import hash_row
from fleetlog.journal.chain import ChainResult, ChainStart, check_rows
from fleetlog.journal.groupcommit import GroupCommitter
from fleetlog.journal.integrity import (
    check_seal,
    checkpoint_text,
    head_mac,
    head_text,
    judge_snapshot,
    seal,
    snapshot_text,
)

# Rows per statement when reading ranges: short statements, so a slow consumer never
# holds a read transaction (SQLite: WAL checkpoints) or a connection (PostgreSQL) long.
READ_BATCH = 2000

#: Event types and payload keys ``read_all_rows`` may project to: a backend writes them
#: into its statement as literals.
_SQL_TYPE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*$")
_SQL_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

#: The table holding the verified head: one row, written after each write command.
VERIFIED_TABLE = "verified_head"
#: The table of checkpoints (whole-journal folds a reader continues from), by name.
CHECKPOINTS_TABLE = "checkpoints"
#: What to do about a snapshot that fails its checks (the events are not in question).
SNAPSHOT_HINT = (
    "(snapshots are a cache: once the events check out, "
    "`fleetlog verify --drop-snapshots` discards them)"
)


@dataclass(frozen=True, slots=True)
class VerifiedHead:
    """The verified head as stored: the chain was sound up to ``seq`` (``hash``) when
    checked at ``verified_at``, under schema ``cookie`` (SQLite), sealed by ``mac``."""

    seq: int
    hash: str
    cookie: int | None
    verified_at: str
    mac: str | None


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

    #: the state column of ``snapshots`` as its stored JSON text
    STATE_TEXT: ClassVar[str] = "state"

    @abc.abstractmethod
    def _schema_cookie(self) -> int | None:
        """A number that changes whenever the journal's schema does (SQLite's schema
        cookie: dropping the append-only triggers changes it), or None."""

    @abc.abstractmethod
    def _table_exists(self, name: str) -> bool: ...

    @abc.abstractmethod
    def _store_snapshot(self, stream: str, version: int, text: str) -> None:
        """Upsert the snapshot row (a newer version wins), creating the table if it was
        dropped."""

    @abc.abstractmethod
    def _drop_snapshots(self) -> int:
        """Delete every snapshot row; how many there were."""

    def drop_snapshots(self) -> int:
        """Discard the snapshot cache (``verify --drop-snapshots``): they are rebuilt as
        resources are folded. Allowed while writes are refused, since a snapshot that
        fails its checks is what refuses them."""
        self._policy = None
        if not self._table_exists("snapshots"):
            return 0
        return self._drop_snapshots()

    @abc.abstractmethod
    def _store_verified(self, head: Head, cookie: int | None, mac: str | None) -> bool:
        """In one write transaction: unless the schema cookie is no longer ``cookie``
        or the event at ``head.seq`` no longer has ``head.hash`` (False, nothing
        written), create the verified-head table if missing, and move the verified head
        forward to ``head``. The snapshots no seal of the kind now required covers are
        dropped: all of them when the table is made (they predate sealing), and those
        not sealed with the key when a ``mac`` first replaces none."""

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

    def append_many(
        self,
        appends: Sequence[tuple[str, Sequence[NewEvent]]],
        expected_versions: Sequence[int | None] | None = None,
        *,
        returning: bool = True,
    ) -> list[list[Event]]:
        self._writable()
        versions = [None] * len(appends) if expected_versions is None else expected_versions
        if len(versions) != len(appends):
            raise JournalError("append_many: one expected version per append")
        requests: list[AppendRequest] = []
        for (stream, events), expected in zip(appends, versions, strict=True):
            if not isinstance(stream, str) or not stream:
                raise JournalError("stream must be a non-empty string")
            requests.append(
                AppendRequest(stream, prepare_events(events, self.actor, self.host), expected)
            )
        outcomes = self._write_many([r for r in requests if r.events])
        first_error = next((o for o in outcomes if isinstance(o, JournalError)), None)
        if first_error is not None:
            raise first_error
        if not returning:
            return []
        written = iter(outcomes)
        return [events_from_rows(next(written)) if r.events else [] for r in requests]

    def _write_many(self, requests: list[AppendRequest]) -> list[Any]:
        """Write ``requests``, each all-or-nothing and decided on its own: each one's
        stored rows, or the ``JournalError`` that is its outcome. Through the group
        commit, in as few transactions as its batch size allows."""
        slots = self._committer.submit_many(requests)
        outcomes: list[Any] = []
        for slot in slots:
            try:
                outcomes.append(self._committer.collect(slot))
            except JournalError as exc:
                outcomes.append(exc)
        return outcomes

    def append_batch_unchecked(
        self, appends: Iterable[tuple[str, Sequence[NewEvent]]], chunk: int = 20_000
    ) -> int:
        """Append many (stream, events) pairs in large transactions, for fixtures and
        benchmarks: versions, chain and timestamps are assigned as by ``append``, but
        there is no expected-version check, no idempotency and no group commit.
        Returns the number of events written."""
        self._writable()
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
        project: Mapping[str, Sequence[str]] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """``read_all`` without building ``Event`` objects: tuples of ``columns`` (default
        ``Event.COLUMNS``) with the payload left as its canonical JSON text (or, for the
        types in ``project``, the JSON object of just those keys: ``Journal``), for folds
        over the whole journal that cannot afford an object per event. ``seq`` must come
        first when columns are chosen, since batches continue from the last seq."""
        unknown = [c for c in columns if c not in Event.COLUMNS]
        if unknown or not columns or columns[0] != "seq":
            raise JournalError(f"read_all_rows columns must start with seq; bad: {unknown}")
        selected = self._columns(columns)
        for type_, keys in (project or {}).items():
            if not _SQL_TYPE.match(type_) or not all(_SQL_KEY.match(k) for k in keys):
                raise JournalError(f"cannot project {type_!r} payloads to keys {list(keys)}")
        payload = self._projected(project) if project else None
        if payload is not None:
            selected = ", ".join(payload if c == "payload" else c for c in columns)
        for rows in self._batches(from_seq, to_seq, types, selected):
            yield from rows

    def _projected(self, project: Mapping[str, Sequence[str]]) -> str | None:
        """The payload column as an SQL expression that keeps only ``project[type]``'s
        keys of those types' payloads, or None where the backend does not (whole
        payloads are always a correct answer)."""
        return None

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

    def get_leases(self, resources: Sequence[str]) -> dict[str, Lease]:
        found: dict[str, Lease] = {}
        wanted = list(dict.fromkeys(resources))
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ", ".join([self.P] * len(chunk))
            for resource, owner, token, expires_at in self._query(
                "SELECT resource, owner, token, expires_at FROM leases "
                f"WHERE resource IN ({marks}) AND owner IS NOT NULL",
                chunk,
            ):
                found[resource] = Lease(resource, owner, int(token), float(expires_at))
        return found

    # -- integrity -----------------------------------------------------------------------
    def tail(self) -> Head:
        rows = self._query("SELECT seq, hash FROM events ORDER BY seq DESC LIMIT 1")
        return Head(int(rows[0][0]), rows[0][1]) if rows else Head(0, GENESIS_HASH)

    def _row_at(self, seq: int) -> tuple[Any, ...] | None:
        rows = self._query(f"{self.SELECT} WHERE seq = {self.P}", (seq,))
        return tuple(rows[0]) if rows else None

    def _version_before(self, stream: str, before_seq: int) -> int:
        rows = self._query(
            f"SELECT version FROM events WHERE stream = {self.P} AND seq <= {self.P} "
            "ORDER BY version DESC LIMIT 1",
            (stream, before_seq),
        )
        return int(rows[0][0]) if rows else 0

    def _verified_head(self) -> VerifiedHead | None:
        if not self._table_exists(VERIFIED_TABLE):
            return None
        rows = self._query(
            f"SELECT seq, hash, cookie, verified_at, mac FROM {VERIFIED_TABLE} WHERE id = 1"
        )
        if not rows:
            return None
        seq, hash_, cookie, at, mac = rows[0]
        return VerifiedHead(int(seq), hash_, None if cookie is None else int(cookie), at, mac)

    def _walk(self, start: ChainStart | None) -> ChainResult:
        """The chain after ``start`` (from genesis when None), in short batches."""
        return check_rows(self.read_all_rows(from_seq=start.seq if start else 0), start)

    def check_integrity(
        self, witnessed: Sequence[Head] = (), sound: Head | None = None
    ) -> IntegrityReport:
        cookie = self._schema_cookie()
        verified = self._verified_head()
        key = self.chain_key

        def broken(bad: int | None, reason: str, full: bool = False) -> IntegrityReport:
            return IntegrityReport(False, self.tail(), 0, bad, reason, full, cookie)

        start: ChainStart | None = None
        sealed: bool | None = None  # is the verified head sealed with the key given
        if verified is not None:
            if key is not None:
                sealed = verified.mac is not None and bool(
                    check_seal(head_text(verified.seq, verified.hash), verified.mac, key)
                )
            row = self._row_at(verified.seq) if verified.seq else None
            tail = self.tail()
            if tail.seq < verified.seq:
                return broken(
                    tail.seq + 1,
                    f"the journal ends at seq {tail.seq}, but it held seq {verified.seq} "
                    f"when it was verified ({verified.verified_at}): events were removed "
                    "from its tail",
                )
            if verified.seq and row is None:
                return broken(
                    verified.seq,
                    f"seq {verified.seq}, verified {verified.verified_at}, is missing",
                )
            if row is not None and row[13] != verified.hash:
                return broken(
                    verified.seq,
                    f"seq {verified.seq} no longer has the hash it had when it was verified "
                    f"({verified.verified_at}): the history up to it was rewritten",
                )
            if row is not None and hash_row(*row[:13]) != row[13]:
                return broken(verified.seq, "hash mismatch: the event's content was altered")
            same_schema = cookie is None or cookie == verified.cookie
            if same_schema and sealed is not False and row is not None:
                start = ChainStart(verified.seq, verified.hash, row[10], self._version_before)
        if sound is not None and sound.seq and (start is None or sound.seq > start.seq):
            row = self._row_at(sound.seq)
            if row is None or row[13] != sound.hash:
                return broken(sound.seq, f"seq {sound.seq} changed while it was checked")
            start = ChainStart(sound.seq, sound.hash, row[10], self._version_before)
        result = self._walk(start)
        full = start is None
        if not result.ok:
            return IntegrityReport(
                False,
                Head(result.last_seq, result.last_hash),
                result.events,
                result.first_bad_seq,
                result.reason,
                full,
                cookie,
            )
        head = Head(result.last_seq, result.last_hash)
        if key is not None and verified is not None and verified.mac is not None and not sealed:
            reason = (
                f"the seal of the verified head (seq {verified.seq}) does not match the chain "
                "key: it was forged, or the key is not this journal's"
            )
            return IntegrityReport(False, head, result.events, verified.seq, reason, full, cookie)
        problem = self._snapshot_problem(self._snapshot_policy(verified))
        if problem is not None:
            problem = (problem[0], f"{problem[1]} {SNAPSHOT_HINT}")
        else:
            problem = self._witness_problem(head, witnessed)
        if problem is not None:
            return IntegrityReport(False, head, result.events, problem[0], problem[1], full, cookie)
        if key is not None and head.seq and not sealed:
            reason = (
                "the journal's verified head is not sealed with the chain key; if this "
                "journal was never used with a key, check and seal it once with "
                "`fleetlog verify --seal`"
            )
            return IntegrityReport(
                False, head, result.events, head.seq, reason, full, cookie, unsealed=True
            )
        keyed = verified is not None and verified.mac is not None
        return IntegrityReport(True, head, result.events, full=full, cookie=cookie, keyed=keyed)

    def seal(self, since: IntegrityReport, witnessed: Sequence[Head] = ()) -> IntegrityReport:
        if not since.ok and not since.unsealed:
            raise since.error()
        start = None
        if since.head.seq:
            row = self._row_at(since.head.seq)
            if row is None or row[13] != since.head.hash:
                return IntegrityReport(
                    False,
                    since.head,
                    since.checked,
                    since.head.seq,
                    f"seq {since.head.seq} changed while this command ran",
                    cookie=since.cookie,
                )
            start = ChainStart(since.head.seq, since.head.hash, row[10], self._version_before)
        result = self._walk(start)
        head = Head(result.last_seq, result.last_hash)
        checked = since.checked + result.events
        if not result.ok:
            return IntegrityReport(
                False, head, checked, result.first_bad_seq, result.reason, cookie=since.cookie
            )
        problem = self._witness_problem(head, witnessed)
        if problem is not None:
            return IntegrityReport(
                False, head, checked, problem[0], problem[1], cookie=since.cookie
            )
        if self.chain_key is None and head.seq:
            verified = self._verified_head()
            if verified is not None and verified.mac is not None:
                return IntegrityReport(
                    False,
                    head,
                    checked,
                    head.seq,
                    "the journal's verified head is sealed with a chain key, and none is "
                    "given (FLEETLOG_CHAIN_KEY or FLEETLOG_CHAIN_KEY_FILE): it stays where "
                    "it is",
                    cookie=since.cookie,
                )
        mac = None if self.chain_key is None else head_mac(self.chain_key, head.seq, head.hash)
        try:
            self._store_verified(head, since.cookie, mac)
        except JournalIntegrityError:
            raise
        except JournalError:
            # Disk full, read-only media...: the head is sound but not kept, and the next
            # command checks from the verified head before it. The command's own error,
            # if it had one, already says what the environment refused.
            pass
        return IntegrityReport(True, head, checked, cookie=since.cookie)

    def _witness_problem(self, head: Head, witnessed: Sequence[Head]) -> tuple[int, str] | None:
        """The first witnessed head the journal (sound up to ``head``) contradicts."""
        ahead = [w for w in witnessed if w.seq > head.seq]
        if ahead:
            w = max(ahead, key=lambda h: h.seq)
            return (
                head.seq + 1,
                f"the witness recorded seq {w.seq} (hash {w.hash[:12]}…), but the journal "
                f"ends at seq {head.seq}: events were removed from its tail",
            )
        wanted = sorted((w for w in witnessed if w.seq > 0), key=lambda h: h.seq)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            seqs = sorted({w.seq for w in chunk})
            marks = ", ".join([self.P] * len(seqs))
            held = dict(self._query(f"SELECT seq, hash FROM events WHERE seq IN ({marks})", seqs))
            for w in chunk:
                found = held.get(w.seq)
                if found != w.hash:
                    now = "no event there" if found is None else f"hash {found[:12]}…"
                    return (
                        w.seq,
                        f"the witness recorded seq {w.seq} with hash {w.hash[:12]}…, the "
                        f"journal has {now}: its history was rewritten",
                    )
        return None

    # -- snapshots -----------------------------------------------------------------------
    def _cached_snapshots(self, stream: str | None = None) -> list[Any]:
        """(stream, version, state text, seq, hash) of each snapshot, or of ``stream``'s;
        seq and hash are the journal's event at the snapshot's version (None if none)."""
        if not self._table_exists("snapshots"):
            return []
        sql = (
            f"SELECT s.stream, s.version, s.{self.STATE_TEXT}, e.seq, e.hash FROM snapshots s "
            "LEFT JOIN events e ON e.stream = s.stream AND e.version = s.version"
        )
        if stream is None:
            return self._query(sql + " ORDER BY s.stream")
        return self._query(sql + f" WHERE s.stream = {self.P}", (stream,))

    def _snapshot_policy(self, verified: VerifiedHead | None) -> tuple[bool, bool]:
        """(upgraded, keyed): a head was ever verified, so every snapshot kept since is
        sealed; and that head carries a chain-key seal, so with the key given every
        snapshot kept since is sealed with it (``_store_verified`` drops the others)."""
        return verified is not None, verified is not None and verified.mac is not None

    def _judge(
        self, row: Sequence[Any], policy: tuple[bool, bool]
    ) -> tuple[Any, tuple[int | None, str] | None]:
        stream, version, text, seq, hash_ = row
        event = None if seq is None else (int(seq), hash_)
        verdict = judge_snapshot(stream, int(version), text, event, self.chain_key)
        if verdict.problem is not None:
            return None, (verdict.seq, verdict.problem)
        upgraded, keyed = policy
        at = None if event is None else event[0]
        if verdict.unsealed and upgraded:
            return None, (
                at,
                f"the snapshot of {stream} (version {version}) carries no seal: it was not "
                "written by this fleetlog",
            )
        if verdict.other_seal and keyed and self.chain_key is not None:
            return None, (
                at,
                f"the snapshot of {stream} (version {version}) is not sealed with the chain "
                "key: it was not written by this fleetlog",
            )
        return verdict.state, None

    def _snapshot_problem(self, policy: tuple[bool, bool]) -> tuple[int | None, str] | None:
        for row in self._cached_snapshots():
            _state, problem = self._judge(row, policy)
            if problem is not None:
                return problem
        return None

    def snapshot_streams(self) -> list[tuple[str, int, int]]:
        return [
            (row[0], int(row[1]), int(row[3]))
            for row in self._cached_snapshots()
            if row[3] is not None
        ]

    def get_snapshot(self, stream: str) -> tuple[int, dict[str, Any]] | None:
        try:
            rows = self._cached_snapshots(stream)
        except JournalError:
            return None  # the cache is unreadable: fold from the events
        if not rows:
            return None
        if self._policy is None:
            self._policy = self._snapshot_policy(self._verified_head())
        state, problem = self._judge(rows[0], self._policy)
        if problem is not None:
            self.snapshot_problems.append(problem)
            return None
        if state is None:
            return None
        return int(rows[0][1]), state

    #: ``_snapshot_policy`` as read by the first ``get_snapshot``
    _policy: tuple[bool, bool] | None = None

    def get_checkpoint(self, name: str) -> tuple[int, str] | None:
        if not self._table_exists(CHECKPOINTS_TABLE):
            return None
        try:
            rows = self._query(
                f"SELECT c.seq, c.hash, c.state, c.seal, e.hash FROM {CHECKPOINTS_TABLE} c "
                f"LEFT JOIN events e ON e.seq = c.seq WHERE c.name = {self.P}",
                (name,),
            )
        except JournalError:
            return None  # the cache is unreadable: fold from the start
        if not rows:
            return None
        seq, hash_, text, sealed, held = rows[0]
        seq = int(seq)
        if held != hash_:
            there = "no event" if held is None else f"hash {str(held)[:12]}…"
            problem = (
                f"the checkpoint {name} names seq {seq} hash {str(hash_)[:12]}…, but the "
                f"journal has {there} there"
            )
            self.snapshot_problems.append((seq, problem))
            return None
        verdict = check_seal(checkpoint_text(name, seq, hash_, text), sealed, self.chain_key)
        if verdict is None:
            return None  # sealed the other way (a key given or not): kept again by a writer
        if not verdict:
            problem = f"the checkpoint {name} does not match its seal: its state was altered"
            self.snapshot_problems.append((seq, problem))
            return None
        return seq, str(text)

    def checkpoint_seq(self, name: str) -> int | None:
        if not self._table_exists(CHECKPOINTS_TABLE):
            return None
        rows = self._query(f"SELECT seq FROM {CHECKPOINTS_TABLE} WHERE name = {self.P}", (name,))
        return int(rows[0][0]) if rows else None

    def put_checkpoint(self, name: str, seq: int, state_text: str) -> None:
        if self._refusal is not None:
            return  # a cache: not kept while the journal is not trusted
        rows = self._query(f"SELECT hash FROM events WHERE seq = {self.P}", (seq,))
        if not rows:
            raise JournalError(f"cannot keep checkpoint {name} at seq {seq}: no such event")
        hash_ = rows[0][0]
        sealed = seal(checkpoint_text(name, seq, hash_, state_text), self.chain_key)
        self._store_checkpoint(name, seq, hash_, state_text, sealed)

    def _store_checkpoint(
        self, name: str, seq: int, hash_: str, state_text: str, sealed: str
    ) -> None:
        """Upsert the checkpoint row (a later seq wins). A backend that keeps no
        checkpoints does nothing (its ``keeps_checkpoints`` is False, so no writer folds
        for it)."""

    def put_snapshot(self, stream: str, version: int, state: dict[str, Any]) -> None:
        if self._refusal is not None:
            return  # a cache: not kept while the journal is not trusted
        rows = self._query(
            f"SELECT seq, hash FROM events WHERE stream = {self.P} AND version = {self.P}",
            (stream, version),
        )
        if not rows:
            raise JournalError(f"cannot snapshot {stream} at version {version}: no such event")
        seq, hash_ = int(rows[0][0]), rows[0][1]
        self._store_snapshot(
            stream, version, snapshot_text(stream, version, seq, hash_, state, self.chain_key)
        )
