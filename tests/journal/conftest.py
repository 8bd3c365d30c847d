"""Fixtures for the journal contract suite.

Every backend runs the same tests: ``journal_factory`` is parametrised by backend and
returns a callable that makes a fresh, empty journal (PostgreSQL will be added as a
second param). Tests that only make sense for one backend live in ``test_sqlite.py``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from journal import Journal
from journal.sqlite import SQLiteJournal

JournalFactory = Callable[[], Journal]


@pytest.fixture(params=["sqlite"])
def journal_factory(request: pytest.FixtureRequest) -> Iterator[JournalFactory]:
    made: list[Journal] = []
    tmp = tempfile.TemporaryDirectory(prefix="fleetlog-journal-")

    def make() -> Journal:
        if request.param == "sqlite":
            j: Journal = SQLiteJournal(
                Path(tmp.name) / f"j{len(made)}.db", actor="tester", host="testhost"
            )
        else:  # pragma: no cover - other backends are added here
            raise ValueError(request.param)
        made.append(j)
        return j

    yield make
    for j in made:
        j.close()
    tmp.cleanup()


@pytest.fixture
def journal(journal_factory: JournalFactory) -> Journal:
    return journal_factory()
