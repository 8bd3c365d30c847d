"""exascale_cluster on the sim: "Configure Exascale Storage on Cell Servers" end to end,
the EGS rule, every non-EGS host configured even when the cells were already done (the
seed's second bug), a second deploy that changes nothing, strict reverse undo, and a
full rack (14 cells, 8 KVM hosts): the member lists have no fixed size."""

from __future__ import annotations

import pytest

from fleetlog.engine.backends.sim import Fault
from fleetlog.machines.exascale_inventory import egs_placement
from fleetlog.machines.sim.scenarios import exascale_rack
from tests.machines.conftest import CLUSTER_TOML, Lab, step_events

CHILDREN = [
    "cell/cell1",
    "cell/cell2",
    "cell/cell3",
    "kvm_host/node1",
    "kvm_host/node2",
    "kvm_host/node3",
]


def _deployed(lab: Lab) -> None:
    lab.load(CLUSTER_TOML)
    out = lab.fire("exascale_cluster/exa", "deploy")
    assert out.status == "completed" and out.state == "configured", out


def _ran(lab: Lab, rid: str) -> list[str]:
    """Steps of the latest run of ``rid`` that started (ran or ensured)."""
    return [e.payload["step"] for e in lab.last_run(rid) if e.type == "step.started"]


def test_deploy_configures_cells_egs_hosts_other_hosts_then_wallet_and_vaults(
    bare_rack: Lab,
) -> None:
    _deployed(bare_rack)

    assert _ran(bare_rack, "exascale_cluster/exa") == [
        "cells",
        "egs_hosts",
        "hosts",
        "db_wallet",
        "gi_vault",
        "db_vault",
        "validate",
    ]
    outputs = {
        e.payload["step"]: e.payload["output"].splitlines()
        for e in bare_rack.last_run("exascale_cluster/exa")
        if e.type == "step.succeeded"
    }
    assert outputs["cells"] == [f"cell/cell{i} reached online" for i in (1, 2, 3)]
    assert outputs["egs_hosts"] == [f"kvm_host/node{i} reached exascale_ready" for i in (1, 2)]
    assert outputs["hosts"] == [
        "kvm_host/node1 already exascale_ready",  # an EGS host, configured the step before
        "kvm_host/node2 already exascale_ready",
        "kvm_host/node3 reached exascale_ready",
    ]
    for rid in CHILDREN:
        assert bare_rack.state(rid) in ("online", "exascale_ready"), rid
    assert bare_rack.state("kvm_host/node4") == "discovered"  # not in the cluster
    # Five EGS instances: the three cells and node1, node2 (3 cells < 5).
    for cell in ("cell1", "cell2", "cell3"):
        assert "egs_cell online" in bare_rack.sim.run(cell, "escli lsservice").stdout
    for node, egs in (("node1", True), ("node2", True), ("node3", False)):
        listing = bare_rack.sim.run(node, "escli lsservice").stdout
        assert ("egs_compute online" in listing) is egs, node
        assert "edv online" in listing
    trigger = {
        rid: next(e for e in bare_rack.events(rid) if e.type == "command.accepted")
        for rid in ("kvm_host/node1", "kvm_host/node3")
    }
    assert trigger["kvm_host/node1"].payload["trigger"] == "configure_egs"
    assert trigger["kvm_host/node3"].payload["trigger"] == "configure_exascale"
    # Each child's configuration names the cluster step that caused it.
    started = {
        e.payload["step"]: e.event_id
        for e in bare_rack.last_run("exascale_cluster/exa")
        if e.type == "step.started"
    }
    assert trigger["kvm_host/node1"].causation_id == started["egs_hosts"]
    assert trigger["kvm_host/node3"].causation_id == started["hosts"]
    assert bare_rack.sim.run("cell1", "escli lsvault").stdout == "givault\ndbvault\n"


