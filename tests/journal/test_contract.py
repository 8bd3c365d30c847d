"""The journal contract (``fleetlog.journal.testing``), run against every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.journal import Journal
from fleetlog.journal.sqlite import SQLiteJournal
from fleetlog.journal.testing import JournalContract
from tests.journal.pg import Schemas, require_postgres


class TestSQLite(JournalContract):
    def make_journal(self, directory: Path) -> Journal:
        return SQLiteJournal(directory / "j.db", actor="tester", host="testhost")


class TestPostgres(JournalContract):
    @pytest.fixture(autouse=True)
    def _schemas(self) -> Iterator[None]:
        require_postgres()
        self.schemas = Schemas()
        yield
        self.schemas.cleanup()

    def make_journal(self, directory: Path) -> Journal:
        from fleetlog.journal.postgres import PostgresJournal

        return PostgresJournal(self.schemas.url(), actor="tester", host="testhost", pool_size=12)
