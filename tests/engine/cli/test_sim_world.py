"""The world the CLI makes for a journal on the sim backend (no ``sim init``) holds what
the journal's inventory says, and nothing else: a host no resource names is unreachable,
as on a real network, never a silent success; a resource added later is reachable on the
next command; and a large journal is not rescanned by every command (the world keeps
the journal seq it is seeded through).

Real ``fleetlog`` processes on a fresh directory, with a user's own kind (no pack seeder:
its resources' hosts are plain hosts) beside the built-in ones."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

from tests.engine.cli.clirun import run

JOB = """\
machine job "a user's own kind: one step here, one on a peer" {
    param host: str = ""

    initial state new
    state done
    state broken : error

    transition go(peer: ref job) : new -> done {
        step here  run "touch_flag here_{name}" idempotent
        step there run "touch_flag there_{name}" on peer idempotent
        on failure -> broken
    }

    transition reset : broken -> new {
        step clear run "true"
    }
}
"""
HINT = "is not in the simulated datacenter; add a resource for it or run `fleetlog sim init`"


class Fleet:
    def __init__(self, root: Path) -> None:
        self.root = root
        machines = root / "machines"
        machines.mkdir()
        (machines / "job.fsm").write_text(JOB)
        self.env = {"FLEETLOG_MACHINES": str(machines)}
        self.world = root / "fleetlog.db.sim"

    def __call__(self, *args: str, code: int | None = 0) -> tuple[str, str]:
        done = run(*args, cwd=self.root, env=self.env)
        assert "Traceback" not in done.stderr, done.stderr
        if code is not None:
            assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout, done.stderr

    def hosts(self) -> set[str]:
        return set(json.loads(self("sim", "show", "--json")[0])["hosts"])

    def setting(self, key: str) -> str | None:
        with sqlite3.connect(self.world) as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def head(self) -> int:
        found = re.search(r"head: seq (\d+)", self("verify")[0])
        assert found is not None
        return int(found.group(1))

    def drop_host(self, host: str) -> None:
        """Edit the world file by hand: the host is gone from the datacenter."""
        with sqlite3.connect(self.world) as db:
            db.execute("DELETE FROM hosts WHERE host = ?", (host,))


def test_a_host_no_resource_names_is_unreachable_until_a_resource_names_it(
    tmp_path: Path,
) -> None:
    f = Fleet(tmp_path)
    f("add", "job/a", "--param", "host=web1")
    f("add", "kvm_host/node3", "--param", "host=node3")
    f("fire", "kvm_host/node3", "validate")  # a built-in kind, seeded by its pack
    out, err = f("fire", "job/a", "go", "--param", "peer=job/ghost", code=1)
    assert "failed at step there" in out + err
    assert f"host 'ghost' {HINT}" in out + err
    world = f.hosts()
    assert {"web1", "node3"} <= world and "ghost" not in world  # nothing was made up
    log = json.loads(f("sim", "log", "--json")[0])["effects"]
    assert [e["host"] for e in log if "there_a" in json.dumps(e)] == []
    # a resource for the host: the next command finds it in the datacenter
    f("add", "job/ghost")
    f("fire", "job/a", "reset")
    f("fire", "job/a", "go", "--param", "peer=job/ghost")
    assert "ghost" in f.hosts()
    assert json.loads(f("status", "job/a", "--json", code=None)[0])[0]["state"] == "done"


def test_a_host_dropped_from_the_world_is_unreachable_not_made_up_again(
    tmp_path: Path,
) -> None:
    f = Fleet(tmp_path)
    f("add", "job/a", "--param", "host=web1")
    f("add", "job/b", "--param", "host=web2")
    f("fire", "job/a", "go", "--param", "peer=job/b")
    f.drop_host("web2")
    f("fire", "job/b", "go", "--param", "peer=job/a", code=1)  # its own host is gone
    out, _ = f("status", "job/b", "--json", code=None)  # (its exit code says attention)
    assert json.loads(out)[0]["state"] == "broken"
    assert "web2" not in f.hosts()


def test_a_large_journal_is_seeded_once_then_only_what_is_new(tmp_path: Path) -> None:
    f = Fleet(tmp_path)
    f("add", "job/n[1-10000]")
    head = f.head()
    f("fire", "job/n1", "go", "--param", "peer=job/n2")
    assert len(f.hosts()) == 10_000
    assert f.setting("seeded_seq") == str(head)  # seeded through the head it saw
    assert f.setting("twin") == "1"
    # Had the next command rescanned the journal, it would put n5000 back.
    f.drop_host("n5000")
    f("add", "job/extra")
    head = f.head()
    out, err = f("fire", "job/extra", "go", "--param", "peer=job/n5000", code=1)
    assert f"host 'n5000' {HINT}" in out + err
    # seeded through the head (and, looking for n5000 once more, the fire's own events)
    assert int(f.setting("seeded_seq") or 0) >= head
    hosts = f.hosts()
    assert "extra" in hosts and "n5000" not in hosts and len(hosts) == 10_000
