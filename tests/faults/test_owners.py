"""Dead-owner detection does not trust a host name.

A worker in another PID namespace on the same machine (``unshare -p``), or a second
machine with the same host name, cannot see the owner's process: that proves nothing,
so it must wait for the lease to expire instead of taking a live transition over.
"""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import time
from dataclasses import replace

import pytest

from fleetlog.engine.backends.sim import Fault
from fleetlog.engine.runtime.owners import OwnerId, new_owner
from tests.engine.conftest import CLI_ARGV, CRASH_ENV, Fleet
from tests.faults.conftest import counters, finish, healthy, machines, wait_for

JOB = """
machine ujob {
    param host: str = "h1"
    initial state new
    state done
    transition go : new -> done {
        step first  run "touch_flag ujob_first" idempotent
        step second run "counter ujob_second"
    }
}
"""


def _unshare_available() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare(1) is not installed"
    if os.geteuid() != 0:
        return "unshare -p needs root"
    return None


def started(fleet: Fleet, rid: str, step: str) -> bool:
    return any(
        e.type == "step.started" and e.payload.get("step") == step
        for e in fleet.journal.read_stream(rid)
    )


def test_a_worker_in_another_pid_namespace_leaves_a_live_lease_alone(
    sqlite_fleet: Fleet,
) -> None:
    reason = _unshare_available()
    if reason is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true requires the PID-namespace scenario: {reason}")
        pytest.skip(reason)
    fleet = sqlite_fleet
    machines(fleet, ujob=JOB)
    assert fleet.cli("add", "ujob/u1").code == 0
    fleet.sim.world.inject(Fault("touch_flag", mode="slow", ms=3000, n=1))
    holder = fleet.spawn("fire", "ujob/u1", "go")
    wait_for("ujob/u1 to start", lambda: started(fleet, "ujob/u1", "first"))
    # Same machine, same host name, another PID namespace: the holder's pid means
    # nothing there (it may even be taken by an unrelated process).
    other = subprocess.run(
        [
            "unshare",
            "-p",
            "-f",
            "--mount-proc",
            *CLI_ARGV,
            "--journal",
            fleet.journal_path,
            "worker",
            "--once",
        ],
        env=fleet.env(),
        cwd=fleet.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert other.returncode == 0, other.stderr
    assert "nothing to run" in other.stdout
    done = finish(holder)
    assert done.code == 0, done.err
    assert counters(fleet) == {"ujob_second": 1}
    assert "lock.broken" not in [e.type for e in fleet.events("ujob/u1")]
    healthy(fleet)


def test_a_same_named_owner_elsewhere_keeps_its_lease_until_it_expires(
    sqlite_fleet: Fleet,
) -> None:
    """A transition left by an owner on another machine that happens to share this
    host's name, with a pid that is free here: not provably dead, so untouched until its
    lease expires; then the next worker breaks it and finishes the transition."""
    fleet = sqlite_fleet
    machines(fleet, ujob=JOB)
    assert fleet.cli("add", "ujob/u1").code == 0
    # Killed right after `second`'s step.started: in doubt, held by a dead process.
    killed = fleet.sub("fire", "ujob/u1", "go", **{CRASH_ENV: "5"})
    assert killed.code == -9, killed.err
    dead_pid = _free_pid()
    here = OwnerId.parse(new_owner())
    assert here is not None and here.host == socket.gethostname()
    foreign = replace(here, pid=dead_pid, boot="0f0f0f0f-another-machine", machine="other")
    _set_lease(fleet, "ujob/u1", str(foreign), expires_in=60)

    early = fleet.sub("worker", "--once")
    assert early.code == 0, early.err
    assert "nothing to run" in early.out
    assert "lock.broken" not in [e.type for e in fleet.events("ujob/u1")]

    _set_lease(fleet, "ujob/u1", str(foreign), expires_in=-1)
    late = fleet.sub("worker", "--once")
    assert late.code == 3, late.err  # `second` needs attention (docs/output.md)
    [broken] = [e for e in fleet.events("ujob/u1") if e.type == "lock.broken"]
    assert broken.payload["reason"] == "lease expired"
    assert broken.payload["previous_owner"] == str(foreign)
    # `second` was in doubt (started, not recorded) and is not idempotent: an operator
    # decides, the worker does not run it again.
    assert counters(fleet) == {}
    status = fleet.status()["ujob/u1"]
    assert status["needs_attention"]["step"] == "second"
    healthy(fleet)


def _free_pid() -> int:
    """A pid with no process behind it on this machine (a child that exited)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _set_lease(fleet: Fleet, rid: str, owner: str, *, expires_in: float) -> None:
    """What another host's fleetlog would have left in the lease row (the row is
    mutable state, not history: the journal's events are untouched)."""
    with sqlite3.connect(fleet.journal_path) as conn:
        changed = conn.execute(
            "UPDATE leases SET owner = ?, expires_at = ? WHERE resource = ?",
            (owner, time.time() + expires_in, rid),
        ).rowcount
    assert changed == 1
