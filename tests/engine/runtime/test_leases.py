"""Leases stay alive while their transition runs, and are dropped with it."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

from fleetlog.engine.runtime.leases import HEARTBEAT, LeaseSet, new_owner, owner_is_dead
from fleetlog.engine.runtime.owners import OwnerId
from fleetlog.journal import open_journal


def test_the_heartbeat_renews_held_leases_until_release(tmp_path: Path) -> None:
    j = open_journal(str(tmp_path / "j.db"))
    leases = LeaseSet(j, new_owner(), ["vm/a", "vm/b"], ttl=1.0)
    leases.acquire()
    first = {rid: lease.expires_at for rid, lease in leases.held.items()}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for renewals, however slow the machine
        current = {rid: j.get_lease(rid) for rid in first}
        if all(c is not None and c.expires_at > first[r] for r, c in current.items()):
            break
        time.sleep(0.05)
    else:
        raise AssertionError("leases were never renewed")
    assert leases.lost is None
    leases.release()
    assert j.get_lease("vm/a") is None and j.get_lease("vm/b") is None
    assert leases not in HEARTBEAT._sets
    types = [e.type for e in j.read_stream("vm/a")]
    assert types == ["lock.acquired", "lock.released"]


def test_an_owner_is_dead_only_when_its_process_on_this_host_is_gone() -> None:
    me = new_owner()
    assert not owner_is_dead(me)
    mine = OwnerId.parse(me)
    assert mine is not None and mine.boot and mine.pid_ns and mine.start
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    gone = replace(mine, pid=pid, start="1")
    assert owner_is_dead(str(gone))
    # The same pid and host name prove nothing from another boot, PID namespace or
    # machine, nor in an owner written without an identity: wait for the lease to expire.
    assert not owner_is_dead(str(replace(gone, boot="another-boot")))
    assert not owner_is_dead(str(replace(gone, pid_ns="4026532999")))
    assert not owner_is_dead(str(replace(gone, machine="another-machine")))
    assert not owner_is_dead(f"{mine.host}:{pid}:deadbeef")


def test_a_reused_pid_does_not_keep_a_dead_owner_alive() -> None:
    mine = OwnerId.parse(new_owner())
    assert mine is not None
    # This process's pid with another start time: an earlier process that had the pid.
    assert owner_is_dead(str(replace(mine, start=str(int(mine.start) - 1))))
    assert not owner_is_dead(str(mine))
