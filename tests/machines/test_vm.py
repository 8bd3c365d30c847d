"""vm on the sim: the seed's clone bug reproduced with a plan that lacks the ensure step,
fixed by the shipped machine; four clones to one host configure it once; the lifecycle;
the observe map for Ganeti statuses."""

from __future__ import annotations

import pytest

from fleetlog import dsl
from fleetlog.engine.model import Kind, KindRegistry
from fleetlog.engine.model.statusmap import map_status
from fleetlog.engine.ops import run_many
from fleetlog.engine.runtime import GuardRefused
from fleetlog.machines.sim.scenarios import ganeti_flip
from fleetlog.machines.sim.tools.vm_maker import not_configured_error
from tests.machines.conftest import REPO, Lab, step_events

CLONE = {"source": "exa1_vm1", "target": "node3"}


def _registry_with_vm(lab: Lab, vm_source: str) -> KindRegistry:
    specs = lab.registry.specs()
    spec, _ = dsl.compile_source(vm_source, filename="vm_without_ensure.fsm")
    specs["vm"] = spec
    return KindRegistry((Kind(s) for s in specs.values()), lab.registry.plugins)


def test_the_seeds_bug_a_clone_without_the_ensure_step_fails_on_node3(seed_rack: Lab) -> None:
    shipped = (REPO / "machines" / "vm.fsm").read_text()
    ensure = """        step exascale        ensure target is exascale_ready via configure_exascale
                             when storage == "exascale"
"""
    assert ensure in shipped
    runner = seed_rack.with_registry(_registry_with_vm(seed_rack, shipped.replace(ensure, "")))
    seed_rack.add("vm/exa1_vm3", host="node3", storage="exascale")

    out = runner.fire("vm/exa1_vm3", "clone", CLONE)

    assert out.status == "failed" and out.state == "ERROR" and out.step == "create"
    assert not_configured_error("exa1_vm3") in (out.error or "")
    assert seed_rack.state("kvm_host/node3") == "discovered"
    assert "exa1_vm3" not in seed_rack.sim.world.host_state("node3").get("vms", {})


def test_the_shipped_clone_configures_node3_on_the_way(seed_rack: Lab) -> None:
    seed_rack.add("vm/exa1_vm3", host="node3", storage="exascale")

    out = seed_rack.fire("vm/exa1_vm3", "clone", **CLONE)

    assert out.status == "completed" and out.state == "ACTIVE", out
    assert seed_rack.state("kvm_host/node3") == "exascale_ready"
    vms = seed_rack.sim.world.host_state("node3")["vms"]
    assert vms["exa1_vm3"] == {
        "status": "running",
        "storage": "exascale",
        "source": "exa1_vm1",
        "deployed": [
            "users",
            "cell_connectivity",
            "config_software",
            "root_script",
            "db_home",
            "db_instance",
        ],
    }
    # The host's configuration was caused by the clone's ensure step.
    ensure_started = step_events(seed_rack.events("vm/exa1_vm3"), "exascale")[0]
    cmd = next(e for e in seed_rack.events("kvm_host/node3") if e.type == "command.accepted")
    assert cmd.payload["trigger"] == "configure_exascale"
    assert cmd.causation_id == ensure_started.event_id


def test_four_clones_to_node3_at_once_configure_it_exactly_once(seed_rack: Lab) -> None:
    for g in range(1, 5):
        seed_rack.add(f"vm/g{g}", host="node3", storage="exascale")

    result = run_many(
        [f"vm/g{g}" for g in range(1, 5)],
        lambda rid: seed_rack.fire(rid, "clone", **CLONE),
        parallel=4,
        progress=False,
    )

    assert [o.status for o in result.outcomes] == ["completed"] * 4, result.outcomes
    node3 = [effect for _host, effect in seed_rack.effects("node3")]
    assert node3.count("edv started") == 1
    assert node3.count("wallet created at /etc/oracle/cell/network-config/eswallet") == 1
    assert sum(1 for e in node3 if e.startswith("cellinit ")) == 1
    starts = [e for e in seed_rack.events("kvm_host/node3") if e.type == "transition.started"]
    assert len(starts) == 1
    assert sorted(seed_rack.sim.world.host_state("node3")["vms"]) == ["g1", "g2", "g3", "g4"]