def test_a_second_deploy_changes_nothing(bare_rack: Lab) -> None:
    _deployed(bare_rack)
    before = bare_rack.effects(), bare_rack.sim.world.snapshot()
    versions = {rid: bare_rack.runner.load(rid).version for rid in CHILDREN}

    out = bare_rack.fire("exascale_cluster/exa", "deploy")

    assert out.status == "completed", out
    run = bare_rack.last_run("exascale_cluster/exa")
    for e in run:
        if e.type == "step.succeeded" and e.payload["step"] != "validate":
            assert " already " in e.payload["output"], e.payload  # an ensure found it done
    skipped = {e.payload["step"]: e.payload["reason"] for e in run if e.type == "step.skipped"}
    assert {s: r for s, r in skipped.items() if r == "check"} == {
        "db_wallet": "check",
        "gi_vault": "check",
        "db_vault": "check",
    }
    assert (bare_rack.effects(), bare_rack.sim.world.snapshot()) == before
    # The children were not even fired again.
    assert {rid: bare_rack.runner.load(rid).version for rid in CHILDREN} == versions


def test_hosts_are_configured_even_when_the_cells_already_are(bare_rack: Lab) -> None:
    """The seed's second bug: install.sh skipped the remaining computes because
    isCellServersReadyForExascaleDeployment held. Here each host is its own step."""
    bare_rack.load(CLUSTER_TOML)
    for cell in ("cell1", "cell2", "cell3"):
        assert bare_rack.fire(f"cell/{cell}", "deploy").ok

    out = bare_rack.fire("exascale_cluster/exa", "deploy")

    assert out.status == "completed", out
    run = bare_rack.last_run("exascale_cluster/exa")
    assert [
        e.payload["output"] for e in step_events(run, "cells") if e.type == "step.succeeded"
    ] == ["cell/cell1 already online\ncell/cell2 already online\ncell/cell3 already online\n"]
    assert bare_rack.state("kvm_host/node3") == "exascale_ready"
    assert "edv online" in bare_rack.sim.run("node3", "escli lsservice").stdout


def test_undeploy_undoes_strictly_in_reverse(bare_rack: Lab) -> None:
    _deployed(bare_rack)
    mark = len(bare_rack.effects())

    out = bare_rack.fire("exascale_cluster/exa", "undeploy")

    assert out.status == "completed" and out.state == "defined", out
    assert _ran(bare_rack, "exascale_cluster/exa") == [
        "undo_db_vault",
        "undo_gi_vault",
        "undo_db_wallet",
        "undo_hosts",
        "undo_cells",
    ]
    hosts_in_order: list[str] = []
    for host, _effect in bare_rack.effects()[mark:]:
        if not hosts_in_order or hosts_in_order[-1] != host:
            hosts_in_order.append(host)
    assert hosts_in_order == ["cell1", "node3", "node2", "node1", "cell3", "cell2", "cell1"]
    vault_effects = [e for h, e in bare_rack.effects()[mark:] if h == "cell1"][:3]
    assert vault_effects == [
        "vault dbvault removed",
        "vault givault removed",
        "database wallet /etc/oracle/exascale/dbwallet removed",
    ]
    for rid in CHILDREN:
        assert bare_rack.state(rid) in ("discovered", "ready"), rid


def test_a_failed_deploy_undoes_its_own_steps_in_reverse(bare_rack: Lab) -> None:
    bare_rack.load(CLUSTER_TOML)
    for cell in ("cell1", "cell2", "cell3"):
        assert bare_rack.fire(f"cell/{cell}", "deploy").ok
    for node in ("node1", "node2"):
        assert bare_rack.fire(f"kvm_host/{node}", "configure_egs").ok
    assert bare_rack.fire("kvm_host/node3", "configure_exascale").ok
    # The cluster's escli calls on cell1 from here: lsdbwallet, mkdbwallet, lsvault,
    # mkvault (gi), lsvault, mkvault (db) — the sixth fails.
    bare_rack.sim.world.inject(
        Fault("escli", mode="fail_nth", n=6, host="cell1", message="ESCLI: storage pool is full")
    )
    mark = len(bare_rack.effects())

    out = bare_rack.fire("exascale_cluster/exa", "deploy")

    assert out.status == "failed" and out.state == "failed" and out.step == "db_vault", out
    assert "storage pool is full" in (out.error or "")
    assert [e for _h, e in bare_rack.effects()[mark:]] == [
        "database wallet /etc/oracle/exascale/dbwallet created",
        "vault givault created",
        "vault givault removed",
        "database wallet /etc/oracle/exascale/dbwallet removed",
    ]
    assert bare_rack.state("cell/cell1") == "online"  # children stay configured
    # Deploy again once the pool has room: it completes.
    assert bare_rack.fire("exascale_cluster/exa", "deploy").status == "completed"


