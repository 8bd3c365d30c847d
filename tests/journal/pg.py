"""PostgreSQL for the tests: a reachable server or a skip (a failure under ``CI=true``),
and one throw-away schema per journal so tests never see each other's events.

The server is ``FLEETLOG_TEST_PG_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``).
"""

from __future__ import annotations

import functools
import os
import uuid

import pytest

PG_URL = os.environ.get("FLEETLOG_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def _unreachable() -> str | None:
    """Why PostgreSQL cannot be used, or None when it can (asked once per session)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test,postgres]')"
    try:
        with psycopg.connect(PG_URL, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as e:
        return f"PostgreSQL at {PG_URL} is unreachable: {str(e).strip().splitlines()[0]}"
    return None


def require_postgres() -> str:
    """The server's URL; skips the test when it is unreachable, fails it under CI=true."""
    reason = _unreachable()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires PostgreSQL: {reason}")
        pytest.skip(reason)
    return PG_URL


def new_schema() -> str:
    return f"fl_test_{uuid.uuid4().hex[:12]}"


def schema_url(schema: str) -> str:
    """A journal URL for ``schema`` (fleetlog's ``?schema=`` parameter)."""
    return f"{PG_URL}{'&' if '?' in PG_URL else '?'}schema={schema}"


def drop_schemas(*schemas: str) -> None:
    if not schemas:
        return
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        for schema in schemas:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


class Schemas:
    """Hands out fresh schemas and drops every one of them at ``cleanup``."""

    def __init__(self) -> None:
        self.made: list[str] = []

    def url(self) -> str:
        require_postgres()
        schema = new_schema()
        self.made.append(schema)
        return schema_url(schema)

    def cleanup(self) -> None:
        made, self.made = self.made, []
        drop_schemas(*made)
