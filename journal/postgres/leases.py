"""Leases in PostgreSQL: one row per resource, changed under ``SELECT … FOR UPDATE``.

The decision is ``journal.leases`` (shared with SQLite); time is the database's clock,
so workers on hosts with skewed clocks agree on when a lease expired. A row is inserted
(owner NULL, token 0) before it is locked, so two first claimants cannot both insert.
"""

from __future__ import annotations

from typing import Any

import psycopg

from fleetlog.journal.base import JournalError, Lease
from fleetlog.journal.leases import LeaseRow
from fleetlog.journal.postgres.conninfo import first_line


def lease_change(pool: Any, where: str, resource: str, decide: Any) -> Any:
    """Run ``decide(current row, database now)`` with the lease row locked, store the
    lease it returns first, and return what it returned. Time is the database's."""
    try:
        with pool.connection() as conn, conn.transaction():
            with conn.pipeline():
                conn.execute(
                    "INSERT INTO leases (resource, owner, token, expires_at) "
                    "VALUES (%s, NULL, 0, 0) ON CONFLICT (resource) DO NOTHING",
                    (resource,),
                )
                cur = conn.execute(
                    "SELECT owner, token, expires_at, "
                    "extract(epoch FROM clock_timestamp())::float8 "
                    "FROM leases WHERE resource = %s FOR UPDATE",
                    (resource,),
                )
            owner, token, expires_at, now = cur.fetchone()
            current: LeaseRow = (owner, int(token), float(expires_at))
            result = decide(current, float(now))
            lease: Lease = result[0] if isinstance(result, tuple) else result
            conn.execute(
                "UPDATE leases SET owner = %s, token = %s, expires_at = %s WHERE resource = %s",
                (lease.owner, lease.token, lease.expires_at, resource),
            )
            return result
    except psycopg.Error as e:
        raise JournalError(f"lease on {resource} in {where} failed: {first_line(e)}") from e
