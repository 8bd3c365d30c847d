"""The SQLite journal's schema, its migrations, and the checks made before touching a file.

Opening must never damage what it cannot understand: the file header is inspected
before SQLite sees the file, the table list is read before anything is written, a newer
schema version is refused, and tables are created only in an empty database. Schema DDL
is generated with sqlite-utils and run inside our own ``BEGIN IMMEDIATE`` so two
processes creating the same journal cannot both do it.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING

from fleetlog.journal import environment
from fleetlog.journal.base import JournalError, NotAJournal, SchemaTooNew
from fleetlog.journal.walfile import read_wal

if TYPE_CHECKING:
    import sqlite_utils

SCHEMA_VERSION = 1

_HEADER = b"SQLite format 3\x00"

EVENT_COLUMNS: dict[str, type] = {
    "seq": int,
    "event_id": str,
    "stream": str,
    "version": int,
    "type": str,
    "command_id": str,
    "causation_id": str,
    "correlation_id": str,
    "actor": str,
    "host": str,
    "recorded_at": str,
    "payload": str,
    "prev_hash": str,
    "hash": str,
}
_NULLABLE = {"command_id", "causation_id", "correlation_id"}


def check_file(path: str) -> None:
    """Refuse a file that is not an intact SQLite database, judging only by its bytes
    (and its WAL's).

    An empty file is a new journal. A file shorter than its header says (or not a whole
    number of pages) was truncated: SQLite would only notice when a query reaches the
    missing pages. Unless every missing page is in the WAL: then a checkpoint ran out of
    disk while copying the WAL into the file, and SQLite rebuilds the file from the WAL
    (the pages it reads come from there, the next checkpoint writes them).
    """
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as e:
        raise environment.os_fault(e, path, "reading") from e
    if size == 0:
        return
    if len(header) < 100 or not header.startswith(_HEADER):
        raise NotAJournal(path=path, reason="not a SQLite database")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512:
        raise NotAJournal(path=path, reason="the file is truncated or damaged")
    pages = int.from_bytes(header[28:32], "big")
    header_valid = header[24:28] == header[92:96]
    whole = size // page_size
    if not size % page_size and not (header_valid and whole < pages):
        return
    if _wal_holds_the_rest(path, page_size, whole):
        return
    if size % page_size:
        raise NotAJournal(path=path, reason="the file is truncated or damaged")
    raise NotAJournal(
        path=path,
        reason=f"the file is truncated ({size} bytes, its header says {pages * page_size})",
    )


def _wal_holds_the_rest(path: str, page_size: int, whole: int) -> bool:
    """Every page past the file's ``whole`` complete pages, up to the size the WAL's last
    committed transaction gives the database, is in the WAL's committed frames."""
    wal = read_wal(f"{path}-wal")
    if wal is None or wal.page_size != page_size:
        return False
    return all(p in wal.pages for p in range(whole + 1, wal.db_pages + 1))


def _user_tables(conn: sqlite3.Connection, path: str) -> set[str]:
    try:
        rows = conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        ).fetchall()
    except sqlite3.DatabaseError as e:
        raise refusal(e, path, f"SQLite cannot read it ({e})") from e
    return {name for (name,) in rows}


def refusal(e: sqlite3.Error, path: str, reason: str, doing: str = "opening") -> JournalError:
    """What SQLite's ``e`` means for the file at ``path``: an environment fault (disk
    full, read-only media, permissions) says nothing about the file, which is then not
    refused as damaged; anything else is ``NotAJournal`` with ``reason``."""
    return environment.sqlite_fault(e, path, doing) or NotAJournal(path=path, reason=reason)


def _schema_version(conn: sqlite3.Connection, path: str) -> int:
    try:
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    except sqlite3.DatabaseError as e:
        raise refusal(e, path, f"unreadable schema_version ({e})") from e
    if not isinstance(version, int):
        raise NotAJournal(path=path, reason="schema_version holds no version")
    return version


def prepare(conn: sqlite3.Connection, path: str) -> None:
    """Make ``conn``'s database a current journal, or raise ``NotAJournal`` untouched.

    ``conn`` must be in autocommit mode (``isolation_level=None``).
    """
    tables = _user_tables(conn, path)
    if tables:
        _check_existing(conn, path, tables)
        if _schema_version(conn, path) == SCHEMA_VERSION:
            return
    else:
        # WAL must be set outside a transaction; on an empty database this is what first
        # writes the header, so it happens only after we know the file is ours to fill.
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")
    try:
        tables = _user_tables(conn, path)  # another process may have won the race
        current = 0
        if tables:
            _check_existing(conn, path, tables)
            current = _schema_version(conn, path)
        import sqlite_utils  # schema work only: not every command pays for it

        db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        for version in range(current + 1, SCHEMA_VERSION + 1):
            MIGRATIONS[version](db)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) "
                "VALUES (?, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))",
                (version,),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def check_readable(conn: sqlite3.Connection, path: str) -> None:
    """For a read-only opening: ``conn``'s database must be a current journal already
    (nothing is created or migrated). One with no tables is not a journal yet."""
    tables = _user_tables(conn, path)
    if not tables:
        raise environment.JournalPathError(
            f"{path} holds no journal yet (a writing command such as `fleetlog add` or "
            "`fleetlog import` creates one)"
        )
    _check_existing(conn, path, tables)
    found = _schema_version(conn, path)
    if found < SCHEMA_VERSION:
        raise JournalError(
            f"{path} has journal schema version {found}: a writing command upgrades it to "
            f"{SCHEMA_VERSION} before it can be read"
        )


