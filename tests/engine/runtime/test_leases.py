"""Leases stay alive while their transition runs, and are dropped with it."""

from __future__ import annotations

import os
import time
from pathlib import Path

from fleetlog.engine.runtime.leases import HEARTBEAT, LeaseSet, new_owner, owner_is_dead
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
    host = me.split(":", 1)[0]
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    assert owner_is_dead(f"{host}:{pid}:deadbeef")
    assert not owner_is_dead(f"another-host:{pid}:deadbeef")
