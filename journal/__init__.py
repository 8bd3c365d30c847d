"""The append-only event store. ``open_journal`` picks the backend from the URL; the
PostgreSQL driver is imported only when a ``postgresql://`` URL is used."""

from fleetlog.journal.base import (
    GENESIS_HASH,
    ConcurrencyConflict,
    Event,
    Fence,
    Fenced,
    Head,
    IntegrityReport,
    Journal,
    JournalError,
    JournalIntegrityError,
    Lease,
    LeaseHeld,
    NewEvent,
    VerifyReport,
    fence_of,
)

__all__ = [
    "GENESIS_HASH",
    "ConcurrencyConflict",
    "Event",
    "Fence",
    "Fenced",
    "Head",
    "IntegrityReport",
    "Journal",
    "JournalError",
    "JournalIntegrityError",
    "Lease",
    "LeaseHeld",
    "NewEvent",
    "VerifyReport",
    "fence_of",
    "open_journal",
]


def open_journal(url: str, *, read_only: bool = False, **options: object) -> Journal:
    """Open (creating if needed) the journal at ``url``: a file path or ``sqlite:///path``
    for SQLite, ``postgresql://…`` for PostgreSQL.

    ``read_only``: for reading commands. An SQLite journal is then opened read-only: it
    must exist already, and no file is created, changed or repaired (it can be read on
    read-only media). PostgreSQL journals open as usual."""
    if url.startswith(("postgresql://", "postgres://")):
        from fleetlog.journal.postgres import PostgresJournal  # lazy: psycopg costs start-up time

        return PostgresJournal(url, **options)  # type: ignore[arg-type]
    from fleetlog.journal.sqlite import SQLiteJournal

    path = url.removeprefix("sqlite:///") if url.startswith("sqlite:///") else url
    return SQLiteJournal(path, read_only=read_only, **options)  # type: ignore[arg-type]
