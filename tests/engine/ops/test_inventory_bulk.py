"""Inventories loaded in bulk: one validation pass, then a few large transactions;
loading again creates nothing, and a load killed part-way completes when run again."""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.engine.model import KindRegistry, load_registry, replay_all
from fleetlog.engine.ops import created_event
from fleetlog.engine.ops.inventory import BULK_READ, InventoryError, load
from fleetlog.engine.ops.resources import CREATE_CHUNK
from fleetlog.journal import NewEvent, open_journal
from fleetlog.journal.base import Journal
from tests.engine.cli.clirun import fleetlog_cmd

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "exascale.toml"

BOX = """\
machine box "A resource with one parameter" {
    param host: str
    initial state new
    state done
    transition go : new -> done {
        step s1 run "true" idempotent
    }
}
"""


@pytest.fixture(scope="module")
def registry() -> KindRegistry:
    return load_registry()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = open_journal(str(tmp_path / "j.db"))
    yield j
    j.close()


def _created_payloads(journal: Journal) -> dict[str, dict[str, object]]:
    return {e.stream: e.payload for e in journal.read_all() if e.type == "resource.created"}


def test_bulk_created_events_are_those_created_one_by_one(
    journal: Journal, registry: KindRegistry
) -> None:
    """The inventory journals the parameters it resolved in its validation pass: exactly
    what ``created_event`` makes of them, as when resources were created one by one."""
    result = load(EXAMPLE, journal, registry)
    payloads = _created_payloads(journal)
    assert sorted(payloads) == sorted(result.created) and len(result.created) == 32
    for rid, payload in payloads.items():
        params: dict[str, object] = payload["params"]  # type: ignore[assignment]
        given = {k: v for k, v in params.items() if v is not None}
        assert created_event(registry, rid, given).payload == payload
    assert journal.verify().ok


@pytest.mark.parametrize("hosts", [10, BULK_READ + 200], ids=["stream-reads", "bulk-read"])
def test_loading_again_creates_nothing_and_sees_changed_parameters(
    tmp_path: Path, journal: Journal, registry: KindRegistry, hosts: int
) -> None:
    """Both ways of reading what is there already (one stream at a time, or one pass
    over the parameters of every resource) give the same answers."""
    text = (
        f'[kvm_host."n[1-{hosts}]"]\nhost = "{{name}}.example.com"\n\n'
        '[vm."g[1-10]"]\nhost = "n{index}"\nstorage = "asm"\n'
    )
    inventory = tmp_path / "inv.toml"
    inventory.write_text(text)
    first = load(inventory, journal, registry)
    assert len(first.created) == hosts + 10 and first.skipped == []
    head = journal.head()
    again = load(inventory, journal, registry)
    assert again.created == [] and sorted(again.skipped) == sorted(first.created)
    assert journal.head() == head
    # attributes set since (folded as replay folds them) are what the file is compared with
    journal.append("kvm_host/n5", [NewEvent("attributes.set", {"values": {"egs": True}})])
    with pytest.raises(InventoryError, match=r"kvm_host/n5 already exists with other param"):
        load(inventory, journal, registry)
    journal.append("kvm_host/n5", [NewEvent("attributes.set", {"values": {"egs": False}})])
    assert load(inventory, journal, registry).created == []
    inventory.write_text(text.replace('storage = "asm"', 'storage = "exascale"'))
    with pytest.raises(InventoryError, match=r"vm/g1 already exists with other parameters"):
        load(inventory, journal, registry)
    assert journal.head() == head + 2
    records = replay_all(journal, registry)
    assert len(records) == hosts + 10 and journal.verify().ok


