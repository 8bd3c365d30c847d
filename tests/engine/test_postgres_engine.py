"""The executor, resume, crash-resume and replay tests, run again on PostgreSQL.

The test functions of ``runtime/test_runner``, ``test_ensure``, ``test_resume`` and
``test_replay`` are collected a second time here, with their journal fixtures
(``make_rig``, ``fleet``, ``journal``) replaced by PostgreSQL ones: each test gets its
own schema, and the sim world is a file every process shares (``FLEETLOG_SIM_WORLD``).
The same assertions therefore hold on both backends. Also here: moving a journal from
SQLite to PostgreSQL with ``fleetlog export | fleetlog import -``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import SimBackend
from fleetlog.journal import open_journal
from fleetlog.journal.base import Journal
from tests.engine.conftest import CLI_ARGV, CRASH_ENV, Fleet, Rig, rig_maker
from tests.engine.model import test_replay
from tests.engine.runtime import test_ensure, test_resume
from tests.engine.runtime import test_runner as test_executor
from tests.journal.pg import Schemas


def _is_fixture(obj: object) -> bool:
    return type(obj).__name__ == "FixtureFunctionDefinition" or hasattr(
        obj, "_pytestfixturefunction"
    )


# Their tests and their own fixtures (``rs``, ``rack``…, built on the fixtures below,
# which are defined afterwards and so replace any of the same name).
for _module in (test_executor, test_ensure, test_resume, test_replay):
    globals().update(
        {
            name: obj
            for name, obj in vars(_module).items()
            if name.startswith("test_") or _is_fixture(obj)
        }
    )
# Reaches into the SQLite file to drop the snapshot table; the PostgreSQL journal's
# recreating a dropped snapshot table is tested in tests/journal/test_postgres.py.
del test_snapshots_never_change_a_result  # type: ignore[name-defined]  # noqa: F821


@pytest.fixture
def schemas() -> Iterator[Schemas]:
    made = Schemas()
    yield made
    made.cleanup()


class PgFleet(Fleet):
    """``Fleet`` with its journal in a PostgreSQL schema and its world in a file."""

    url: str = ""
    world: str = ""

    @property
    def journal_path(self) -> str:
        return self.url

    @property
    def sim(self) -> SimBackend:
        if self._sim is None:
            self._sim = SimBackend(self.world)
        return self._sim


@pytest.fixture
def fleet(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    schemas: Schemas,
) -> Iterator[Fleet]:
    url = schemas.url()
    world = str(tmp_path / "world.sim")
    monkeypatch.delenv(CRASH_ENV, raising=False)
    monkeypatch.setenv("FLEETLOG_SIM_WORLD", world)
    monkeypatch.delenv("FLEETLOG_JOURNAL", raising=False)
    monkeypatch.delenv("FLEETLOG_MACHINES", raising=False)
    monkeypatch.chdir(tmp_path)
    f = PgFleet(tmp_path, monkeypatch, capsys)
    f.url, f.world = url, world
    yield f
    f.close()


@pytest.fixture
def make_rig(tmp_path: Path, schemas: Schemas) -> Iterator[Callable[..., Rig]]:
    with rig_maker(lambda _i: schemas.url(), tmp_path) as make:
        yield make


@pytest.fixture
def journal(schemas: Schemas) -> Iterator[Journal]:
    j = open_journal(schemas.url(), actor="tester", host="testhost")
    yield j
    j.close()


# -- moving a journal -----------------------------------------------------------------


def test_export_import_moves_an_sqlite_journal_to_postgres_intact(
    fleet: Fleet, tmp_path: Path
) -> None:
    """``fleetlog export | fleetlog import -`` through real processes: every event,
    version and hash arrives, both journals verify, and the PostgreSQL one carries on."""
    rs_dir = tmp_path / "machines"
    rs_dir.mkdir()
    (rs_dir / "rs.fsm").write_text(test_resume.RS)
    fleet.use_machines(rs_dir)
    lite = str(tmp_path / "old.db")
    env: dict[str, Any] = fleet.env()

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI_ARGV, *args], env=env, input=stdin, capture_output=True, text=True, check=False
        )

    for args in (("add", "rs/r1"), ("add", "rs/r2"), ("fire", "rs/r1", "plain")):
        assert run("--journal", lite, *args).returncode == 0
    exported = run("--journal", lite, "export")
    assert exported.returncode == 0, exported.stderr
    pg = fleet.journal_path
    shell = subprocess.run(
        f"{' '.join(CLI_ARGV[:2])} {CLI_ARGV[2]!r} --journal {lite} export | "
        f"{' '.join(CLI_ARGV[:2])} {CLI_ARGV[2]!r} --journal '{pg}' import -",
        shell=True,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert shell.returncode == 0, shell.stderr
    for journal in (lite, pg):
        verified = run("--journal", journal, "verify")
        assert verified.returncode == 0, verified.stderr
    again = run("--journal", pg, "export")
    assert again.stdout == exported.stdout  # bit-identical: every seq, version and hash
    with open_journal(lite) as a, open_journal(pg) as b:
        assert list(a.read_all()) == list(b.read_all())
    # The moved journal is a working one: fire on it, verify, and refuse a second import.
    assert run("--journal", pg, "fire", "rs/r2", "plain").returncode == 0
    assert run("--journal", pg, "verify").returncode == 0
    refused = run("--journal", pg, "import", "-", stdin=exported.stdout)
    assert refused.returncode != 0 and "not empty" in refused.stderr
