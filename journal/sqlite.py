"""The SQLite journal: one file, WAL, durable appends, group-committed across threads.

Writes go through one connection guarded by ``_write_lock``; appends reach it through a
``GroupCommitter`` so concurrent threads share transactions. Every write transaction is
``BEGIN IMMEDIATE`` and reads the chain's tail inside it, which keeps the chain right
when several processes append to the same file. Reads use one connection per thread so
they never wait for a writer (WAL). The hot path uses the ``sqlite3`` connection
directly; sqlite-utils builds the schema (``journal.schema``).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import IO, Any

from fleetlog.journal import environment, schema
from fleetlog.journal.appender import (
    AppendRequest,
    events_from_rows,
    prepare_events,
)
from fleetlog.journal.base import (
    Event,
    Fence,
    Head,
    JournalError,
    JournalIntegrityError,
    JournalStats,
    Lease,
    LeaseAppending,
    LeaseChanged,
    NewEvent,
    VerifyReport,
    fence_of,
)
from fleetlog.journal.chain import check_rows
from fleetlog.journal.clock import iso_from_us, now_us, us_from_iso
from fleetlog.journal.groupcommit import GroupCommitter, Slot
from fleetlog.journal.identity import default_actor, default_host
from fleetlog.journal.jsonl import check_file_chain, export_line, parse_lines, rewindable
from fleetlog.journal.leases import LeaseRow, check_fence, decide_acquire, decide_renew
from fleetlog.journal.sql_journal import CHECKPOINTS_TABLE, VERIFIED_TABLE, SQLJournal
from fleetlog.journal.sqlite_readonly import ReadOnlySource, read_only_source
from fleetlog.journal.sqlite_writer import BatchWriter, Request, TxnOp
from fleetlog.journal.sqlite_writer import lease_row as _lease_row

_COLS = ", ".join(Event.COLUMNS)
_INSERT = f"INSERT INTO events ({_COLS}) VALUES ({', '.join('?' * len(Event.COLUMNS))})"
_SYNC_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
#: From this many appends, ``append_many`` writes them in a transaction of their own
#: rather than through the group commit (``SQLiteJournal._write_many``).
_DIRECT_MANY = 64
#: Names one ``streams_present`` statement asks about.
_NAMES_PER_SELECT = 500


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    """Files SQLite creates meanwhile (-wal, -shm) are readable by the owner only.
    The umask is process-wide; journals are opened rarely, so the window is short."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


