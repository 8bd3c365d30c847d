"""Fixtures for the journal contract suite.

Every backend runs the same tests: ``journal_factory`` is parametrised by backend and
returns a callable that makes a fresh, empty journal, an SQLite file in a temporary
directory or a PostgreSQL journal in its own throw-away schema. PostgreSQL tests skip
when the server is unreachable, and fail instead under ``CI=true`` (``tests.journal.pg``).
Tests that only make sense for one backend live in ``test_sqlite.py`` and
``test_postgres.py``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetlog.journal import Journal
from fleetlog.journal.sqlite import SQLiteJournal
from tests.journal.pg import Schemas

JournalFactory = Callable[[], Journal]

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(params=BACKENDS)
def journal_factory(request: pytest.FixtureRequest) -> Iterator[JournalFactory]:
    made: list[Journal] = []
    tmp = tempfile.TemporaryDirectory(prefix="fleetlog-journal-")
    schemas = Schemas()

    def make() -> Journal:
        if request.param == "sqlite":
            j: Journal = SQLiteJournal(
                Path(tmp.name) / f"j{len(made)}.db", actor="tester", host="testhost"
            )
        else:
            from fleetlog.journal.postgres import PostgresJournal

            j = PostgresJournal(schemas.url(), actor="tester", host="testhost", pool_size=12)
        made.append(j)
        return j

    if request.param == "postgres":
        from tests.journal.pg import require_postgres

        require_postgres()
    yield make
    for j in made:
        j.close()
    schemas.cleanup()
    tmp.cleanup()


@pytest.fixture
def journal(journal_factory: JournalFactory) -> Journal:
    return journal_factory()
