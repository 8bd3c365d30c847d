"""The journal in PostgreSQL: shared by processes on many hosts, through psycopg 3.

The same contract and the same rows as the SQLite journal (``journal.base``): versions,
timestamps and hashes are planned by ``journal.appender`` and checked by
``journal.chain``, so an export from one backend imports into the other with every hash
intact. What differs is only how a write is serialised (an advisory lock taken inside
the transaction, ``journal.postgres.writer``), how waiting for new events works
(``LISTEN fleetlog_events`` instead of polling), and which clock judges leases (the
database's, so hosts with skewed clocks agree on when a lease expired).

Connections come from a ``psycopg_pool.ConnectionPool`` in autocommit mode. Appends from
threads are group-committed as in SQLite, and a batch is one call of the server-side
``fleetlog_append`` (one round trip, ``journal.postgres.writer``), which also takes or
releases a lease with the append that records it (``LeaseAppending``). A lost
connection (a restart, a killed backend) is retried with back-off and reported once
(``journal.postgres.reconnect``). Driver errors are converted here, at the boundary,
into ``JournalError`` and its subclasses.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import IO, Any

import psycopg
import psycopg_pool
from psycopg import errors as pg_errors

from fleetlog.journal.appender import AppendRequest, events_from_rows, prepare_events
from fleetlog.journal.base import (
    ConcurrencyConflict,
    Event,
    Fence,
    Head,
    JournalError,
    JournalIntegrityError,
    JournalStats,
    Lease,
    LeaseAppending,
    NewEvent,
    NotAJournal,
    VerifyReport,
    fence_of,
)
from fleetlog.journal.chain import check_rows
from fleetlog.journal.clock import iso_from_us, now_us, us_from_iso
from fleetlog.journal.groupcommit import GroupCommitter, Slot
from fleetlog.journal.identity import default_actor, default_host
from fleetlog.journal.jsonl import check_file_chain, export_line, parse_lines, rewindable
from fleetlog.journal.leases import LeaseRow, decide_acquire, decide_renew
from fleetlog.journal.postgres import schema
from fleetlog.journal.postgres.conninfo import first_line, redacted, split_url
from fleetlog.journal.postgres.flusher import Flusher, Vanished
from fleetlog.journal.postgres.leases import lease_change
from fleetlog.journal.postgres.reconnect import Reconnector, is_disconnect
from fleetlog.journal.postgres.writer import CHANNEL, PgBatchWriter, PgRequest, Take, resolve
from fleetlog.journal.sql_journal import CHECKPOINTS_TABLE, VERIFIED_TABLE, SQLJournal

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class PostgresJournal(SQLJournal, LeaseAppending):
    """The journal in one PostgreSQL schema. Thread-safe; shared by processes and hosts.

    ``schema`` (or ``?schema=NAME`` in the URL) names the PostgreSQL schema holding the
    journal, created if missing; by default the first schema of the search_path
    (normally ``public``). ``pool_size`` bounds this process's connections.
    """

    P = "%s"
    PAYLOAD_TEXT = "payload::text"

    def __init__(
        self,
        url: str,
        *,
        schema: str | None = None,
        actor: str | None = None,
        host: str | None = None,
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        max_batch: int = 512,
    ) -> None:
        self.url = url
        conninfo, url_schema = split_url(url)
        schema = schema or url_schema
        if schema is not None and not _IDENTIFIER.fullmatch(schema):
            raise JournalError(
                f"schema must be a plain identifier ([A-Za-z_][A-Za-z0-9_]*), not {schema!r}"
            )
        self.where = redacted(url)
        self.actor = actor or default_actor()
        self.host = host or default_host()
        self.stats = JournalStats()
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, int(connect_timeout)),
        }
        if schema is not None:
            kwargs["options"] = f'-c search_path="{schema}"'  # quoted: keeps its case
        if "application_name=" not in conninfo:
            # Shows in pg_stat_activity: which connections are fleetlog's (a URL may
            # name its own, e.g. per host).
            kwargs["application_name"] = "fleetlog"
        self._conninfo = conninfo
        self._kwargs = kwargs
        self.schema = self._prepare(schema)
        self._writer = PgBatchWriter(schema_lock_key(self.schema), self.stats)
        # Requests are ``PgRequest``; ``append_many`` (shared code) queues plain
        # ``AppendRequest``s, which ``_write_slots`` wraps.
        self._committer: GroupCommitter[Any] = GroupCommitter(
            self._write_slots, max_batch=max_batch
        )
        self._pool: psycopg_pool.ConnectionPool[Any] = psycopg_pool.ConnectionPool(
            conninfo,
            kwargs=kwargs,
            min_size=1,
            max_size=max(1, pool_size),
            open=False,
            name=f"fleetlog-{self.schema}",
            timeout=60.0,
        )
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except psycopg_pool.PoolTimeout as e:
            self._pool.close()
            raise JournalError(f"cannot connect to journal {self.where}: {e}") from e
        self._reconnect = Reconnector(self.where, on_lost=self._pool.check)
        self._flusher = Flusher(self._pool, self._reconnect)
        self._listeners: set[psycopg.Connection[Any]] = set()
        self._listeners_lock = threading.Lock()
        self._waiter: psycopg.Connection[Any] | None = None
        self._waiter_lock = threading.Lock()
        #: Tables found to exist (``_table_exists``), forgotten when a query misses one.
        self._tables_seen: set[str] = set()

    # -- connections ---------------------------------------------------------------------
    def _connect(self) -> psycopg.Connection[Any]:
        try:
            return psycopg.connect(self._conninfo, **self._kwargs)
        except psycopg.Error as e:
            raise JournalError(f"cannot connect to journal {self.where}: {first_line(e)}") from e

    def _prepare(self, wanted: str | None) -> str:
        with self._connect() as conn:
            try:
                if wanted is not None:
                    conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{wanted}"')
                (current,) = conn.execute("SELECT current_schema()").fetchone() or (None,)
                if current is None:
                    raise NotAJournal(
                        path=self.where,
                        reason="no schema of the search_path exists (create it, or add "
                        "?schema=NAME to the URL)",
                    )
                schema.prepare(conn, current, f"{self.where} (schema {current})")
            except psycopg.Error as e:
                raise NotAJournal(path=self.where, reason=first_line(e)) from e
        return str(current)

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[Any]:
        if self.closed:
            raise JournalError(f"journal {self.where} is closed")

        def query() -> list[Any]:
            with self._pool.connection() as conn:
                rows: list[Any] = conn.execute(sql, params).fetchall()
                return rows

        try:
            return self._reconnect.run("reading", query)
        except pg_errors.UndefinedTable as e:
            self._tables_seen.clear()
            raise JournalError(f"reading journal {self.where} failed: {first_line(e)}") from e
        except psycopg.Error as e:
            raise JournalError(f"reading journal {self.where} failed: {first_line(e)}") from e
        except psycopg_pool.PoolTimeout as e:
            raise JournalError(f"journal {self.where}: no connection available ({e})") from e

    # -- writing -------------------------------------------------------------------------
    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> list[Event]:
        if self.closed:
            raise JournalError(f"journal {self.where} is closed")
        self._writable()
        if not isinstance(stream, str) or not stream:
            raise JournalError("stream must be a non-empty string")
        return self._submit(stream, events, expected_version, fence)

    def _submit(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        fence: Fence | None,
        take: Take | None = None,
        release: bool = False,
    ) -> list[Event]:
        if not events and take is None and not release:
            return []
        request = AppendRequest(
            stream, prepare_events(events, self.actor, self.host), expected_version, fence=fence
        )
        while True:
            # While a shared flush is running, this append waits for the next one (its
            # batch is written meanwhile); with none running, nothing would share it, so
            # the batch is flushed in the same round trip as its call.
            shared = not self._flusher.idle
            pg_request = PgRequest.of(request, take, release, caller_flushes=shared)
            rows = self._committer.submit(pg_request)
            if shared:
                try:
                    self._flusher.wait(pg_request)
                except Vanished:
                    continue  # lost with a crashed server before it reached the disk
            return events_from_rows(rows)

    def _write_slots(self, slots: list[Slot[Any]]) -> None:
        """One call of the append function for the batch, retried across a lost
        connection: what was in flight when it was lost is first looked up by event id
        (``writer.resolve``), so an append that did commit is never written twice."""
        for slot in slots:
            if isinstance(slot.request, AppendRequest):  # from append_many
                slot.request = PgRequest.of(slot.request)
        if self.closed:
            for slot in slots:
                slot.fail(JournalError(f"journal {self.where} is closed"))
            return
        pending: list[Slot[PgRequest]] = list(slots)
        in_doubt: int | None = None  # the backend pid the batch was sent on

        def attempt() -> None:
            nonlocal pending, in_doubt
            with self._pool.connection() as conn:
                if in_doubt is not None:
                    _end_backend(conn, in_doubt)
                    pending = resolve(conn, pending)
                    in_doubt = None
                if not pending:
                    return
                pid = conn.info.backend_pid
                try:
                    self._writer.write(conn, pending)
                    return
                except psycopg.Error as e:
                    if is_disconnect(e):
                        in_doubt = pid
                        raise
                    if len(pending) == 1:
                        pending[0].fail(self._write_error(e, pending[0].request.append))
                        return
                # Something no check foresaw: one by one, so only the offending one fails.
                for slot in pending:
                    try:
                        self._writer.write(conn, [slot])
                    except psycopg.Error as e1:
                        if is_disconnect(e1):
                            pending = [s for s in pending if not s.done]
                            in_doubt = pid
                            raise
                        slot.fail(self._write_error(e1, slot.request.append))

        try:
            self._reconnect.run("appending", attempt)
        except JournalError as e:
            for slot in slots:
                if not slot.done:
                    slot.fail(e)
        except psycopg.Error as e:
            for slot in slots:
                if not slot.done:
                    slot.fail(JournalError(f"writing journal {self.where} failed: {first_line(e)}"))

    def _write_error(self, e: psycopg.Error, request: AppendRequest) -> JournalError:
        """The driver's error as the journal's: a lost race on (stream, version) is a
        ``ConcurrencyConflict`` naming both versions, as SQLite reports it."""
        if isinstance(e, pg_errors.UniqueViolation):
            constraint = getattr(e.diag, "constraint_name", None)
            if constraint == "events_stream_version":
                try:
                    actual = self.stream_version(request.stream)
                except JournalError:
                    actual = None
                conflict = ConcurrencyConflict(
                    stream=request.stream, expected=request.expected_version, actual=actual
                )
                conflict.__cause__ = e
                return conflict
        if isinstance(e, psycopg.IntegrityError | psycopg.DataError):
            error = JournalError(f"append refused by journal {self.where}: {first_line(e)}")
        else:
            error = JournalError(f"writing journal {self.where} failed: {first_line(e)}")
        error.__cause__ = e
        return error

    def _bulk(self, requests: list[AppendRequest]) -> int:
        try:
            with self._pool.connection() as conn:
                return self._writer.write_unchecked(conn, [PgRequest.of(r) for r in requests])
        except psycopg.Error as e:
            raise JournalError(f"writing journal {self.where} failed: {first_line(e)}") from e

    # -- reading (the rest is journal.sql_journal) --------------------------------------
    def _types_clause(self, types: Sequence[str]) -> tuple[str, list[Any]]:
        return "type = ANY(%s)", [list(types)]

    def _projected(self, project: Mapping[str, Sequence[str]]) -> str | None:
        # The keys picked out server-side (``->`` on ``json`` keeps each value's text as
        # stored). Names are literals in the statement: ``SQLJournal`` checked them.
        cases = []
        for type_, keys in project.items():
            fields = ", ".join(f"'{k}', payload -> '{k}'" for k in keys)
            cases.append(f"WHEN '{type_}' THEN json_build_object({fields})::text")
        return f"CASE type {' '.join(cases)} ELSE payload::text END" if cases else None

    def seq_at_time(self, when: str) -> int:
        try:
            bound = iso_from_us(us_from_iso(when))
        except ValueError as e:
            raise JournalError(f"not an ISO-8601 UTC time: {when!r}") from e
        rows = self._query(
            "SELECT seq FROM events WHERE recorded_at <= %s "
            "ORDER BY recorded_at DESC, seq DESC LIMIT 1",
            (bound,),
        )
        return int(rows[0][0]) if rows else 0

    def streams(self, prefix: str | None = None) -> list[str]:
        # A loose index scan along (stream, version): one index descent per stream
        # instead of a DISTINCT over every event.
        rows = self._query(
            """
            WITH RECURSIVE s(stream) AS (
                SELECT min(stream) FROM events WHERE stream >= %(p)s
                UNION ALL
                SELECT (SELECT min(e.stream) FROM events e WHERE e.stream > s.stream)
                FROM s WHERE s.stream IS NOT NULL AND starts_with(s.stream, %(p)s)
            )
            SELECT stream FROM s WHERE stream IS NOT NULL AND starts_with(stream, %(p)s)
            """,
            {"p": prefix or ""},
        )
        return [r[0] for r in rows]

    # -- waiting for appends -------------------------------------------------------------
    def _listen(self) -> psycopg.Connection[Any]:
        """A connection listening for appends, reconnecting across an outage."""

        def listen() -> psycopg.Connection[Any]:
            conn = self._connect()
            try:
                conn.execute(f"LISTEN {CHANNEL}")
            except psycopg.Error:
                conn.close()
                raise
            return conn

        try:
            conn = self._reconnect.run("listening", listen)
        except psycopg.Error as e:
            raise JournalError(f"cannot listen on journal {self.where}: {first_line(e)}") from e
        with self._listeners_lock:
            self._listeners.add(conn)
        return conn

    def _unlisten(self, conn: psycopg.Connection[Any]) -> None:
        with self._listeners_lock:
            self._listeners.discard(conn)
        conn.close()

    def _wait(self, conn: psycopg.Connection[Any], timeout: float) -> psycopg.Connection[Any]:
        """Wait on ``conn`` for a notification; the connection to wait on next time (a
        new one when this one was lost: notifications missed meanwhile do not matter,
        as every caller looks at the head again)."""
        if conn.closed and not self.closed:
            self._unlisten(conn)
            conn = self._listen()
        try:
            for _ in conn.notifies(timeout=timeout, stop_after=1):
                pass
        except psycopg.Error as e:
            if not self.closed and is_disconnect(e):
                self._reconnect.lost(e)
        return conn

    @contextlib.contextmanager
    def _idle_waiter(self, poll: float) -> Iterator[Callable[[], None]]:
        """``follow`` is woken by ``NOTIFY`` rather than polling; ``poll`` only bounds
        how long a closed journal takes to end the generator."""
        conn = self._listen()

        def wait() -> None:
            nonlocal conn
            conn = self._wait(conn, max(poll, 1.0))

        try:
            yield wait
        finally:
            self._unlisten(conn)

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        """Block until the head is past ``after_seq`` or ``timeout`` seconds passed;
        True when it is. Woken by ``NOTIFY`` (one listening connection per journal);
        a notification about an older head just means looking again."""
        deadline = time.monotonic() + timeout
        with self._waiter_lock:
            if self._waiter is None:
                self._waiter = self._listen()
            while self.head() <= after_seq:
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return False
                self._waiter = self._wait(self._waiter, left)
        return True

    # -- integrity, export ---------------------------------------------------------------
    @contextlib.contextmanager
    def _snapshot_rows(self, name: str) -> Iterator[Iterator[Any]]:
        """Every row in seq order from one consistent snapshot, streamed by a server-side
        cursor."""
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                with conn.cursor(name=name) as cur:
                    cur.itersize = 2000
                    cur.execute(f"{self.SELECT} ORDER BY seq")
                    yield iter(cur)
        except psycopg.Error as e:
            raise JournalError(f"reading journal {self.where} failed: {first_line(e)}") from e

    def verify(self) -> VerifyReport:
        """Walk the whole chain in one snapshot."""
        with self._snapshot_rows("fleetlog_verify") as rows:
            return check_rows(rows).report()

    def export(self, fp: IO[str]) -> int:
        n = 0
        with self._snapshot_rows("fleetlog_export") as rows:
            for row in rows:
                fp.write(export_line(row))
                fp.write("\n")
                n += 1
        return n

    def import_(self, fp: IO[str]) -> int:
        """Check the whole file, then copy it in one transaction under the append lock
        while checking it again (the file could change in between)."""
        self._writable()
        if self.head():
            raise JournalError(f"import refused: journal {self.where} is not empty")
        fp = rewindable(fp)
        start = fp.tell()
        check_file_chain(fp)
        fp.seek(start)
        columns = ", ".join(Event.COLUMNS)
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema_lock_key(self.schema),))
                if conn.execute("SELECT 1 FROM events LIMIT 1").fetchone():
                    raise JournalError(f"import refused: journal {self.where} is not empty")
                with conn.cursor() as cur, cur.copy(f"COPY events ({columns}) FROM STDIN") as copy:
                    result = check_rows(_copying(copy, fp))
                    if not result.ok:
                        raise JournalIntegrityError(
                            f"import refused: the file changed while importing: seq "
                            f"{result.first_bad_seq}: {result.reason}",
                            seq=result.first_bad_seq,
                            reason=result.reason,
                        )
                if result.events:
                    conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, str(result.events)))
        except psycopg.Error as e:
            raise JournalError(f"import into {self.where} failed: {first_line(e)}") from e
        return result.events

    # -- snapshots (bound to the chain by journal.sql_journal) ---------------------------
    STATE_TEXT = "state::text"

    def _store_snapshot(self, stream: str, version: int, text: str) -> None:
        sql = (
            "INSERT INTO snapshots (stream, version, state) VALUES (%s, %s, %s::json) "
            "ON CONFLICT (stream) DO UPDATE SET version = excluded.version, "
            "state = excluded.state WHERE excluded.version >= snapshots.version"
        )
        params = (stream, version, text)
        try:
            with self._pool.connection() as conn:
                try:
                    conn.execute(sql, params)
                except pg_errors.UndefinedTable:
                    conn.execute(next(s for s in schema.MIGRATIONS[1] if "snapshots" in s))
                    conn.execute(sql, params)
        except psycopg.Error as e:
            raise JournalError(f"writing snapshot to {self.where} failed: {first_line(e)}") from e

    def _drop_snapshots(self) -> int:
        try:
            with self._pool.connection() as conn:
                with contextlib.suppress(pg_errors.UndefinedTable), conn.transaction():
                    conn.execute(f"DELETE FROM {CHECKPOINTS_TABLE}")
                return int(conn.execute("DELETE FROM snapshots").rowcount)
        except psycopg.Error as e:
            raise JournalError(f"writing journal {self.where} failed: {first_line(e)}") from e

    # -- the fleet checkpoint (bound to the chain by journal.sql_journal) ---------------
    @property
    def keeps_checkpoints(self) -> bool:
        return self._refusal is None

    def _store_checkpoint(
        self, name: str, seq: int, hash_: str, state_text: str, sealed: str
    ) -> None:
        sql = (
            f"INSERT INTO {CHECKPOINTS_TABLE} (name, seq, hash, state, seal) "
            "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, "
            "hash = excluded.hash, state = excluded.state, seal = excluded.seal "
            f"WHERE excluded.seq >= {CHECKPOINTS_TABLE}.seq"
        )
        params = (name, seq, hash_, state_text, sealed)
        try:
            with self._pool.connection() as conn:
                try:
                    conn.execute(sql, params)
                except pg_errors.UndefinedTable:
                    conn.execute(schema.CHECKPOINTS)  # no schema cookie here to disturb
                    conn.execute(sql, params)
        except psycopg.Error as e:
            raise JournalError(f"writing checkpoint to {self.where} failed: {first_line(e)}") from e

    # -- integrity (the checks are journal.sql_journal's) --------------------------------
    def _schema_cookie(self) -> int | None:
        return None  # no cheap equivalent: the walk starts at the verified head

    def _table_exists(self, name: str) -> bool:
        # Asked on every snapshot read, so every resource load: fleetlog never drops its
        # tables, so one seen is remembered (a query that finds it dropped by hand makes
        # ``_query`` forget); one not seen yet is asked again, by name in the catalog.
        if name in self._tables_seen:
            return True
        rows = self._query(
            "SELECT to_regclass(format('%%I.%%I', %s::text, %s::text)) IS NOT NULL",
            (self.schema, name),
        )
        if rows[0][0]:
            self._tables_seen.add(name)
        return bool(rows[0][0])

    def get_snapshot(self, stream: str) -> tuple[int, dict[str, Any]] | None:
        try:
            return super().get_snapshot(stream)
        except JournalError as e:
            if not isinstance(e.__cause__, pg_errors.UndefinedTable):
                raise
            return super().get_snapshot(stream)  # dropped meanwhile: asked again

    def _store_verified(self, head: Head, cookie: int | None, mac: str | None) -> bool:
        try:
            with self._pool.connection() as conn, conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (schema_lock_key(self.schema),))
                if head.seq:
                    row = conn.execute(
                        "SELECT hash FROM events WHERE seq = %s", (head.seq,)
                    ).fetchone()
                    if row is None or row[0] != head.hash:
                        return False
                exists = conn.execute(
                    "SELECT 1 FROM information_schema.tables "
                    "WHERE table_schema = %s AND table_name = %s",
                    (self.schema, VERIFIED_TABLE),
                ).fetchone()
                keyed_before = False
                if exists:
                    row = conn.execute(f"SELECT mac FROM {VERIFIED_TABLE} WHERE id = 1").fetchone()
                    keyed_before = row is not None and row[0] is not None
                else:
                    conn.execute(schema.VERIFIED_HEAD)
                if not exists or (mac is not None and not keyed_before):
                    # Snapshots kept before heads were verified carry no seal, and those
                    # kept before a chain key was first used a plain digest: dropped.
                    with contextlib.suppress(pg_errors.UndefinedTable), conn.transaction():
                        conn.execute("DELETE FROM snapshots")
                conn.execute(
                    f"INSERT INTO {VERIFIED_TABLE} (id, seq, hash, cookie, verified_at, mac) "
                    "VALUES (1, %s, %s, NULL, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                    "seq = excluded.seq, hash = excluded.hash, cookie = excluded.cookie, "
                    "verified_at = excluded.verified_at, mac = excluded.mac "
                    f"WHERE excluded.seq >= {VERIFIED_TABLE}.seq",
                    (head.seq, head.hash, iso_from_us(now_us()), mac),
                )
                return True
        except psycopg.Error as e:
            raise JournalError(f"writing journal {self.where} failed: {first_line(e)}") from e

    # -- leases --------------------------------------------------------------------------
    def acquire_lease(
        self, resource: str, owner: str, ttl: float, steal_from: str | None = None
    ) -> tuple[Lease, Lease | None]:
        self._writable()
        # Repeating an acquisition whose commit was unknown is harmless: the lease is
        # then held by ``owner``, and taking one's own lease renews it.
        result: tuple[Lease, Lease | None] = self._reconnect.run(
            f"taking the lease on {resource}",
            lambda: lease_change(
                self._pool,
                self.where,
                resource,
                lambda current, now: decide_acquire(
                    resource, current, owner, ttl, now, steal_from=steal_from
                ),
            ),
        )
        return result

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        self._writable()
        # A row never seen (token 0, no owner) reads like a released lease: both refuse.
        renewed: Lease = self._reconnect.run(
            f"renewing the lease on {lease.resource}",
            lambda: lease_change(
                self._pool,
                self.where,
                lease.resource,
                lambda current, now: decide_renew(lease, current, ttl, now),
            ),
        )
        return renewed

    def release_lease(self, lease: Lease) -> None:
        self._writable()

        def release() -> None:
            with self._pool.connection() as conn:
                conn.execute(
                    "UPDATE leases SET owner = NULL, expires_at = 0 "
                    "WHERE resource = %s AND owner = %s AND token = %s",
                    (lease.resource, lease.owner, lease.token),
                )

        try:
            self._reconnect.run(f"releasing the lease on {lease.resource}", release)
        except psycopg.Error as e:
            raise JournalError(
                f"releasing lease on {lease.resource} in {self.where} failed: {first_line(e)}"
            ) from e

    # -- leases taken and dropped with an append (LeaseAppending) --------------------------
    def lease_row(self, resource: str) -> LeaseRow | None:
        rows = self._query(
            "SELECT owner, token, expires_at FROM leases WHERE resource = %s", (resource,)
        )
        return None if not rows else (rows[0][0], int(rows[0][1]), float(rows[0][2]))

    def append_taking_lease(
        self,
        stream: str,
        events: Sequence[NewEvent],
        lease: Lease,
        seen: LeaseRow | None,
        expected_version: int | None = None,
    ) -> list[Event]:
        self._writable()
        return self._submit(stream, events, expected_version, None, take=Take(lease, seen))

    def append_releasing_lease(
        self, stream: str, events: Sequence[NewEvent], lease: Lease
    ) -> list[Event]:
        self._writable()
        return self._submit(stream, events, None, fence_of(lease), release=True)

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        with self._listeners_lock:
            listeners = list(self._listeners)
            self._listeners.clear()
        for conn in listeners:
            conn.close()
        self._pool.close()


def schema_lock_key(name: str) -> int:
    return schema.lock_key(name)


def _end_backend(conn: Any, pid: int) -> None:
    """Make sure the server process an append was in flight on is gone before looking
    for that append: a backend that outlived its client (a network cut rather than a
    restart) could otherwise still commit after the look. Without the right to end it
    (another role's backend), the look goes ahead."""
    with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
        conn.execute(
            "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE pid = %s",
            (pid,),
        )


def _copying(copy: Any, fp: IO[str]) -> Iterator[tuple[Any, ...]]:
    """The file's rows, copied in as the chain check pulls them through."""
    for _lineno, row in parse_lines(fp):
        copy.write_row(row)
        yield row
