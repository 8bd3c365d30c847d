"""The PostgreSQL journal's schema, its migrations, and the checks made before writing.

The same rules as the SQLite schema (``journal.schema``): what we cannot understand is
refused untouched, a newer schema version is refused, and tables are created only in a
schema that holds none of ours yet. Preparation runs in one transaction under an
advisory lock, so two processes opening a new journal at once cannot both create it.

Every journal lives in one PostgreSQL schema (``public`` unless a ``schema`` is given),
so one database can hold several independent journals.

Column notes:

* ``payload`` is ``json``, not ``jsonb``: ``json`` keeps the exact text it was given, so
  the canonical text the hash covers is stored and read back byte for byte (``jsonb``
  reorders keys, reformats numbers and refuses ``\\u0000``). Query it with ``->`` or cast
  it to ``jsonb`` as usual.
* ``recorded_at`` is the ISO text that is hashed, for the same reason; it sorts like
  time because its format is fixed.
* Text columns that are sorted or compared use ``COLLATE "C"`` so their order is code
  point order, as in SQLite and Python, whatever the database's collation.
"""

from __future__ import annotations

from typing import Any

from fleetlog.journal.base import NotAJournal, SchemaTooNew
from fleetlog.journal.postgres import append_fn

SCHEMA_VERSION = 2

# Tables this module creates; a schema holding other tables is not ours to fill.
OUR_TABLES = frozenset(
    {"schema_version", "events", "snapshots", "leases", "verified_head", "checkpoints"}
)

_V1 = [
    """
    CREATE TABLE schema_version (
        version integer PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT clock_timestamp()
    )
    """,
    """
    CREATE TABLE events (
        seq bigint PRIMARY KEY,
        event_id text NOT NULL,
        stream text COLLATE "C" NOT NULL,
        version bigint NOT NULL,
        type text COLLATE "C" NOT NULL,
        command_id text COLLATE "C",
        causation_id text,
        correlation_id text,
        actor text NOT NULL,
        host text NOT NULL,
        recorded_at text COLLATE "C" NOT NULL,
        payload json NOT NULL,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        CONSTRAINT events_event_id UNIQUE (event_id),
        CONSTRAINT events_stream_version UNIQUE (stream, version),
        CONSTRAINT events_version_positive CHECK (version >= 1 AND seq >= 1)
    )
    """,
    "CREATE UNIQUE INDEX events_command_accepted ON events (command_id) "
    "WHERE type = 'command.accepted'",
    "CREATE INDEX events_command_id ON events (command_id) WHERE command_id IS NOT NULL",
    # seq_at_time: the last seq at or before a time is one descent of this index.
    "CREATE INDEX events_recorded_at ON events (recorded_at, seq)",
    """
    CREATE FUNCTION events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'events are append-only: % refused', TG_OP
            USING ERRCODE = 'restrict_violation';
    END
    $$
    """,
    "CREATE TRIGGER events_no_update BEFORE UPDATE OR DELETE ON events "
    "FOR EACH ROW EXECUTE FUNCTION events_append_only()",
    "CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
    "FOR EACH STATEMENT EXECUTE FUNCTION events_append_only()",
    """
    CREATE TABLE snapshots (
        stream text COLLATE "C" PRIMARY KEY,
        version bigint NOT NULL,
        state json NOT NULL
    )
    """,
    # owner is NULL once released; the row stays so fencing tokens keep increasing.
    """
    CREATE TABLE leases (
        resource text COLLATE "C" PRIMARY KEY,
        owner text,
        token bigint NOT NULL,
        expires_at double precision NOT NULL
    )
    """,
]

# The verified head (one row), made by the first write command that checks the chain
# (``journal.sql_journal``): journals made before it keep schema version 1.
VERIFIED_HEAD = """
    CREATE TABLE IF NOT EXISTS verified_head (
        id integer PRIMARY KEY CHECK (id = 1),
        seq bigint NOT NULL,
        hash text NOT NULL,
        cookie bigint,
        verified_at text NOT NULL,
        mac text
    )
"""

# The fleet checkpoint cache (``Journal.put_checkpoint``), made when the first is kept: a
# cache like the verified head, so journals made before it keep their schema version.
CHECKPOINTS = """
    CREATE TABLE IF NOT EXISTS checkpoints (
        name text COLLATE "C" PRIMARY KEY,
        seq bigint NOT NULL,
        hash text NOT NULL,
        state text NOT NULL,
        seal text NOT NULL
    )
"""

# Version 2: appends are one call of a server-side function (``append_fn``).
_V2 = [append_fn.CREATE]

# version -> the statements that bring version-1 to version.
MIGRATIONS: dict[int, list[str]] = {1: _V1, 2: _V2}

_LOCK_CLASS = 0x666C6F67  # "flog": the advisory-lock namespace of fleetlog


def lock_key(schema: str) -> int:
    """The advisory-lock key serialising appends (and schema changes) of one journal."""
    import hashlib

    digest = hashlib.sha256(f"fleetlog:{schema}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _tables(cur: Any, schema: str) -> set[str]:
    cur.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    )
    return {name for (name,) in cur.fetchall()}


def _version(cur: Any, where: str) -> int:
    cur.execute("SELECT max(version) FROM schema_version")
    (found,) = cur.fetchone()
    if not isinstance(found, int):
        raise NotAJournal(path=where, reason="schema_version holds no version")
    return found


def _check_existing(cur: Any, where: str, tables: set[str]) -> int:
    if "schema_version" not in tables:
        listed = ", ".join(sorted(tables)[:5])
        raise NotAJournal(
            path=where, reason=f"it has other tables ({listed}) and no schema_version"
        )
    found = _version(cur, where)
    if found > SCHEMA_VERSION:
        raise SchemaTooNew(path=where, found=found, supported=SCHEMA_VERSION)
    if "events" not in tables:
        raise NotAJournal(path=where, reason="schema_version is present but events is missing")
    return found


def prepare(conn: Any, schema: str, where: str) -> None:
    """Make ``schema`` hold a current journal, or raise ``NotAJournal`` untouched.

    ``conn`` is an autocommit psycopg connection whose search_path starts at ``schema``.
    """
    with conn.cursor() as cur:
        tables = _tables(cur, schema)
        if tables and _check_existing(cur, where, tables) == SCHEMA_VERSION:
            return
        with conn.transaction():
            cur.execute("SELECT pg_advisory_xact_lock(%s, 0)", (_LOCK_CLASS,))
            tables = _tables(cur, schema)  # another process may have won the race
            current = _check_existing(cur, where, tables) if tables else 0
            for version in range(current + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[version]:
                    cur.execute(statement)
                cur.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