def test_each_chunk_of_a_load_is_one_transaction(
    tmp_path: Path, journal: Journal, registry: KindRegistry
) -> None:
    """A load is written in transactions of ``CREATE_CHUNK`` resources: each all or
    nothing (a load killed part-way leaves whole chunks), and few commits."""
    n = CREATE_CHUNK * 2 + 10
    inventory = tmp_path / "inv.toml"
    inventory.write_text(f'[kvm_host."n[1-{n}]"]\nhost = "{{name}}"\n')
    commits = journal.stats.commits
    result = load(inventory, journal, registry)
    assert len(result.created) == n and journal.head() == n
    assert journal.stats.commits == commits + 3
    events = list(journal.read_all())
    assert [e.stream for e in events] == result.created  # in file order, one each
    assert len({e.recorded_at for e in events}) == n  # each its own append, as one by one
    assert load(inventory, journal, registry).created == []
    assert journal.stats.commits == commits + 3 and journal.verify().ok


def test_a_load_leaves_the_cycle_collector_as_it_found_it(
    tmp_path: Path, journal: Journal, registry: KindRegistry
) -> None:
    """The collector is paused while a load builds its objects, and only then."""
    inventory = tmp_path / "inv.toml"
    inventory.write_text('[kvm_host."n[1-3]"]\nhost = "{name}"\n')
    assert gc.isenabled()
    assert len(load(inventory, journal, registry).created) == 3
    assert gc.isenabled()
    inventory.write_text('[kvm_host."m[1-3]"]\nhost = "{nom}"\n')
    with pytest.raises(InventoryError, match="unknown placeholder"):
        load(inventory, journal, registry)
    assert gc.isenabled()
    gc.disable()
    try:
        inventory.write_text('[kvm_host."k[1-3]"]\nhost = "{name}"\n')
        assert len(load(inventory, journal, registry).created) == 3
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_an_orphan_stream_is_adopted_by_the_bulk_load(
    tmp_path: Path, journal: Journal, registry: KindRegistry
) -> None:
    journal.append("kvm_host/n2", [NewEvent("drift.detected", {"class": "orphan"})])
    inventory = tmp_path / "inv.toml"
    inventory.write_text('[kvm_host."n[1-3]"]\nhost = "{name}"\n')
    assert load(inventory, journal, registry).created == [f"kvm_host/n{i}" for i in (1, 2, 3)]
    records = replay_all(journal, registry)
    assert (records["kvm_host/n2"].state, records["kvm_host/n2"].version) == ("discovered", 2)
    assert load(inventory, journal, registry).created == []


def _events(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    except sqlite3.OperationalError:
        return 0
    try:
        return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0
    finally:
        conn.close()


def test_a_load_killed_part_way_completes_when_run_again(tmp_path: Path) -> None:
    """SIGKILL the real CLI once its first batch is durable, then load again: every
    resource is there exactly once and the journal verifies."""
    total = 60_000
    machines = tmp_path / "machines"
    machines.mkdir()
    (machines / "box.fsm").write_text(BOX)
    inventory = tmp_path / "inv.toml"
    inventory.write_text(f'[box."b[1-{total}]"]\nhost = "h{{index}}"\n')
    db = tmp_path / "j.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    env.update(FLEETLOG_MACHINES=str(machines), FLEETLOG_JOURNAL=str(db))
    cmd = [*fleetlog_cmd(), "inventory", "load", str(inventory), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while _events(db) == 0 and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    written = _events(db)
    assert proc.returncode == -signal.SIGKILL, "the load finished before it was killed"
    assert 0 < written < total
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert len(result["skipped"]) == written and len(result["created"]) == total - written
    assert _events(db) == total
    status = subprocess.run(
        [*fleetlog_cmd(), "status", "--json"], env=env, capture_output=True, text=True
    )
    rows = json.loads(status.stdout)
    assert sorted(r["id"] for r in rows) == sorted(f"box/b{i}" for i in range(1, total + 1))
    assert {r["params"]["host"] for r in rows if r["id"] == "box/b77"} == {"h77"}
    verify = subprocess.run([*fleetlog_cmd(), "verify"], env=env, capture_output=True, text=True)
    assert verify.returncode == 0, verify.stderr
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert json.loads(again.stdout)["created"] == [] and _events(db) == total
