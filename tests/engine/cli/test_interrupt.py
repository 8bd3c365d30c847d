"""Ctrl-C exits 130 and says what it left: SIGINT sent to a real ``fleetlog`` process
while a fan-out's steps (``sleep`` on the local backend) are running.

The first SIGINT stops each transition before its next step; the message says so and
names ``fleetlog resume``, and that command then finishes the work with every step run
exactly once. A second SIGINT leaves at once, and resume still finishes the work.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.engine.cli.clirun import fleetlog_cmd, run

SLOW = """
machine slow "Steps that take a while, on this machine" {
    param host: str = "localhost"
    param gate: str = "/nonexistent"

    initial state new
    state done

    transition go : new -> done {
        step one   run "until test -e {gate}; do sleep 0.05; done; sleep 0.2"  idempotent
        step two   run "sleep 0.5"  idempotent
        step three run "sleep 0.5"  idempotent
    }
}
"""
MEMBERS = [f"slow/n{i}" for i in range(1, 5)]
#: How long a child may take before the test fails as hung (not a timing assertion).
HUNG = 120.0


@pytest.fixture
def site(tmp_path: Path) -> Path:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "slow.fsm").write_text(SLOW)
    for rid in MEMBERS:
        added = run(
            "add", rid, "--param", f"gate={gate(tmp_path)}", cwd=tmp_path, env=env(tmp_path)
        )
        assert added.returncode == 0, added.stderr
    return tmp_path


def gate(site: Path) -> Path:
    """Step ``one`` waits for this file: the test opens it once its Ctrl-C is sent, so
    however slow the machine, the signal lands while the first steps still run."""
    return site / "gate"


def env(site: Path) -> dict[str, str]:
    return {
        "FLEETLOG_MACHINES": str(site / "m"),
        "FLEETLOG_JOURNAL": str(site / "j.db"),
        "FLEETLOG_BACKEND": "local",
    }


class Child:
    """``fleetlog ARGS`` running, its stderr read line by line as it comes."""

    def __init__(self, site: Path, *args: str) -> None:
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
        full_env.update(env(site))
        # A child that hangs is told to abort (``hung``): every thread's stack then
        # reaches its stderr, and the failure says where it hung.
        full_env["PYTHONFAULTHANDLER"] = "1"
        self.site = site
        self.proc = subprocess.Popen(
            [*fleetlog_cmd(), *args],
            cwd=site,
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.err: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.err.append(line)

    def wait_until_a_step_runs(self) -> None:
        """Until the journal holds a ``step.started`` (the fan-out is under way)."""
        deadline = time.monotonic() + HUNG
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "".join(self.err)
            if (self.site / "j.db").exists() and steps_started(self.site):
                return
            time.sleep(0.02)
        pytest.fail("no step started")

    def wait_for(self, text: str) -> None:
        """Until stderr says ``text`` (the child is still running then)."""
        deadline = time.monotonic() + HUNG
        while not any(text in line for line in self.err):
            assert self.proc.poll() is None, "".join(self.err)
            if time.monotonic() > deadline:
                self.hung(f"never said {text!r}")
            time.sleep(0.01)

    def hung(self, what: str) -> None:
        """Fail with the child's threads' stacks (faulthandler prints them on SIGABRT)."""
        self.proc.send_signal(signal.SIGABRT)
        self.proc.wait(timeout=HUNG)
        gate(self.site).touch()  # its steps' shells, orphaned, end
        self._reader.join(timeout=HUNG)
        pytest.fail(f"{what}; the child's stderr and stacks:\n{''.join(self.err)}")

    def finish(self) -> tuple[int, str, str]:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        with self.proc.stdout, self.proc.stderr:
            out = self.proc.stdout.read()  # to its end: the child has exited
            self.proc.wait(timeout=HUNG)
            self._reader.join(timeout=HUNG)
        return self.proc.returncode, out, "".join(self.err)


def steps_started(site: Path) -> int:
    conn = sqlite3.connect(f"file:{site / 'j.db'}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT count(*) FROM events WHERE type = 'step.started'").fetchone()[0]
        )
    except sqlite3.OperationalError:
        return 0  # the schema is not there yet
    finally:
        conn.close()


def step_outcomes(site: Path) -> Iterator[tuple[str, str, str]]:
    conn = sqlite3.connect(site / "j.db")
    try:
        rows = conn.execute(
            "SELECT stream, type, json_extract(payload, '$.step') FROM events "
            "WHERE type LIKE 'step.%' ORDER BY seq"
        )
        yield from rows
    finally:
        conn.close()


def resume_finishes_everything_once(site: Path) -> None:
    res = run("resume", "--all", cwd=site, env=env(site))
    assert res.returncode == 0, res.stderr
    status = run("status", "--json", cwd=site, env=env(site))
    assert status.returncode == 0
    assert '"state": "new"' not in status.stdout
    succeeded = [(s, step) for s, t, step in step_outcomes(site) if t == "step.succeeded"]
    assert sorted(succeeded) == sorted((m, s) for m in MEMBERS for s in ("one", "two", "three"))


def test_ctrl_c_stops_each_transition_before_its_next_step_and_says_what_to_resume(
    site: Path,
) -> None:
    child = Child(site, "fire", "slow/n[1-4]", "go", "--parallel", "2")
    child.wait_until_a_step_runs()
    child.proc.send_signal(signal.SIGINT)
    child.wait_for("stopping each transition")
    gate(site).touch()
    code, _, err = child.finish()
    assert code == 130, err
    assert "Traceback" not in err
    assert "stopping each transition before its next step" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("fleetlog: interrupted: each transition that was running stopped")
    assert "`fleetlog resume --all`" in last
    # Stopped between steps: every step started has its outcome journaled.
    started = [(s, step) for s, t, step in step_outcomes(site) if t == "step.started"]
    ended = [(s, step) for s, t, step in step_outcomes(site) if t == "step.succeeded"]
    assert started and sorted(started) == sorted(ended)
    status = run("status", cwd=site, env=env(site))
    assert status.returncode == 0 and "new → done (go" in status.stdout  # in progress
    resume_finishes_everything_once(site)


def test_a_second_ctrl_c_leaves_at_once_and_resume_still_finishes(site: Path) -> None:
    child = Child(site, "fire", "slow/n[1-4]", "go", "--parallel", "2")
    child.wait_until_a_step_runs()
    child.proc.send_signal(signal.SIGINT)
    child.wait_for("stopping each transition")
    child.proc.send_signal(signal.SIGINT)
    gate(site).touch()
    code, _, err = child.finish()
    if "interrupted again" not in err:
        # Every running step ended between the two signals: the first one finished it.
        assert "each transition that was running stopped" in err, err
    assert code == 130, err
    assert "Traceback" not in err and "`fleetlog resume --all`" in err
    resume_finishes_everything_once(site)


def test_ctrl_c_stops_a_worker_with_130(site: Path) -> None:
    assert run("fire", "slow/n1", "go", "--submit", cwd=site, env=env(site)).returncode == 0
    child = Child(site, "worker")
    child.wait_until_a_step_runs()
    child.proc.send_signal(signal.SIGINT)
    gate(site).touch()
    code, _, err = child.finish()
    assert code == 130, err
    assert err.strip().splitlines()[-1] == (
        "fleetlog: interrupted: each transition this worker ran stopped before its next "
        "step and released its lease; another worker or `fleetlog resume --all` continues them"
    )
    res = run("resume", "--all", cwd=site, env=env(site))
    assert res.returncode == 0 and "completed -> done" in res.stdout, res.stderr


#: A child that sends itself SIGINT the moment the CLI starts importing typer, as the
#: ``fleetlog`` console script does (``argv[0]``): Ctrl-C pressed while it is starting.
CTRL_C_WHILE_STARTING = """
import os, signal, sys
sys.addaudithook(
    lambda event, args: event == "import" and args[0] == "typer"
    and os.kill(os.getpid(), signal.SIGINT)
)
sys.argv = [ARGV0, "status"]
from fleetlog.engine.cli import main
main()
"""


def start_interrupted(tmp_path: Path, argv0: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    full_env["FLEETLOG_JOURNAL"] = str(tmp_path / "j.db")
    return subprocess.run(
        [sys.executable, "-c", CTRL_C_WHILE_STARTING.replace("ARGV0", repr(argv0))],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=HUNG,
    )


def test_ctrl_c_while_fleetlog_is_still_starting_is_one_line_and_130(tmp_path: Path) -> None:
    res = start_interrupted(tmp_path, "/usr/local/bin/fleetlog")
    assert res.returncode == 130, res.stderr
    assert res.stderr == "fleetlog: interrupted while starting; nothing was read or run\n"
    assert not (tmp_path / "j.db").exists()


def test_anything_else_importing_the_cli_gets_its_keyboard_interrupt(tmp_path: Path) -> None:
    """A test or a library caller importing the CLI is not made to exit by it."""
    res = start_interrupted(tmp_path, "-c")
    assert res.returncode != 130
    assert res.stderr.rstrip().endswith("KeyboardInterrupt"), res.stderr
