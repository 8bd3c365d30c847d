"""cell on the sim: a fresh cell deployed end to end; a second deploy skips every step
that changes the cell by its check (the validations, read-only, look again) and changes
nothing; a service that needs two tries; bad celldisks; unconfigure."""

from __future__ import annotations

from fleetlog.machines.sim.scenarios import flaky_service
from fleetlog.machines.sim.tools import cell_state
from tests.machines.conftest import Lab, step_events

VALIDATIONS = {"celldisks", "ready", "space", "serving"}


def _deploy_leader(lab: Lab) -> None:
    lab.add("cell/cell1", host="cell1", leader="cell1", egs=True, cluster="exa")
    out = lab.fire("cell/cell1", "deploy")
    assert out.status == "completed" and out.state == "online", out


def test_a_fresh_cell_is_deployed(bare_rack: Lab) -> None:
    _deploy_leader(bare_rack)

    cell = cell_state.read(bare_rack.sim.world.host_state("cell1"))
    assert cell["egs_cluster"] == "exa"
    assert {s for s, v in cell["services"].items() if v == "online"} == {
        "rs",
        "ms",
        "cellsrv",
        "egs_cell",
        "ers_cell",
        "syseds_cell",
        "usreds_cell",
        "bsm_cell",
        "bsw_cell",
    }  # every service: the cluster is validated only when all are online
    assert cell["pooldisks"]["HardDisk"] and cell["pooldisks"]["FlashDisk"]
    wallet = bare_rack.sim.run("cell1", "escli lswallet").stdout
    assert "user: cellnode" in wallet and "restEndPoint: ers:5052" in wallet
    assert "trustedCerts: 1" in wallet
    assert bare_rack.sim.observe("cell1", "cell", "cell1") == "exascale:online"


def test_a_second_deploy_skips_every_step_by_its_check_and_changes_nothing(
    bare_rack: Lab,
) -> None:
    _deploy_leader(bare_rack)
    before_world, before_state = bare_rack.effects(), bare_rack.sim.world.snapshot()

    out = bare_rack.fire("cell/cell1", "deploy")

    assert out.status == "completed" and out.state == "online", out
    run = bare_rack.last_run("cell/cell1")
    started = next(e for e in run if e.type == "transition.started")
    plan = [s["name"] for s in started.payload["plan"]]
    for step in plan:
        kinds = [(e.type, e.payload.get("reason")) for e in step_events(run, step)]
        if step in VALIDATIONS:
            assert kinds == [("step.started", None), ("step.succeeded", None)], step
        else:
            assert kinds == [("step.skipped", "check")], (step, kinds)
    assert bare_rack.effects() == before_world
    assert bare_rack.sim.world.snapshot() == before_state


def test_a_non_egs_cell_joins_through_the_leader(bare_rack: Lab) -> None:
    _deploy_leader(bare_rack)
    bare_rack.add("cell/cell6", host="cell2", leader="cell1", egs=False, cluster="exa")

    out = bare_rack.fire("cell/cell6", "deploy")

    assert out.status == "completed", out
    run = bare_rack.last_run("cell/cell6")
    for step in ("egs", "root_ca", "start_egs"):
        assert [e.payload.get("reason") for e in step_events(run, step)] == ["when"], step
    assert "wallet trusts certificate from cell1" in [e for _h, e in bare_rack.effects("cell2")]
    assert "egs_cell" not in bare_rack.sim.run("cell2", "escli lsservice").stdout


def test_cellsrv_that_needs_two_tries_is_retried(bare_rack: Lab) -> None:
    flaky_service(bare_rack.sim.world, "cell1", "cellsrv", failures=1)

    _deploy_leader(bare_rack)

    attempts = step_events(bare_rack.events("cell/cell1"), "start_services")
    assert [e.type for e in attempts] == [
        "step.started",
        "step.failed",
        "step.started",
        "step.succeeded",
    ]
    assert "CELLSRV failed to start" in attempts[1].payload["error"]


def test_a_bad_celldisk_stops_the_deploy_before_any_change(bare_rack: Lab) -> None:
    state = bare_rack.sim.world.host_state("cell1")
    state["cell"]["celldisks"]["CD_02"] = "predictive failure"
    bare_rack.sim.world.set_host_state("cell1", state)
    bare_rack.add("cell/cell1", host="cell1", leader="cell1", egs=True)

    out = bare_rack.fire("cell/cell1", "deploy")

    assert out.status == "failed" and out.state == "failed" and out.step == "celldisks"
    assert "CD_02 is predictive failure" in (out.error or "")
    assert bare_rack.effects() == []


def test_not_enough_space_fails_the_validation(bare_rack: Lab) -> None:
    bare_rack.add("cell/cell1", host="cell1", leader="cell1", min_hc_gb=999_999)

    out = bare_rack.fire("cell/cell1", "deploy")

    assert out.status == "failed" and out.step == "space"
    assert "not enough free space: hard disk 4000G < 999999G" in (out.error or "")


def test_unconfigure_reverses_the_deploy(bare_rack: Lab) -> None:
    _deploy_leader(bare_rack)

    out = bare_rack.fire("cell/cell1", "unconfigure")

    assert out.status == "completed" and out.state == "discovered", out
    cell = cell_state.read(bare_rack.sim.world.host_state("cell1"))
    assert cell["egs_cluster"] is None and not any(cell["pooldisks"].values())
    assert bare_rack.sim.observe("cell1", "cell", "cell1") == "exascale:absent"
    assert bare_rack.fire("cell/cell1", "deploy").ok  # and it can be deployed again
