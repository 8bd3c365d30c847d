"""``fleetlog fire PATTERN``: dry runs, parallelism, the failure budget, grouped
summaries and the JSON output."""

from __future__ import annotations

import pytest

from fleetlog.engine.model import load_registry
from fleetlog.engine.ops import create_resource
from tests.engine.conftest import Fleet

FAN = """
machine fan {
    param host: str = "fh"
    param doomed: bool = false

    initial state new
    state done
    state broken : error

    transition go : new -> done {
        step mark  run "touch_flag {name}" idempotent check "flag {name}"
        step maybe run "fail doomed" when doomed
        on failure -> broken
    }
}
"""


@pytest.fixture
def fan(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "fan.fsm").write_text(FAN)
    fleet.use_machines(d)
    return fleet


def add(fleet: Fleet, names: range, **params: object) -> None:
    registry = load_registry()
    for i in names:
        create_resource(fleet.journal, registry, f"fan/n{i}", params)


def test_dry_run_on_100_resources_journals_and_changes_nothing(fan: Fleet):
    add(fan, range(1, 101))
    fan.sim.world.set_host_state("fh", {"flags": {"n7": True}})
    head = fan.journal.head()
    log = fan.sim.world.log_entries()
    res = fan.cli("fire", "fan/n[1-100]", "go", "--dry-run")
    assert res.code == 0, res.err
    assert fan.journal.head() == head
    assert fan.sim.world.log_entries() == log
    assert fan.sim.world.snapshot() == {"fh": {"flags": {"n7": True}}}
    lines = res.out.splitlines()
    # Each resource: a header saying what this is, a column header, one row per step.
    headers = [line for line in lines if not line.startswith(" ")]
    assert len(headers) == 100
    assert all(" go: new -> done (dry run: read-only probes only" in h for h in headers)
    plan: dict[str, list[list[str]]] = {}
    current = ""
    for line in lines:
        if not line.startswith(" "):
            current = line.split()[0]
            plan[current] = []
        elif line.split()[0] != "would":
            plan[current].append(line.split()[:2] if "skip" not in line else line.split()[:3])
    assert len(plan) == 100
    assert plan["fan/n1"] == [["run", "mark"], ["skip", "(when)", "maybe"]]
    assert plan["fan/n7"] == [["skip", "(check)", "mark"], ["skip", "(when)", "maybe"]]
    assert "touch_flag n1" in next(line for line in lines if "mark" in line)
    assert {rid: row["state"] for rid, row in fan.status().items()} == {
        f"fan/n{i}": "new" for i in range(1, 101)
    }


def test_dry_run_json(fan: Fleet):
    add(fan, range(1, 3))
    res = fan.cli("fire", "fan/n[1-2]", "go", "--dry-run", "--json")
    assert res.code == 0
    data = res.json()
    assert sorted(data) == ["fan/n1", "fan/n2"]
    assert data["fan/n2"][0] == {
        "step": "mark",
        "action": "run",
        "would": "run",
        "detail": "touch_flag n2",
    }


def test_identical_outcomes_are_grouped(fan: Fleet):
    add(fan, range(1, 5))
    add(fan, range(5, 7), doomed=True)
    res = fan.cli("fire", "fan/n[1-6]", "go", "--parallel", "3")
    assert res.code == 1
    lines = res.out.strip().splitlines()
    assert lines[0] == "fan/n[1-4] (4): completed -> done"
    assert len(lines) == 2
    assert lines[1] == "fan/n[5-6] (2): failed at step maybe -> broken: exit 1 on fh: doomed"
    assert all(
        fan.status()[f"fan/n{i}"]["state"] == ("done" if i < 5 else "broken") for i in range(1, 7)
    )
    assert fan.effects() == {("fh", f"flag n{i} set"): 1 for i in range(1, 7)}


def test_max_fail_stops_starting_new_resources(fan: Fleet):
    add(fan, range(1, 11), doomed=True)
    res = fan.cli("fire", "fan/n[1-10]", "go", "--parallel", "1", "--max-fail", "20")
    assert res.code == 1
    lines = res.out.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].endswith(" (7): not started (--max-fail reached)")
    assert lines[1].endswith(" (3): failed at step maybe -> broken: exit 1 on fh: doomed")
    status = fan.status()
    broken = {rid for rid, row in status.items() if row["state"] == "broken"}
    assert len(broken) == 3
    assert {rid for rid, row in status.items() if row["state"] == "new"} == set(status) - broken
    # nothing happened to the resources never started
    assert fan.effects() == {("fh", f"flag {rid[4:]} set"): 1 for rid in broken}


def test_max_fail_json_reports_the_not_started(fan: Fleet):
    add(fan, range(1, 11), doomed=True)
    res = fan.cli("fire", "fan/n[1-10]", "go", "--parallel", "2", "--max-fail", "20", "--json")
    assert res.code == 1
    data = res.json()
    assert sorted(data) == ["groups", "not_started", "outcomes", "plan", "stopped"]
    assert data["stopped"]["command"] == f"fleetlog resume --plan {data['plan']} --accept-failures"
    assert data["plan"] and f"plan {data['plan']}: go on 10 resources" in res.err
    started = [o["resource"] for o in data["outcomes"]]
    assert 3 <= len(started) <= 4  # the budget is checked as each one finishes
    assert len(started) + len(data["not_started"]) == 10
    assert set(started).isdisjoint(data["not_started"])
    for o in data["outcomes"]:
        assert sorted(o) == ["error", "resource", "state", "status", "step", "trigger"]
        assert (o["trigger"], o["status"], o["state"], o["step"]) == (
            "go",
            "failed",
            "broken",
            "maybe",
        )
        assert o["error"] == "exit 1 on fh: doomed"
    groups = {g["outcome"]: g["resources"] for g in data["groups"]}
    assert groups["not started (--max-fail reached)"] == data["not_started"]


def test_json_output_of_a_successful_fan_out(fan: Fleet):
    add(fan, range(1, 5))
    res = fan.cli("fire", "fan/n[1-4]", "go", "--json")
    assert res.code == 0
    data = res.json()
    assert data["not_started"] == []
    assert data["groups"] == [
        {"outcome": "completed -> done", "resources": [f"fan/n{i}" for i in range(1, 5)]}
    ]
    assert [o["resource"] for o in data["outcomes"]] == [f"fan/n{i}" for i in range(1, 5)]
    assert {(o["status"], o["state"], o["step"], o["error"]) for o in data["outcomes"]} == {
        ("completed", "done", "maybe", None)
    }
