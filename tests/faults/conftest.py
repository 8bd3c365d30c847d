"""The fault-injection suite: real processes, real signals, a real sshd and PostgreSQL.

Each scenario drives ``fleetlog`` in child processes against an SQLite journal and, where
it applies, a PostgreSQL one (``fleet`` is parametrised by journal), injects the fault
(SIGSTOP/SIGCONT past the lease, another PID namespace, a connection cut after the
command ran, SIGKILL mid-fan-out, a forgotten ``--backend``), and then checks what the
exactly-once promise says: every non-idempotent effect happened once, counted from the
simulated world's own log, and the journal replays, verifies and names what is left.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fleetlog.engine.backends.sim import SimBackend
from tests.engine.conftest import CRASH_ENV, CliResult, Fleet
from tests.journal.pg import Schemas


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


def _fleet(
    kind: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Fleet]:
    for var in (CRASH_ENV, "FLEETLOG_SIM_WORLD", "FLEETLOG_JOURNAL", "FLEETLOG_MACHINES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    schemas = Schemas()
    f: Fleet
    if kind == "postgres":
        pg = PgFleet(tmp_path, monkeypatch, capsys)
        pg.url, pg.world = schemas.url(), str(tmp_path / "world.sim")
        monkeypatch.setenv("FLEETLOG_SIM_WORLD", pg.world)
        f = pg
    else:
        f = Fleet(tmp_path, monkeypatch, capsys)
    yield f
    f.close()
    schemas.cleanup()


@pytest.fixture(params=["sqlite", "postgres"])
def fleet(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Iterator[Fleet]:
    """A fleet on each journal backend in turn."""
    yield from _fleet(request.param, tmp_path, monkeypatch, capsys)


@pytest.fixture
def pg_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Fleet]:
    yield from _fleet("postgres", tmp_path, monkeypatch, capsys)


@pytest.fixture
def sqlite_fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Fleet]:
    yield from _fleet("sqlite", tmp_path, monkeypatch, capsys)


def machines(fleet: Fleet, **files: str) -> None:
    """Write ``name.fsm`` files for this fleet and load them."""
    d = fleet.root / "machines"
    d.mkdir(exist_ok=True)
    for name, text in files.items():
        (d / f"{name}.fsm").write_text(text)
    fleet.use_machines(d)


def wait_for(what: str, ready: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll ``ready`` until it holds (a test timeout, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


def finish(proc: subprocess.Popen[str], timeout: float = 120.0) -> CliResult:
    out, err = proc.communicate(timeout=timeout)
    return CliResult(proc.returncode, out, err)


def stop(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGSTOP)


def cont(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGCONT)


def counters(fleet: Fleet) -> dict[str, int]:
    """How often each ``counter NAME`` effect happened, from the world's own log."""
    found: dict[str, int] = {}
    for entry in fleet.sim.world.log_entries():
        if entry.effect.startswith("counter "):
            name = entry.effect.split()[1]
            found[name] = found.get(name, 0) + 1
    return found


def healthy(fleet: Fleet) -> None:
    """The journal after the fault: it replays, verifies (chain and fencing) and says
    where everything stands."""
    for args in (("status", "--json"), ("replay",), ("verify",), ("audit",)):
        res = fleet.cli(*args)
        assert res.code in (0, 3), (args, res.err)  # 3: something needs attention
    assert fleet.cli("verify").code == 0
