"""Reconciliation an operator can trust with --fix: a failed or empty listing proves
nothing, the simulator proves absence only where it has a view, kinds never bleed into
each other, --fix all never ends a resource, a brake stops mass fixes, --read-only
journals nothing. Real sim tools produce every listing here."""

from __future__ import annotations

from typing import Any

import pytest

from fleetlog.engine.backends.sim import Fault
from fleetlog.engine.model import replay_all
from fleetlog.engine.ops import create_resource
from fleetlog.engine.ops.reconcile import Reconciler, parse_fix
from fleetlog.engine.runtime import Runner
from fleetlog.machines.sim.scenarios import exascale_rack
from tests.engine.conftest import Fleet, compile_kinds

SITE = """
machine site {
    param host: str
    initial state up
    state gone : final
    transition retire : up -> gone
}
"""

BOX = """
machine box {
    param site: ref site
    initial state defined
    state running
    state stopped
    state gone : final
    observe {
        list "vm_maker --list" on site format table columns "name,status"
        owned "box-"
        "running" -> running
        "stopped" -> stopped
    }
    transition adopt : defined -> running
    transition drop : running, stopped -> gone
}
"""


@pytest.fixture
def boxes(fleet: Fleet) -> tuple[Fleet, Any]:
    """Ten running guests box-0..9 on node1, every one in the journal as running."""
    names = [f"box-{i}" for i in range(10)]
    exascale_rack(fleet.sim.world, computes=1, guests={"node1": dict.fromkeys(names, "asm")})
    registry = compile_kinds(SITE, BOX)
    runner = Runner(fleet.journal, registry, fleet.sim)
    create_resource(fleet.journal, registry, "site/s1", {"host": "node1"})
    for name in names:
        create_resource(fleet.journal, registry, f"box/{name}", {"site": "site/s1"})
        assert runner.fire(f"box/{name}", "adopt").ok
    return fleet, registry


def run(fleet: Fleet, registry: Any, *fix: str, **kw: Any) -> Any:
    rec = Reconciler(fleet.journal, registry, fleet.sim, fix=parse_fix(fix), **kw)
    return rec.run_pass()


def states(fleet: Fleet, registry: Any) -> dict[str, str]:
    return {rid: r.state for rid, r in replay_all(fleet.journal, registry).items()}


def test_a_listing_in_step_with_the_journal_is_in_sync(boxes: tuple[Fleet, Any]) -> None:
    fleet, registry = boxes
    report = run(fleet, registry, pattern="box")
    assert (report.checked, report.in_sync, report.findings) == (10, 10, [])


def test_a_failing_listing_yields_only_unknown_and_fixes_nothing(
    boxes: tuple[Fleet, Any],
) -> None:
    fleet, registry = boxes
    before = states(fleet, registry)
    fleet.sim.world.inject(Fault("vm_maker", mode="fail_always", host="node1"))
    report = run(fleet, registry, "all", "stale", pattern="box")
    assert {f.cls for f in report.findings} == {"unknown"}
    assert len(report.findings) == 10 and not any(f.fixed for f in report.findings)
    assert all("listing of site/s1 failed" in (f.unfixable or "") for f in report.findings)
    assert any("the listing of site/s1 is unknown" in n for n in report.notes)
    assert states(fleet, registry) == before
    # Journaled as evidence, never as a change of state.
    kinds = {e.type for e in fleet.journal.read_all() if e.stream.startswith("box/")}
    assert "state.reconciled" not in kinds and "drift.detected" in kinds


def test_an_empty_listing_is_unknown_not_everything_gone(boxes: tuple[Fleet, Any]) -> None:
    fleet, registry = boxes
    state = dict(fleet.sim.world.host_state("node1"))
    state["vms"] = {}
    fleet.sim.world.set_host_state("node1", state)
    report = run(fleet, registry, "stale", pattern="box")
    assert {f.cls for f in report.findings} == {"unknown"}
    assert all("empty" in (f.unfixable or "") for f in report.findings)
    assert set(states(fleet, registry).values()) == {"running", "up"}