def _check_existing(conn: sqlite3.Connection, path: str, tables: set[str]) -> None:
    if "schema_version" not in tables:
        listed = ", ".join(sorted(tables)[:5])
        raise NotAJournal(path=path, reason=f"it has other tables ({listed}) and no schema_version")
    found = _schema_version(conn, path)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(path=path, found=found, supported=SCHEMA_VERSION)
    if found >= 1 and "events" not in tables:
        raise NotAJournal(path=path, reason="schema_version is present but events is missing")


def _v1(db: sqlite_utils.Database) -> None:
    """The events table, its indexes and append-only triggers; snapshots and leases."""
    db.execute(
        db.create_table_sql(
            "events",
            EVENT_COLUMNS,
            pk="seq",
            not_null=[c for c in EVENT_COLUMNS if c not in _NULLABLE],
        )
    )
    events = db.table("events")
    events.create_index(["event_id"], index_name="events_event_id", unique=True)
    # Optimistic concurrency, and the index every stream read and version lookup uses.
    events.create_index(["stream", "version"], index_name="events_stream_version", unique=True)
    # No index on recorded_at: writers keep it non-decreasing along seq (verify checks
    # it), so time lookups binary-search the primary key instead. A fourth index cost
    # ~25% of single-append time when measured.
    # sqlite-utils has no partial indexes; these two are written out.
    db.execute(
        "CREATE UNIQUE INDEX events_command_accepted ON events (command_id) "
        "WHERE type = 'command.accepted'"
    )
    db.execute("CREATE INDEX events_command_id ON events (command_id) WHERE command_id IS NOT NULL")
    for action in ("UPDATE", "DELETE"):
        db.execute(
            f"CREATE TRIGGER events_no_{action.lower()} BEFORE {action} ON events "
            f"BEGIN SELECT RAISE(ABORT, 'events are append-only: {action} refused'); END"
        )
    create_snapshots(db)
    create_checkpoints(db)
    db.execute(
        db.create_table_sql(
            "leases",
            {"resource": str, "owner": str, "token": int, "expires_at": float},
            pk="resource",
            not_null=["token", "expires_at"],
        )
    )


def create_checkpoints(db: sqlite_utils.Database) -> None:
    """The checkpoint cache (``Journal.put_checkpoint``): made with a new journal, and
    for one made before checkpoints existed when its head is next sealed."""
    db.execute(
        db.create_table_sql(
            "checkpoints",
            {"name": str, "seq": int, "hash": str, "state": str, "seal": str},
            pk="name",
            not_null=["seq", "hash", "state", "seal"],
            if_not_exists=True,
        )
    )


def create_snapshots(db: sqlite_utils.Database) -> None:
    """The snapshot cache; also called lazily when someone dropped it."""
    db.execute(
        db.create_table_sql(
            "snapshots",
            {"stream": str, "version": int, "state": str},
            pk="stream",
            not_null=["version", "state"],
            if_not_exists=True,
        )
    )


def create_verified_head(db: sqlite_utils.Database) -> None:
    """The verified head (one row): how far a write command found the chain sound, under
    which schema cookie, sealed with the chain key. Created by the first write command
    that checks the chain (``journal.sql_journal``), so journals made before it keep
    schema version 1 and open in any fleetlog."""
    db.execute(
        db.create_table_sql(
            "verified_head",
            {
                "id": int,
                "seq": int,
                "hash": str,
                "cookie": int,
                "verified_at": str,
                "mac": str,
            },
            pk="id",
            not_null=["seq", "hash", "verified_at"],
            if_not_exists=True,
        )
    )


def _create_schema_version(db: sqlite_utils.Database) -> None:
    db.execute(
        db.create_table_sql(
            "schema_version",
            {"version": int, "applied_at": str},
            pk="version",
            not_null=["applied_at"],
            if_not_exists=True,
        )
    )


def _migration_1(db: sqlite_utils.Database) -> None:
    _create_schema_version(db)
    _v1(db)


# version -> the step that brings version-1 to version; each runs in the opening
# transaction together with its schema_version row.
MIGRATIONS: dict[int, Callable[[sqlite_utils.Database], None]] = {1: _migration_1}
