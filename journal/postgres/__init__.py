"""The PostgreSQL journal (psycopg 3). Imported only when a ``postgresql://`` URL is used,
so the CLI never pays for the driver otherwise."""

from fleetlog.journal.postgres.store import PostgresJournal

__all__ = ["PostgresJournal"]
