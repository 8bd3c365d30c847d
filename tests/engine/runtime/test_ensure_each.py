"""``ensure each LIST is S via T``: every resource of a ``list[ref]`` param, in order (or
``reversed``), each configured at most once, through the CLI, a failure and a crash."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog.engine.backends.sim import Fault
from tests.engine.conftest import Fleet

NODE = """
machine node {
    param host: str
    initial state bare
    state ready
    transition setup : bare -> ready {
        step flag run "touch_flag configured" idempotent
    }
    transition teardown : ready -> bare {
        step flag run "clear_flag configured" idempotent
    }
}
"""

GROUP = """
machine group {
    param host: str = "g"
    param members: list[ref node] = []
    initial state new
    state up
    state broken : error
    transition deploy : new, broken -> up {
        step first   run "touch_flag deploying" idempotent
        step members ensure each members is ready via setup
        step last    run "touch_flag deployed" idempotent
        on failure -> broken
    }
    transition undeploy : up -> new {
        step members ensure each members reversed is bare via teardown
    }
}
"""


@pytest.fixture
def grp(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "node.fsm").write_text(NODE)
    (d / "group.fsm").write_text(GROUP)
    fleet.use_machines(d)
    for i in (1, 2, 3):
        assert fleet.cli("add", f"node/n{i}", "-p", f"host=h{i}").code == 0
    res = fleet.cli("add", "group/g", "-p", "members=n[1-3]", "--json")
    assert res.code == 0, res.err
    assert res.json()["params"]["members"] == ["node/n1", "node/n2", "node/n3"]
    return fleet


def configured(fleet: Fleet) -> list[str]:
    """Hosts in the order their flag was set or cleared, with what happened."""
    return [
        f"{e.host} {e.effect}"
        for e in fleet.sim.world.log_entries()
        if e.effect in ("flag configured set", "flag configured cleared")
    ]


def test_each_member_in_order_then_reversed(grp: Fleet) -> None:
    res = grp.cli("fire", "group/g", "deploy")
    assert res.code == 0, res.err
    assert configured(grp) == [
        "h1 flag configured set",
        "h2 flag configured set",
        "h3 flag configured set",
    ]
    status = grp.status()
    assert {status[f"node/n{i}"]["state"] for i in (1, 2, 3)} == {"ready"}
    # each member's transition names the ensure step as its cause
    step = next(
        e
        for e in grp.events("group/g")
        if e.type == "step.started" and e.payload["step"] == "members"
    )
    for i in (1, 2, 3):
        started = next(e for e in grp.events(f"node/n{i}") if e.type == "transition.started")
        assert started.causation_id == step.event_id
    done = next(
        e
        for e in grp.events("group/g")
        if e.type == "step.succeeded" and e.payload["step"] == "members"
    )
    assert done.payload["output"].splitlines() == [
        "node/n1 reached ready",
        "node/n2 reached ready",
        "node/n3 reached ready",
    ]
    res = grp.cli("fire", "group/g", "undeploy")
    assert res.code == 0, res.err
    assert configured(grp)[3:] == [
        "h3 flag configured cleared",
        "h2 flag configured cleared",
        "h1 flag configured cleared",
    ]


def test_a_member_already_there_is_not_configured_again(grp: Fleet) -> None:
    assert grp.cli("fire", "node/n2", "setup").code == 0
    assert grp.cli("fire", "group/g", "deploy").code == 0
    assert configured(grp) == [
        "h2 flag configured set",
        "h1 flag configured set",
        "h3 flag configured set",
    ]
    out = next(
        e.payload["output"]
        for e in grp.events("group/g")
        if e.type == "step.succeeded" and e.payload["step"] == "members"
    )
    assert "node/n2 already ready" in out.splitlines()


def test_a_failing_member_fails_the_step_and_stops_the_list(grp: Fleet) -> None:
    grp.sim.world.inject(Fault("touch_flag", mode="fail_always", host="h2"))
    res = grp.cli("fire", "group/g", "deploy")
    assert res.code == 1
    assert configured(grp) == ["h1 flag configured set"]  # n3 never started
    failed = next(e for e in grp.events("group/g") if e.type == "transition.failed")
    assert failed.payload["step"] == "members"
    assert failed.payload["error"].startswith("node/n2 setup failed")
    assert grp.status()["group/g"]["state"] == "broken"
    # once the host behaves, deploying again goes on from where the list stopped
    grp.sim.world.clear_faults()
    assert grp.cli("fire", "group/g", "deploy").code == 0
    assert configured(grp) == [
        "h1 flag configured set",
        "h2 flag configured set",
        "h3 flag configured set",
    ]


def test_a_crash_inside_the_list_resumes_without_repeating_a_member(grp: Fleet) -> None:
    # the process dies right after n2's flag was set, before anything journaled it
    grp.sim.world.inject(Fault("touch_flag", mode="crash_after", n=1, host="h2"))
    res = grp.sub("fire", "group/g", "deploy")
    assert res.code != 0
    status = grp.status()
    assert status["node/n1"]["state"] == "ready"
    assert status["node/n2"]["in_progress"] is not None
    assert status["group/g"]["in_progress"] is not None
    res = grp.cli("resume", "--all")
    assert res.code == 0, res.err
    status = grp.status()
    assert status["group/g"]["state"] == "up"
    assert {status[f"node/n{i}"]["state"] for i in (1, 2, 3)} == {"ready"}
    assert configured(grp) == [
        "h1 flag configured set",
        "h2 flag configured set",
        "h3 flag configured set",
    ]
    assert grp.cli("verify").code == 0


def test_dry_run_names_the_members(grp: Fleet) -> None:
    res = grp.cli("fire", "group/g", "undeploy", "--dry-run", "--json")
    assert res.code == 2  # g is `new`: undeploy is not allowed from there
    res = grp.cli("fire", "group/g", "deploy", "--dry-run", "--json")
    assert res.code == 0, res.err
    steps = {s["step"]: s for s in res.json()["group/g"]}
    assert steps["members"]["detail"] == ("ensure node/n1, node/n2, node/n3 is ready via setup")
    assert grp.journal.head() == 4  # the four resources; the dry run wrote nothing


def test_add_checks_every_member(grp: Fleet, tmp_path: Path) -> None:
    res = grp.cli("add", "group/h", "-p", "members=n1,n9")
    assert res.code == 2
    assert res.err == (
        "fleetlog: error: group/h: members names 'node/n9': no such resource in the journal "
        "(add it first, or load both from one inventory)\n"
    )
    res = grp.cli("add", "group/h", "-p", "members=n1,n1")
    assert res.code == 2 and "listed twice" in res.err
    res = grp.cli("machines", "show", "group")
    assert "param members: list[ref node] = []" in res.out