class SQLiteJournal(SQLJournal, LeaseAppending):
    """The journal in one SQLite file. Thread-safe; safe to share a file across processes."""

    P = "?"
    PAYLOAD_TEXT = "payload"

    def __init__(
        self,
        path: str | os.PathLike[str],
        synchronous: str = "FULL",
        busy_timeout_ms: int = 30_000,
        actor: str | None = None,
        host: str | None = None,
        max_batch: int = 512,
        read_only: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self.url = "sqlite:///" + os.path.abspath(self.path)
        self.actor = actor or default_actor()
        self.host = host or default_host()
        sync = synchronous.upper()
        if sync not in _SYNC_MODES:
            raise JournalError(f"synchronous must be one of {', '.join(_SYNC_MODES)}")
        self._sync = sync
        self._busy_timeout = busy_timeout_ms / 1000
        self.stats = JournalStats()
        self._write_lock = threading.Lock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        #: Tables known to exist (``_table_exists``): a table, once there, stays.
        self._tables_seen: set[str] = set()
        #: Opened for a reading command: nothing is created, changed or repaired.
        self.read_only = read_only
        self._source: ReadOnlySource | None = None
        with _private_umask():
            conn = self._open()
        self._conn = conn
        self._writer = BatchWriter(conn, self.stats)
        self._committer: GroupCommitter[Request] = GroupCommitter(
            self._write_slots, max_batch=max_batch
        )

    # -- connections ---------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        """The writing connection on a file checked first (``schema.check_file``) and made
        a current journal (``schema.prepare``); read-only, on a file that is one already.

        Disk full, read-only media, permissions and bad paths are told apart from damage
        (``journal.environment``): such a file is not refused as "not a usable journal".
        A file this call created and could not make a journal is removed again."""
        created = False
        if self.read_only:
            self._source = read_only_source(self.path)
        else:
            environment.check_path(self.path)
            created = self._create_file()
            if not created:
                environment.check_writable(self.path)
        try:
            self._file_key = _check_file_once(self.path)
        except BaseException:
            self._undo_open(created, last=False)
            raise
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            if self.read_only:
                schema.check_readable(conn, self.path)
            else:
                schema.prepare(conn, self.path)
                conn.execute(f"PRAGMA synchronous={self._sync}")
            return conn
        except BaseException as e:
            if conn is not None:
                conn.close()
            self._undo_open(created, last=_forget_file(self._file_key))
            if isinstance(e, sqlite3.DatabaseError):
                doing = "creating" if created else "opening"
                raise schema.refusal(e, self.path, str(e), doing) from e
            raise

    def _undo_open(self, created: bool, last: bool) -> None:
        """Nothing half-made stays: a file created by a failed opening is removed."""
        if self._source is not None:
            self._source.release(self.path, last)
        if created:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(OSError):
                    os.unlink(self.path + suffix)

    def _create_file(self) -> bool:
        """Create a missing journal file as 0600 before SQLite opens it (SQLite would use
        0644, and the -wal/-shm files copy the main file's mode). True if it did."""
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        except FileExistsError:
            return False
        except OSError as e:
            raise environment.os_fault(e, self.path, "creating") from e
        os.close(fd)
        return True

    def _connect(self) -> sqlite3.Connection:
        source = self._source
        try:
            return sqlite3.connect(
                self.path if source is None else source.uri,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
                uri=source is not None,
            )
        except sqlite3.Error as e:
            raise schema.refusal(e, self.path, str(e)) from e

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self.closed:
                raise JournalError(f"journal {self.path} is closed")
            conn = self._connect()
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.DatabaseError as e:
            fault = environment.sqlite_fault(e, self.path, "reading")
            raise fault or JournalError(f"reading journal {self.path} failed: {e}") from e

    # -- writing -------------------------------------------------------------------------
    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> list[Event]:
        return self._submit(stream, events, expected_version, None, fence)

    def _submit(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int | None,
        lease_op: Callable[[sqlite3.Connection], None] | None,
        fence: Fence | None = None,
    ) -> list[Event]:
        if self.closed:
            raise JournalError(f"journal {self.path} is closed")
        self._writable()
        if not isinstance(stream, str) or not stream:
            raise JournalError("stream must be a non-empty string")
        if not events and lease_op is None:
            return []
        request = AppendRequest(
            stream,
            prepare_events(events, self.actor, self.host),
            expected_version,
            lease_op,
            fence,
        )
        # The committer hands back stored rows; the Event objects are built here, on the
        # caller's thread, after the commit (outside the write lock).
        return events_from_rows(self._committer.submit(request))

    def _write_slots(self, slots: list[Slot[Request]]) -> None:
        with self._write_lock:
            if self.closed:
                for slot in slots:
                    slot.fail(JournalError(f"journal {self.path} is closed"))
                return
            try:
                self._writer.write(slots)
            except sqlite3.Error as e:
                if len(slots) == 1:
                    slots[0].fail(self._write_error(e))
                    return
                # Something no in-memory check foresaw: retry one by one so only the
                # offending append fails.
                for slot in slots:
                    try:
                        self._writer.write([slot])
                    except sqlite3.Error as e1:
                        slot.fail(self._write_error(e1))

    def _write_error(self, e: sqlite3.Error) -> JournalError:
        fault = environment.sqlite_fault(e, self.path, "writing")
        if fault is not None:
            return fault
        if isinstance(e, sqlite3.IntegrityError):
            return JournalError(f"append refused by journal {self.path}: {e}")
        if "locked" in str(e) or "busy" in str(e):
            return JournalError(
                f"journal {self.path} stayed locked by another writer for longer than "
                f"{self._busy_timeout:g}s"
            )
        return JournalError(f"writing journal {self.path} failed: {e}")

    def _write_many(self, requests: list[AppendRequest]) -> list[Any]:
        """A large batch (``inventory load``: 2,048 appends at a time) in one transaction
        of its own, on this thread: through the group commit each append cost a slot, a
        lock to wait on and a hand-off, and its batch size split the call into several
        commits. Smaller batches, which may share a commit with other threads' appends,
        go through it. If the transaction fails (nothing is written), the batch goes
        through the group commit after all, which retries its appends one by one so
        that only the offending one fails, as it always did."""
        if len(requests) < _DIRECT_MANY:
            return super()._write_many(requests)
        slots: list[Slot[Request]] = [Slot(r) for r in requests]
        with self._write_lock:
            if self.closed:
                raise JournalError(f"journal {self.path} is closed")
            try:
                self._writer.write_together(slots)
            except sqlite3.Error:
                slots = []
        if not slots:
            return super()._write_many(requests)
        outcomes: list[Any] = []
        for slot in slots:
            if slot.error is not None and not isinstance(slot.error, JournalError):
                raise slot.error
            outcomes.append(slot.error if slot.error is not None else slot.result)
        return outcomes

    def _bulk(self, requests: list[AppendRequest]) -> int:
        with self._write_lock:
            try:
                return self._writer.write_unchecked(requests)
            except sqlite3.Error as e:
                raise self._write_error(e) from e

    # -- reading (the rest is journal.sql_journal) --------------------------------------
    def _types_clause(self, types: Sequence[str]) -> tuple[str, list[Any]]:
        return f"type IN ({', '.join('?' * len(types))})", list(types)

    def _projected(self, project: Mapping[str, Sequence[str]]) -> str | None:
        # SQLite's JSON functions (built in since 3.38, with ``->``) pick the keys out in
        # C: a fold then decodes a few short texts, mostly identical, instead of every
        # large payload. The names are literals in the statement (``SQLJournal`` checked
        # them).
        if sqlite3.sqlite_version_info < (3, 38, 0):
            return None
        cases = []
        for type_, keys in project.items():
            fields = ", ".join(f"'{k}', payload -> '$.{k}'" for k in keys)
            cases.append(f"WHEN '{type_}' THEN json_object({fields})")
        return f"CASE type {' '.join(cases)} ELSE payload END" if cases else None

    def seq_at_time(self, when: str) -> int:
        try:
            bound = iso_from_us(us_from_iso(when))
        except ValueError as e:
            raise JournalError(f"not an ISO-8601 UTC time: {when!r}") from e
        # recorded_at never decreases along seq (writers keep it so, verify checks it),
        # so binary-search seq; each probe is a primary-key lookup.
        lo, hi = 0, self.head()
        while lo < hi:
            mid = (lo + hi + 1) // 2
            rows = self._query(
                "SELECT recorded_at FROM events WHERE seq >= ? ORDER BY seq LIMIT 1", (mid,)
            )
            if rows and rows[0][0] <= bound:
                lo = mid
            else:
                hi = mid - 1
        return lo

    def streams(self, prefix: str | None = None) -> list[str]:
        # Hop from one stream to the next along the (stream, version) index: one indexed
        # lookup per stream instead of a DISTINCT over every event.
        prefix = prefix or ""
        found: list[str] = []
        rows = self._query("SELECT min(stream) FROM events WHERE stream >= ?", (prefix,))
        while rows and rows[0][0] is not None and rows[0][0].startswith(prefix):
            found.append(rows[0][0])
            rows = self._query("SELECT min(stream) FROM events WHERE stream > ?", (found[-1],))
        return found

    def streams_present(self, streams: Iterable[str]) -> set[str]:
        # 500 names per statement, each an index lookup: 100,000 names in about 0.1 s,
        # where hopping along the streams of each kind costs a statement per stream.
        wanted = list(dict.fromkeys(streams))
        found: set[str] = set()
        for start in range(0, len(wanted), _NAMES_PER_SELECT):
            chunk = wanted[start : start + _NAMES_PER_SELECT]
            marks = ", ".join("?" * len(chunk))
            sql = f"SELECT DISTINCT stream FROM events WHERE stream IN ({marks})"
            rows = self._query(sql, chunk)
            found.update(row[0] for row in rows)
        return found

    # -- integrity, export ---------------------------------------------------------------
    def verify(self) -> VerifyReport:
        """Walk the whole chain in one read transaction (a consistent snapshot)."""
        cursor = self._reader().execute(f"{self.SELECT} ORDER BY seq")
        cursor.arraysize = 1000
        try:
            return check_rows(cursor).report()
        except sqlite3.DatabaseError as e:
            raise JournalError(f"reading journal {self.path} failed: {e}") from e
        finally:
            cursor.close()

    def export(self, fp: IO[str]) -> int:
        cursor = self._reader().execute(f"{self.SELECT} ORDER BY seq")
        n = 0
        try:
            for row in cursor:
                fp.write(export_line(row))
                fp.write("\n")
                n += 1
        finally:
            cursor.close()
        return n

    def import_(self, fp: IO[str]) -> int:
        """Two passes: check the whole file, then insert it in one transaction while
        checking it again (the file could change in between). Nothing is written unless
        the first pass found the whole file sound."""
        self._writable()
        if self.head():
            raise JournalError(f"import refused: journal {self.path} is not empty")
        fp = rewindable(fp)
        start = fp.tell()
        check_file_chain(fp)
        fp.seek(start)
        with self._write_lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                (head,) = conn.execute("SELECT count(*) FROM events").fetchone()
                if head:
                    raise JournalError(f"import refused: journal {self.path} is not empty")
                self._writer.invalidate()
                result = check_rows(_inserting(conn, fp))
                if not result.ok:
                    raise JournalIntegrityError(
                        f"import refused: the file changed while importing: seq "
                        f"{result.first_bad_seq}: {result.reason}",
                        seq=result.first_bad_seq,
                        reason=result.reason,
                    )
                conn.execute("COMMIT")
            except sqlite3.Error as e:  # disk full, ...: nothing was imported
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise self._write_error(e) from e
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return result.events

    # -- snapshots (bound to the chain by journal.sql_journal) ---------------------------
    def _store_snapshot(self, stream: str, version: int, text: str) -> None:
        if self.read_only:
            return  # a disposable cache: a reading command leaves the file as it found it
        sql = (
            "INSERT INTO snapshots (stream, version, state) VALUES (?, ?, ?) "
            "ON CONFLICT (stream) DO UPDATE SET version = excluded.version, "
            "state = excluded.state WHERE excluded.version >= snapshots.version"
        )
        params = (stream, version, text)
        with self._write_lock:
            try:
                self._conn.execute(sql, params)
            except sqlite3.OperationalError as e:
                if "no such table" not in str(e):
                    raise JournalError(f"writing snapshot to {self.path} failed: {e}") from e
                import sqlite_utils  # schema work only: not every command pays for it

                db = sqlite_utils.Database(
                    self._conn, recursive_triggers=False, execute_plugins=False
                )
                schema.create_snapshots(db)
                self._conn.execute(sql, params)

    def _drop_snapshots(self) -> int:
        with self._write_lock:
            try:
                if self._table_exists(CHECKPOINTS_TABLE):
                    self._conn.execute(f"DELETE FROM {CHECKPOINTS_TABLE}")
                return int(self._conn.execute("DELETE FROM snapshots").rowcount)
            except sqlite3.Error as e:
                raise self._write_error(e) from e

    @property
    def keeps_checkpoints(self) -> bool:
        return (
            not self.read_only and self._refusal is None and self._table_exists(CHECKPOINTS_TABLE)
        )

    def _store_checkpoint(
        self, name: str, seq: int, hash_: str, state_text: str, sealed: str
    ) -> None:
        if self.read_only:
            return  # a disposable cache: a reading command leaves the file as it found it
        if not self._table_exists(CHECKPOINTS_TABLE):
            return  # made when a head is sealed (_store_verified); writers keep after that
        sql = (
            f"INSERT INTO {CHECKPOINTS_TABLE} (name, seq, hash, state, seal) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, "
            "hash = excluded.hash, state = excluded.state, seal = excluded.seal "
            f"WHERE excluded.seq >= {CHECKPOINTS_TABLE}.seq"
        )
        with self._write_lock:
            try:
                self._conn.execute(sql, (name, seq, hash_, state_text, sealed))
            except sqlite3.Error as e:
                raise self._write_error(e) from e

    # -- integrity (the checks are journal.sql_journal's) --------------------------------
    def _schema_cookie(self) -> int | None:
        return int(self._query("PRAGMA schema_version")[0][0])

    def _table_exists(self, name: str) -> bool:
        """Asked on every resource read (are there snapshots?): a yes is remembered, only
        a no is asked again."""
        if name in self._tables_seen:
            return True
        found = bool(
            self._query("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
        )
        if found:
            self._tables_seen.add(name)
        return found

    def _store_verified(self, head: Head, cookie: int | None, mac: str | None) -> bool:
        if self.read_only:
            return False
        with self._write_lock:
            if self.closed:
                raise JournalError(f"journal {self.path} is closed")
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    stored = _store_verified(conn, head, cookie, mac)
                    conn.execute("COMMIT" if stored else "ROLLBACK")
                    return stored
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            except sqlite3.Error as e:
                raise self._write_error(e) from e

    # -- leases --------------------------------------------------------------------------
    # Lease changes ride in the group commit's transaction (``TxnOp``): see there why.
    def acquire_lease(
        self, resource: str, owner: str, ttl: float, steal_from: str | None = None
    ) -> tuple[Lease, Lease | None]:
        def op(conn: sqlite3.Connection) -> tuple[Lease, Lease | None]:
            lease, broken = decide_acquire(
                resource, _lease_row(conn, resource), owner, ttl, time.time(), steal_from
            )
            _store_lease(conn, lease)
            return lease, broken

        result: tuple[Lease, Lease | None] = self._lease_op(resource, op)
        return result

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        def op(conn: sqlite3.Connection) -> Lease:
            renewed = decide_renew(lease, _lease_row(conn, lease.resource), ttl, time.time())
            _store_lease(conn, renewed)
            return renewed

        result: Lease = self._lease_op(lease.resource, op)
        return result

    def release_lease(self, lease: Lease) -> None:
        def op(conn: sqlite3.Connection) -> None:
            _release(conn, lease)

        self._lease_op(lease.resource, op)

    def lease_row(self, resource: str) -> LeaseRow | None:
        rows = self._query(
            "SELECT owner, token, expires_at FROM leases WHERE resource = ?", (resource,)
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
        def op(conn: sqlite3.Connection) -> None:
            if _lease_row(conn, stream) != seen:
                raise LeaseChanged(resource=stream)
            _store_lease(conn, lease)

        return self._submit(stream, events, expected_version, op)

    def append_releasing_lease(
        self, stream: str, events: Sequence[NewEvent], lease: Lease
    ) -> list[Event]:
        def op(conn: sqlite3.Connection) -> None:
            refused = check_fence(fence_of(lease), _lease_row(conn, lease.resource))
            if refused is not None:
                raise refused
            _release(conn, lease)

        return self._submit(stream, events, None, op)

    def _lease_op(self, resource: str, op: Callable[[sqlite3.Connection], Any]) -> Any:
        if self.closed:
            raise JournalError(f"journal {self.path} is closed")
        self._writable()
        return self._committer.submit(TxnOp(op, resource))

    # -- lifecycle -----------------------------------------------------------------------
    def close(self) -> None:
        if self.closed:
            return
        with self._write_lock:
            self.closed = True
            self._writer.close()
            self._conn.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        last = _forget_file(self._file_key)
        if self._source is not None:
            self._source.release(self.path, last)


def _store_verified(
    conn: sqlite3.Connection, head: Head, cookie: int | None, mac: str | None
) -> bool:
    """``SQLiteJournal._store_verified`` inside its ``BEGIN IMMEDIATE``."""
    (now,) = conn.execute("PRAGMA schema_version").fetchone()
    if cookie is not None and now != cookie:
        return False  # the schema changed since the check: the next one walks it all
    if head.seq:
        row = conn.execute("SELECT hash FROM events WHERE seq = ?", (head.seq,)).fetchone()
        if row is None or row[0] != head.hash:
            return False
    exists = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (VERIFIED_TABLE,)
    ).fetchone()
    keyed_before = False
    if exists:
        row = conn.execute(f"SELECT mac FROM {VERIFIED_TABLE} WHERE id = 1").fetchone()
        keyed_before = row is not None and row[0] is not None
    else:
        import sqlite_utils  # schema work only: not every command pays for it

        db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        schema.create_verified_head(db)
        (now,) = conn.execute("PRAGMA schema_version").fetchone()
    if not conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (CHECKPOINTS_TABLE,)
    ).fetchone():
        # A journal made before checkpoints were kept gets their table here, where the
        # schema cookie recorded with the head is read after it: made anywhere else it
        # would look like a change of schema and cost the next command a full check.
        import sqlite_utils

        db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        schema.create_checkpoints(db)
        (now,) = conn.execute("PRAGMA schema_version").fetchone()
    has_snapshots = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'snapshots'"
    ).fetchone()
    if has_snapshots and (not exists or (mac is not None and not keyed_before)):
        # Snapshots kept before heads were verified carry no seal, and those kept before
        # a chain key was first used carry a plain digest: drop that part of the cache.
        conn.execute("DELETE FROM snapshots")
    conn.execute(
        f"INSERT INTO {VERIFIED_TABLE} (id, seq, hash, cookie, verified_at, mac) "
        "VALUES (1, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, "
        "hash = excluded.hash, cookie = excluded.cookie, verified_at = excluded.verified_at, "
        f"mac = excluded.mac WHERE excluded.seq >= {VERIFIED_TABLE}.seq",
        (head.seq, head.hash, now, iso_from_us(now_us()), mac),
    )
    return True


def _release(conn: sqlite3.Connection, lease: Lease) -> None:
    conn.execute(
        "UPDATE leases SET owner = NULL, expires_at = 0 "
        "WHERE resource = ? AND owner = ? AND token = ?",
        (lease.resource, lease.owner, lease.token),
    )


def _store_lease(conn: sqlite3.Connection, lease: Lease) -> None:
    conn.execute(
        "INSERT INTO leases (resource, owner, token, expires_at) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (resource) DO UPDATE SET owner = excluded.owner, "
        "token = excluded.token, expires_at = excluded.expires_at",
        (lease.resource, lease.owner, lease.token, lease.expires_at),
    )


# Files this process has open as journals, by (device, inode), with how many times.
# POSIX drops every lock a process holds on a file when it closes *any* descriptor of
# that file; SQLite's locks tell other processes who still uses the WAL, so reading the
# header (``schema.check_file``) of a file another journal of this process has open
# would let another process delete the WAL under it. The header is read only by the
# first opener in a process.
_open_files: dict[tuple[int, int], int] = {}
_open_files_lock = threading.Lock()


def _check_file_once(path: str) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError as e:
        raise environment.os_fault(e, path, "reading") from e
    key = (st.st_dev, st.st_ino)
    with _open_files_lock:
        if not _open_files.get(key):
            schema.check_file(path)
        _open_files[key] = _open_files.get(key, 0) + 1
    return key


def _forget_file(key: tuple[int, int]) -> bool:
    """True when no other journal of this process has the file open."""
    with _open_files_lock:
        left = _open_files.get(key, 0) - 1
        if left > 0:
            _open_files[key] = left
            return False
        _open_files.pop(key, None)
        return True


def _inserting(conn: sqlite3.Connection, fp: IO[str]) -> Iterator[tuple[Any, ...]]:
    """The file's rows, inserted in chunks as the chain check pulls them through."""
    chunk: list[tuple[Any, ...]] = []
    for _lineno, row in parse_lines(fp):
        chunk.append(row)
        if len(chunk) >= 10_000:
            conn.executemany(_INSERT, chunk)
            chunk.clear()
        yield row
    conn.executemany(_INSERT, chunk)
