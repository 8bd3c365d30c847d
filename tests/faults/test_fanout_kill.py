"""A 1,000-member fan-out killed (SIGKILL) at ten random points, then ``resume --all``.

Before fan-outs were journaled plans, resume finished only the members that were in
flight and left the never-started ones untouched. Now every member of the plan ends
completed, or needing attention with a reason (its non-idempotent step was started and
its outcome never recorded); an operator settles those from the world's own evidence, a
second ``resume --all`` finishes them, and each member's counter moved exactly once.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest

from fleetlog.engine.model import load_registry
from fleetlog.engine.runtime import Runner
from fleetlog.journal import open_journal
from tests.engine.conftest import CRASH_ENV, Fleet
from tests.faults.conftest import healthy, machines

MEMBERS = 1000
KILLS = 10
PG_KILLS = 3
SEED = 16  # the kill points are random, and the same in every run of the suite

NODE = """
machine fnode {
    param host: str = "rack1"
    initial state down
    state up
    transition boot : down -> up {
        step mark  run "touch_flag {name}" idempotent
        step count run "counter {name}"
    }
}
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A journal holding the 1,000 nodes, made once and copied for every kill."""
    root = tmp_path_factory.mktemp("fanout-template")
    return root


def _prepare(fleet: Fleet) -> None:
    machines(fleet, fnode=NODE)
    (fleet.root / "nodes.toml").write_text(f'[fnode."n[1-{MEMBERS}]"]\n')
    assert fleet.cli("inventory", "load", "nodes.toml").code == 0


def _counts(fleet: Fleet) -> dict[str, int]:
    found: dict[str, int] = {}
    for entry in fleet.sim.world.log_entries():
        if entry.effect.startswith("counter "):
            name = entry.effect.split()[1]
            found[name] = found.get(name, 0) + 1
    return found


def _settle(fleet: Fleet) -> int:
    """What an operator does for each member that needs attention: look at the world
    (did its counter move?) and say so with ``resolve``. Returns how many."""
    registry = load_registry()
    journal = open_journal(fleet.journal_path)
    sim = fleet.sim
    try:
        runner = Runner(journal, registry, sim)
        counts = _counts(fleet)
        settled = 0
        for rid in journal.streams("fnode/"):
            rec = runner.load(rid)
            if rec.attention is None:
                continue
            assert rec.attention["step"] == "count", rec.attention
            assert "fleetlog resolve" in rec.attention["reason"]
            took = counts.get(rec.name, 0) == 1
            runner.resolve(rid, "count", "done" if took else "retry", "read the counter")
            settled += 1
        return settled
    finally:
        journal.close()


@pytest.mark.parametrize("kill", range(KILLS))
def test_a_killed_fan_out_is_finished_by_resume(
    sqlite_fleet: Fleet, template: Path, kill: int
) -> None:
    fleet = sqlite_fleet
    if not (template / "j.db").exists():
        _prepare(fleet)
        fleet.close()
        shutil.copy(fleet.root / "j.db", template / "j.db")
        shutil.copytree(fleet.root / "machines", template / "machines")
    else:
        shutil.copy(template / "j.db", fleet.root / "j.db")
        shutil.copytree(template / "machines", fleet.root / "machines")
        fleet.use_machines(fleet.root / "machines")
    _kill_and_finish(fleet, random.Random(SEED * 100 + kill))


@pytest.mark.parametrize("kill", range(PG_KILLS))
def test_a_killed_fan_out_on_postgresql_is_finished_by_resume(pg_fleet: Fleet, kill: int) -> None:
    """The same on a PostgreSQL journal, at fewer points."""
    _prepare(pg_fleet)
    _kill_and_finish(pg_fleet, random.Random(SEED * 1000 + kill))


def _kill_and_finish(fleet: Fleet, rng: random.Random) -> None:
    # ~4 counted events per member (see the crash harness): anywhere in the run
    point = rng.randrange(1, 4 * MEMBERS)
    killed = fleet.sub(
        "fire", f"fnode/n[1-{MEMBERS}]", "boot", "--parallel", "16", **{CRASH_ENV: str(point)}
    )
    assert killed.code == -9, (point, killed.err[-500:])
    plan_line = next(line for line in killed.err.splitlines() if "plan " in line)
    plan_id = plan_line.split("plan ", 1)[1].split(":", 1)[0]

    resumed = fleet.sub("resume", "--all")
    assert resumed.code in (0, 3), resumed.err[-2000:]
    status = fleet.status()
    assert len(status) == MEMBERS
    for rid, row in status.items():  # nothing silently left behind
        assert row["state"] == "up" or row["needs_attention"] is not None, (point, rid, row)
    assert all(n == 1 for n in _counts(fleet).values())  # at most once, so far

    if _settle(fleet):
        again = fleet.sub("resume", "--all")
        assert again.code == 0, again.err[-2000:]
    status = fleet.status()
    assert {row["state"] for row in status.values()} == {"up"}
    counts = _counts(fleet)
    assert len(counts) == MEMBERS and set(counts.values()) == {1}  # exactly once each
    plan = fleet.cli("status", "--plan", plan_id, "--json").json()
    assert plan["counts"]["done"] == MEMBERS and plan["finished"]
    healthy(fleet)
