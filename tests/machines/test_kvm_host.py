"""kvm_host on the sim: the non-EGS path (the seed's configureExascaleOnNonEgsKvmHost),
skipped whole when already configured; the EGS path; the guards that keep them apart;
a service that needs two tries; unconfigure."""

from __future__ import annotations

import pytest

from fleetlog.engine.runtime import GuardRefused
from fleetlog.machines.sim.scenarios import flaky_service
from tests.machines.conftest import Lab, step_events


def test_configure_exascale_sets_up_a_non_egs_host_in_the_seeds_order(seed_rack: Lab) -> None:
    out = seed_rack.fire("kvm_host/node3", "configure_exascale")

    assert out.status == "completed" and out.state == "exascale_ready", out
    effects = [e for _h, e in seed_rack.effects("node3")]
    order = [
        "cellinit",
        "rs restarted",
        "ms started",
        "user kvmnode created",
        "wallet created",
        "wallet user=kvmnode",
        "wallet trusts certificate from node1",
        "bsw_compute started",
        "edv started",
    ]
    positions = [next(i for i, e in enumerate(effects) if e.startswith(o)) for o in order]
    assert positions == sorted(positions)
    assert seed_rack.sim.observe("node3", "kvm_host", "node3") == "exascale:online"


def test_an_already_configured_host_is_skipped_whole(seed_rack: Lab) -> None:
    before = seed_rack.effects()

    out = seed_rack.fire("kvm_host/node1", "configure_exascale")  # the deployment did it

    assert out.status == "skipped" and out.state == "exascale_ready"
    assert not [e for e in seed_rack.last_run("kvm_host/node1") if e.type == "step.started"]
    assert seed_rack.effects() == before


def test_edv_that_needs_two_tries_is_retried(seed_rack: Lab) -> None:
    flaky_service(seed_rack.sim.world, "node3", "edv", failures=1)

    out = seed_rack.fire("kvm_host/node3", "configure_exascale")

    assert out.status == "completed", out
    attempts = step_events(seed_rack.events("kvm_host/node3"), "start_edv")
    assert [(e.type, e.payload["attempt"]) for e in attempts] == [
        ("step.started", 1),
        ("step.failed", 1),
        ("step.started", 2),
        ("step.succeeded", 2),
    ]
    assert "EDV services failed to start" in attempts[1].payload["error"]


def test_the_paths_refuse_the_wrong_kind_of_host(bare_rack: Lab) -> None:
    bare_rack.add("kvm_host/node1", host="node1", egs=True)
    bare_rack.add("kvm_host/node3", host="node3")
    with pytest.raises(GuardRefused, match="not egs"):
        bare_rack.fire("kvm_host/node1", "configure_exascale")
    with pytest.raises(GuardRefused, match="when egs"):
        bare_rack.fire("kvm_host/node3", "configure_egs")
    assert bare_rack.effects() == []


def test_configure_egs_runs_an_egs_instance_with_the_leader_cells_trust(bare_rack: Lab) -> None:
    bare_rack.add("cell/cell1", host="cell1", leader="cell1", egs=True, cluster="exa")
    assert bare_rack.fire("cell/cell1", "deploy").ok
    bare_rack.add("kvm_host/node1", host="node1", egs=True, trust_node="cell1", exa_cluster="exa")

    out = bare_rack.fire("kvm_host/node1", "configure_egs")

    assert out.status == "completed" and out.state == "exascale_ready", out
    services = bare_rack.sim.run("node1", "escli lsservice").stdout
    assert "egs_compute online" in services and "edv online" in services
    effects = [e for _h, e in bare_rack.effects("node1")]
    assert "EGS instance egs_compute created in cluster exa" in effects
    assert "wallet trusts certificate from cell1" in effects
    # An EGS host now holds the root: a non-EGS host can fetch its trust from it.
    assert bare_rack.sim.run("node1", "escli lscert --root").stdout == "exa-root-ca@cell1\n"


def test_unconfigure_takes_exascale_off_the_host(seed_rack: Lab) -> None:
    seed_rack.fire("kvm_host/node3", "configure_exascale")

    out = seed_rack.fire("kvm_host/node3", "unconfigure_exascale")

    assert out.status == "completed" and out.state == "ready", out
    assert seed_rack.sim.observe("node3", "kvm_host", "node3") == "exascale:absent"
    effects = [e for _h, e in seed_rack.effects("node3")]
    assert effects[-3:] == [
        "edv stopped",
        "bsw_compute stopped",
        "wallet /etc/oracle/cell/network-config/eswallet removed",
    ]