@pytest.mark.parametrize(
    ("cells", "hosts", "egs_cells", "egs_hosts"),
    [
        (1, 4, 1, 4),
        (2, 3, 2, 3),
        (3, 8, 3, 2),
        (4, 2, 4, 1),
        (5, 2, 5, 0),
        (7, 1, 5, 0),
        (14, 8, 5, 0),
    ],
)
def test_the_inventory_places_the_egs_instances_by_the_rule(
    bare_rack: Lab, cells: int, hosts: int, egs_cells: int, egs_hosts: int
) -> None:
    cell_names = [f"cell{i}" for i in range(1, cells + 1)]
    host_names = [f"node{i}" for i in range(1, hosts + 1)]
    egs = egs_placement(cell_names, host_names)
    assert (len(egs[0]), len(egs[1])) == (egs_cells, egs_hosts)
    bare_rack.load(
        "[defaults.cell]\nhost = '{name}'\n[defaults.kvm_host]\nhost = '{name}'\n"
        f'[cell."cell[1-{cells}]"]\n[kvm_host."node[1-{hosts}]"]\n'
        f'[exascale_cluster.exa]\ncells = "cell[1-{cells}]"\nhosts = "node[1-{hosts}]"\n'
    )
    params = bare_rack.runner.load("exascale_cluster/exa").params
    assert params["cells"] == [f"cell/{c}" for c in cell_names]
    assert params["leader"] == "cell/cell1"
    assert params["hosts"] == [f"kvm_host/{h}" for h in host_names]
    assert params["egs_hosts"] == [f"kvm_host/{h}" for h in egs[1]]
    for h in host_names:
        assert bare_rack.runner.load(f"kvm_host/{h}").params["egs"] is (h in egs[1])
    for c in cell_names:
        assert bare_rack.runner.load(f"cell/{c}").params["egs"] is (c in egs[0])


def test_a_full_rack_deploys_and_undeploys(lab: Lab) -> None:
    """14 storage cells and 8 KVM hosts: more than the eight slots the cluster once had."""
    exascale_rack(lab.sim.world, computes=8, configured=(), guests={}, cells=14)
    lab.load(
        "[defaults.cell]\nhost = '{name}'\n[defaults.kvm_host]\nhost = '{name}'\n"
        '[cell."cell[1-14]"]\n[kvm_host."node[1-8]"]\n'
        '[exascale_cluster.rack]\ncells = "cell[1-14]"\nhosts = "node[1-8]"\n'
    )
    out = lab.fire("exascale_cluster/rack", "deploy")
    assert out.status == "completed" and out.state == "configured", out
    for i in range(1, 15):
        assert lab.state(f"cell/cell{i}") == "online"
        listing = lab.sim.run(f"cell{i}", "escli lsservice").stdout
        assert ("egs_cell online" in listing) is (i <= 5), i
    for i in range(1, 9):
        assert lab.state(f"kvm_host/node{i}") == "exascale_ready"
        assert "egs_compute" not in lab.sim.run(f"node{i}", "escli lsservice").stdout
    out = lab.fire("exascale_cluster/rack", "undeploy")
    assert out.status == "completed" and out.state == "defined", out
    undone = [
        e.stream
        for rid in [f"cell/cell{i}" for i in range(1, 15)]
        for e in lab.events(rid)
        if e.type == "transition.completed" and e.payload["trigger"] == "unconfigure"
    ]
    assert sorted(undone) == sorted(f"cell/cell{i}" for i in range(1, 15))
    # the leader cell is unconfigured last of all
    last = {
        rid: max(
            e.seq
            for e in lab.events(rid)
            if e.type == "transition.completed" and e.payload["trigger"] == "unconfigure"
        )
        for rid in [f"cell/cell{i}" for i in range(1, 15)]
    }
    assert max(last, key=lambda r: last[r]) == "cell/cell1"
    assert sorted(last, key=lambda r: last[r]) == [f"cell/cell{i}" for i in range(14, 0, -1)]