def test_an_asm_clone_never_touches_exascale(seed_rack: Lab) -> None:
    seed_rack.add("vm/asm1_vm3", host="node3", storage="asm")

    out = seed_rack.fire("vm/asm1_vm3", "clone", source="asm1_vm1", target="node3")

    assert out.status == "completed", out
    skipped = step_events(seed_rack.events("vm/asm1_vm3"), "exascale")
    assert [(e.type, e.payload.get("reason")) for e in skipped] == [("step.skipped", "when")]
    assert seed_rack.state("kvm_host/node3") == "discovered"
    assert not [e for h, e in seed_rack.effects("node3") if not e.startswith("guest ")]


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ({"source": "exa1_vm1", "target": "node4"}, "target == host"),
        ({"source": "asm1_vm1", "target": "node3"}, "source.storage"),
    ],
)
def test_a_clone_onto_another_host_or_storage_is_refused_before_any_effect(
    seed_rack: Lab, params: dict[str, str], why: str
) -> None:
    seed_rack.add("vm/exa1_vm3", host="node3", storage="exascale")
    before = len(seed_rack.events("vm/exa1_vm3"))

    with pytest.raises(GuardRefused, match="guard") as err:
        seed_rack.fire("vm/exa1_vm3", "clone", **params)

    assert why in str(err.value)
    assert len(seed_rack.events("vm/exa1_vm3")) == before
    assert not seed_rack.effects("node3") and not seed_rack.effects("node4")


def test_lifecycle_create_deploy_stop_start_reboot_delete(seed_rack: Lab) -> None:
    seed_rack.add("vm/exa1_vm2", host="node1", storage="exascale")
    steps = [
        ("create", "BUILD"),
        ("deploy", "ACTIVE"),
        ("stop", "STOPPED"),
        ("start", "ACTIVE"),
        ("reboot", "REBOOT"),
        ("settle", "ACTIVE"),
        ("delete", "DELETED"),
    ]
    seen = []
    for trigger, state in steps:
        out = seed_rack.fire("vm/exa1_vm2", trigger)
        assert out.ok, out
        seen.append(seed_rack.state("vm/exa1_vm2"))
        if state == "STOPPED":
            assert seed_rack.sim.observe("node1", "vm", "exa1_vm2") == "stopped"
    assert seen == [s for _, s in steps]
    assert "exa1_vm2" not in seed_rack.sim.world.host_state("node1")["vms"]
    # node1 was configured by the earlier deployment: its configure_exascale was skipped
    # whole by the probe, and the world saw only the guest's own effects.
    done = [e for e in seed_rack.events("kvm_host/node1") if e.type == "transition.completed"]
    assert len(done) == 1 and "edv online" in done[0].payload["output"]
    assert done[0].payload["skipped"].startswith("probe holds")
    assert all("exa1_vm2" in effect for _host, effect in seed_rack.effects("node1"))


def test_create_of_an_exascale_guest_on_a_host_without_edv_fails_in_the_tool(
    seed_rack: Lab,
) -> None:
    result = seed_rack.sim.run("node4", "vm_maker --create x --image gold --storage exascale")
    assert result.exit_code == 1 and result.stderr.strip() == not_configured_error("x")
    assert seed_rack.sim.run("node4", "vm_maker --create y --image gold --storage asm").ok


@pytest.mark.parametrize(
    ("status", "state"),
    [
        ("running", "ACTIVE"),
        ("ADMIN_down", "STOPPED"),
        ("USER_down", "STOPPED"),
        ("ERROR_down", "ERROR"),
        ("ERROR_up", "ACTIVE"),
        ("ERROR_wrongnode", "ERROR"),
        ("ERROR_nodedown", "ERROR"),
        ("ADMIN_offline", "STOPPED"),
    ],
)
def test_a_ganeti_status_changed_behind_our_back_is_observed_and_mapped(
    seed_rack: Lab, status: str, state: str
) -> None:
    ganeti_flip(seed_rack.sim.world, "node1", "exa1_vm1", status)

    assert seed_rack.sim.observe("node1", "vm", "exa1_vm1") == status
    listing = seed_rack.sim.run("node1", "gnt-instance list --no-headers -o name,status")
    assert f"exa1_vm1 {status}\n" in listing.stdout
    assert map_status(seed_rack.registry.get("vm").spec, status) == state
    assert seed_rack.effects("node1") == []  # no tool did it: nothing in the world log