def test_the_brake_stops_a_mass_fix_and_says_why(boxes: tuple[Fleet, Any]) -> None:
    fleet, registry = boxes
    for i in range(1, 10):  # nine of ten gone: the backend is more likely broken
        fleet.sim.run("node1", f"vm_maker --delete box-{i}")
    report = run(fleet, registry, "stale", pattern="box")
    assert [f.cls for f in report.findings] == ["stale"] * 9
    assert not any(f.fixed for f in report.findings)
    assert "9 of the 10 box" in report.braked["box"] and "90% > 10%" in report.braked["box"]
    assert all(f.held == report.braked["box"] for f in report.findings)
    assert "gone" not in states(fleet, registry).values()
    # An operator who has looked lifts the brake for this pass.
    lifted = run(fleet, registry, "stale", pattern="box", max_fix_share=1.0)
    assert sum(f.fixed for f in lifted.findings) == 9
    assert list(states(fleet, registry).values()).count("gone") == 9


def test_one_fix_is_always_allowed_and_all_never_ends_a_resource(
    boxes: tuple[Fleet, Any],
) -> None:
    fleet, registry = boxes
    fleet.sim.run("node1", "vm_maker --delete box-3")
    fleet.sim.run("node1", "vm_maker --stop box-4")
    report = run(fleet, registry, "all", pattern="box")
    by = {f.resource: f for f in report.findings}
    assert by["box/box-4"].fixed and by["box/box-4"].fix_to == "stopped"
    stale = by["box/box-3"]
    assert stale.cls == "stale" and not stale.fixed
    assert "name the class (--fix stale)" in (stale.held or "")
    report = run(fleet, registry, "stale", pattern="box")
    assert [(f.resource, f.fixed) for f in report.findings] == [("box/box-3", True)]
    assert states(fleet, registry)["box/box-3"] == "gone"


def test_orphans_come_from_an_owned_listing_and_are_adopted_on_its_target(
    boxes: tuple[Fleet, Any],
) -> None:
    fleet, registry = boxes
    fleet.sim.run("node1", "vm_maker --create box-new --image gold --storage asm")
    fleet.sim.run("node1", "vm_maker --start box-new")
    fleet.sim.run("node1", "vm_maker --create theirs --image gold --storage asm")
    report = run(fleet, registry, "orphan", pattern="box")
    [f] = report.findings
    assert (f.resource, f.cls, f.fixed) == ("box/box-new", "orphan", True)
    assert f.params == {"site": "site/s1"}
    assert any("not fleetlog's" in n and "1 resource" in n for n in report.notes)
    assert "box/theirs" not in states(fleet, registry)


def test_read_only_journals_nothing(boxes: tuple[Fleet, Any]) -> None:
    fleet, registry = boxes
    fleet.sim.run("node1", "vm_maker --stop box-1")
    head = fleet.journal.head()
    report = run(fleet, registry, pattern="box", read_only=True)
    [f] = report.findings
    assert f.cls == "unsynced" and f.detected_seq is None
    assert fleet.journal.head() == head
    with pytest.raises(Exception, match="cannot --fix"):
        run(fleet, registry, "unsynced", pattern="box", read_only=True)


def test_cells_are_not_kvm_hosts_and_an_unviewed_host_is_unknown(fleet: Fleet) -> None:
    exascale_rack(fleet.sim.world, computes=2, cells=3)
    assert fleet.cli("add", "kvm_host/node1", "--param", "host=node1").code == 0
    assert fleet.cli("add", "kvm_host/cell1", "--param", "host=cell1").code == 0
    assert fleet.cli("fire", "kvm_host/cell1", "validate").code == 0
    res = fleet.cli("reconcile", "kvm_host", "--json", "--fix", "all", "--fix", "stale")
    report = res.json()
    orphans = sorted(f["resource"] for f in report["findings"] if f["class"] == "orphan")
    assert orphans == ["kvm_host/node2"]  # node2 is a KVM host; cell1..3 are not
    [cell] = [f for f in report["findings"] if f["resource"] == "kvm_host/cell1"]
    # A kvm_host named after a cell: the sim has no KVM view there, so it cannot say.
    assert cell["class"] == "unknown" and "no view of kvm_host on cell1" in cell["unfixable"]
    assert fleet.status()["kvm_host/cell1"]["state"] == "ready"


def test_the_readmes_first_session_then_fix_all_changes_nothing(fleet: Fleet) -> None:
    assert fleet.cli("add", "kvm_host/node3", "--param", "host=node3").code == 0
    assert fleet.cli("fire", "kvm_host/node3", "validate").code == 0
    before = fleet.status()
    res = fleet.cli("reconcile", "--fix", "all", "--json")
    assert res.code == 0, res.out
    assert res.json()["findings"] == []
    assert fleet.status() == before
