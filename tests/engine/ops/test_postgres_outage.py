"""The database goes away in the middle of a fan-out, and nothing is lost or run twice.

Two ``fleetlog worker`` processes and one ``fleetlog fire`` share a PostgreSQL journal
while 40 transitions run (each with a one-second step, so the outage lands mid-way). Then
either every backend connection of theirs is killed (``pg_terminate_backend``, a real
server-side kill) or the server itself is restarted (``pg_ctlcluster … restart``, the
command in ``FLEETLOG_TEST_PG_RESTART``). Afterwards: every transition completed exactly
once, the non-idempotent step of each ran exactly once, nothing needs attention, the
chain verifies, and each process said so in one line per reconnect on stderr, with no
traceback.

The processes are told apart from other users of the server by ``application_name``,
which the journal URL carries to libpq.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.ops.test_worker import MACHINES, Shared
from tests.journal.pg import PG_URL, Schemas, new_schema, require_postgres

N = 40


def _default_restart() -> str:
    """``pg_ctlcluster`` for the cluster this machine has (the version .ci/run starts)."""
    versions = sorted(p.name for p in Path("/etc/postgresql").glob("*")) or ["15"]
    return f"pg_ctlcluster --skip-systemctl-redirect {versions[0]} main restart"


def _restart_command() -> list[str]:
    """The command restarting the server, or a skip (a failure under ``CI=true``)."""
    command = shlex.split(os.environ.get("FLEETLOG_TEST_PG_RESTART") or _default_restart())
    if shutil.which(command[0]) is None or not Path("/etc/postgresql").is_dir():
        reason = f"cannot restart PostgreSQL here ({command[0]} or /etc/postgresql missing)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires a restartable PostgreSQL: {reason}")
        pytest.skip(reason)
    return command


def _sql(statement: str, *params: object) -> list[tuple[object, ...]]:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=10) as conn:
        return list(conn.execute(statement, params).fetchall())


def _wait_until_ready(limit: float = 120.0) -> None:
    """The server accepts connections again (a hang guard, not a timing assertion)."""
    import psycopg

    deadline = time.monotonic() + limit
    while True:
        try:
            with psycopg.connect(PG_URL, connect_timeout=2) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture
def outage_shared(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Shared]:
    require_postgres()
    schemas = Schemas()
    schema = new_schema()
    schemas.made.append(schema)
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}application_name={schema}&schema={schema}"
    world = str(tmp_path / "world.sim")
    for name in list(os.environ):
        if name.startswith("FLEETLOG_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("FLEETLOG_MACHINES", str(MACHINES))
    monkeypatch.setenv("FLEETLOG_SIM_WORLD", world)
    monkeypatch.chdir(tmp_path)
    s = Shared(url, world, tmp_path, capsys)
    yield s
    s.close()
    _wait_until_ready()
    schemas.cleanup()


def _completed(s: Shared) -> int:
    return sum(
        1 for _ in s.journal.read_all_rows(types=("transition.completed",), columns=("seq",))
    )


@pytest.mark.parametrize("outage", ["killed connections", "server restart"])
def test_workers_and_fire_survive_the_database_going_away(
    outage_shared: Shared, outage: str
) -> None:
    s = outage_shared
    restart = _restart_command() if outage == "server restart" else None
    tag = s.url.split("application_name=")[1].split("&")[0]
    names = [f"o{i:02d}" for i in range(N)]
    s.add(*names, pause=1)
    s.add("solo", pause=3)
    submitted = s.cli("fire", "wjob/o*", "build", "--submit", "--json")
    assert submitted.code == 0, submitted.err

    workers = [s.spawn("worker", "--parallel", "8") for _ in range(2)]
    fire = s.spawn("fire", "wjob/solo", "build")
    outputs: list[tuple[str, int, str]] = []
    try:
        s.wait_for(lambda: _completed(s) >= 8, "the fan-out to be under way")
        if restart is None:
            killed = _sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s AND pid <> pg_backend_pid()",
                tag,
            )
            assert len(killed) >= 3  # both workers' and fire's connections at least
        else:
            subprocess.run(restart, check=True, capture_output=True, timeout=120)
            _wait_until_ready()
        s.wait_for(lambda: _completed(s) >= N + 1, "every transition to finish")
        _out, err = fire.communicate(timeout=300)
        outputs.append(("fire", fire.returncode, err))
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            _out, err = w.communicate(timeout=300)
            outputs.append(("worker", w.returncode, err))
    finally:
        for p in [fire, *workers]:
            if p.poll() is None:
                p.kill()
                p.communicate()

    reconnects = 0
    for what, code, err in outputs:
        assert code == 0, f"{what}: {err}"
        assert "Traceback" not in err, err
        lines = [line for line in err.splitlines() if "connection lost" in line]
        assert all("reconnected after" in line for line in lines), err
        reconnects += len(lines)
    # Every process that had connections when they went away said so, once per outage.
    assert 1 <= reconnects <= len(outputs), outputs

    rids = {f"wjob/{n}" for n in [*names, "solo"]}
    started: dict[str, int] = {}
    completed: dict[str, int] = {}
    attention = []
    for e in s.journal.read_all(
        types=("transition.started", "transition.completed", "attention.required")
    ):
        if e.type == "transition.started":
            started[e.stream] = started.get(e.stream, 0) + 1
        elif e.type == "transition.completed":
            completed[e.stream] = completed.get(e.stream, 0) + 1
        else:
            attention.append(e.stream)
    assert started == dict.fromkeys(rids, 1)
    assert completed == dict.fromkeys(rids, 1)
    assert attention == []
    counts = s.counters(*names, "solo")
    assert set(counts.values()) == {1}, counts  # the non-idempotent step ran once each
    report = s.journal.verify()
    assert report.ok, report
