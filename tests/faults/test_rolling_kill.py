"""A rolling fan-out (``--batch``, ``--canary``) SIGKILLed between batches, then resumed.

The batch plan is journaled with the fan-out plan, so ``resume --plan`` goes on at the
next batch: the batches already done are reported as done and never run again, no
member of a batch starts before the batch before it ended (read from the journal's
order), and every counter moved exactly once. The kills are real: the crash harness's
``SIGKILL`` of the ``fleetlog`` child after a counted event, and a ``--canary-check``
probe that kills the ``fleetlog`` process running it.
"""

from __future__ import annotations

import itertools
import random

import pytest

from fleetlog.engine.model import events as ev
from fleetlog.engine.ops.plans import PREFIX
from tests.engine.conftest import CRASH_ENV, CliResult, Fleet
from tests.faults.conftest import counters, healthy, machines

MEMBERS = 20
BATCH = 5

NODE = """
machine rnode {
    param host: str = "rack1"
    initial state down
    state up
    transition boot : down -> up {
        step mark  run "touch_flag {name}" idempotent
        step count run "counter {name}"
    }
}
"""


def _prepare(fleet: Fleet) -> int:
    """Load the nodes and a spare one; return how many events one member's boot
    journals through the crash harness's count (measured on the spare)."""
    machines(fleet, rnode=NODE)
    (fleet.root / "nodes.toml").write_text(f'[rnode."n[1-{MEMBERS}]"]\n[rnode.spare]\n')
    assert fleet.cli("inventory", "load", "nodes.toml").code == 0
    assert fleet.cli("fire", "rnode/spare", "boot").code == 0
    counted = [
        e
        for e in fleet.events("rnode/spare")
        if e.type != ev.RESOURCE_CREATED and not e.type.startswith("lock.")
    ]
    return len(counted)


def _plan_id(res: CliResult) -> str:
    line = next(line for line in res.err.splitlines() if ": plan " in line)
    return line.split("plan ", 1)[1].split(":", 1)[0]


def _batches_in_order(fleet: Fleet, plan: str) -> None:
    """No member of batch k+1 was accepted before every member of batch k ended."""
    shown = fleet.cli("status", "--plan", plan, "--json").json()
    batches = [b["members"] for b in shown["batches"]]
    accepted: dict[str, int] = {}
    ended: dict[str, int] = {}
    for e in fleet.events():
        if e.type == ev.COMMAND_ACCEPTED and e.payload.get("run") == plan:
            accepted.setdefault(e.stream, e.seq)
        elif e.type == ev.TRANSITION_COMPLETED and e.stream in accepted:
            ended[e.stream] = e.seq
    for before, after in itertools.pairwise(batches):
        assert max(ended[r] for r in before) < min(accepted[r] for r in after), (before, after)


def _all_up_once(fleet: Fleet) -> None:
    status = fleet.status()
    assert {row["state"] for rid, row in status.items() if rid != "rnode/spare"} == {"up"}
    found = counters(fleet)
    assert {n: found.get(n) for n in (f"n{i}" for i in range(1, MEMBERS + 1))} == {
        f"n{i}": 1 for i in range(1, MEMBERS + 1)
    }


def test_killed_between_batches_resumes_at_the_next_batch(sqlite_fleet: Fleet) -> None:
    fleet = sqlite_fleet
    per_member = _prepare(fleet)
    # Die right after the last event of batch 2's last member: one at a time, so the
    # first ten members are done and nothing of batch 3 has started.
    killed = fleet.sub(
        "fire",
        f"rnode/n[1-{MEMBERS}]",
        "boot",
        "--batch",
        str(BATCH),
        "--parallel",
        "1",
        **{CRASH_ENV: str(per_member * 2 * BATCH)},
    )
    assert killed.code == -9, killed.err[-500:]
    plan = _plan_id(killed)
    shown = fleet.cli("status", "--plan", plan, "--json").json()
    assert not shown["finished"]
    assert [b["counts"]["done"] for b in shown["batches"]] == [5, 5, 0, 0]
    assert [b["counts"]["not_started"] for b in shown["batches"]] == [0, 0, 5, 5]
    assert set(counters(fleet)) == {f"n{i}" for i in range(1, 11)} | {"spare"}

    resumed = fleet.sub("resume", "--plan", plan)
    assert resumed.code == 0, resumed.err[-2000:]
    batch_lines = [line for line in resumed.err.splitlines() if ": batch " in line]
    assert batch_lines == [
        "fleetlog: batch 3/4: rnode/n[11-15] (5)",
        "fleetlog: batch 4/4: rnode/n[16-20] (5)",
    ]
    assert "rnode/n[1-10] (10): done earlier in this plan -> up" in resumed.out
    _all_up_once(fleet)
    _batches_in_order(fleet, plan)
    assert fleet.cli("status", "--plan", plan, "--json").json()["finished"]
    healthy(fleet)


def test_killed_while_checking_the_canary(sqlite_fleet: Fleet) -> None:
    """The canary check runs between the canary and batch 2; killing ``fleetlog`` there
    leaves the canary done and the rest not started; resuming checks again."""
    fleet = sqlite_fleet
    _prepare(fleet)
    check = 'if [ -e checked ]; then exit 0; fi; touch checked; kill -9 "$PPID"; sleep 5'
    killed = fleet.sub(
        "fire",
        f"rnode/n[1-{MEMBERS}]",
        "boot",
        "--canary",
        "2",
        "--batch",
        "50%",
        "--canary-check",
        check,
    )
    assert killed.code == -9, killed.err[-500:]
    plan = _plan_id(killed)
    shown = fleet.cli("status", "--plan", plan, "--json").json()
    assert [b["counts"]["done"] for b in shown["batches"]] == [2, 0, 0]
    assert [len(b["members"]) for b in shown["batches"]] == [2, 10, 8]
    assert shown["batches"][0]["waiting"] == "the canary waits for confirmation"
    assert shown["batches"][0]["command"] == f"fleetlog resume --plan {plan}"  # checks again

    resumed = fleet.sub("resume", "--plan", plan)
    assert resumed.code == 0, resumed.err[-2000:]
    assert "rnode/n[1-2] (2): done earlier in this plan -> up" in resumed.out
    decisions = [
        p for e in fleet.events(PREFIX + plan) if isinstance(p := ev.read(e), ev.PlanContinued)
    ]
    assert [(d.batch, d.by) for d in decisions] == [(1, "canary-check")]
    _all_up_once(fleet)
    _batches_in_order(fleet, plan)
    healthy(fleet)


@pytest.mark.parametrize("kill", range(4))
def test_killed_anywhere_keeps_the_batches_in_order(sqlite_fleet: Fleet, kill: int) -> None:
    """Killed at a random event (several members running at once), resumed: the
    batches still ran one after another, and every member ran exactly once."""
    fleet = sqlite_fleet
    per_member = _prepare(fleet)
    point = random.Random(2200 + kill).randrange(1, per_member * MEMBERS)
    killed = fleet.sub(
        "fire",
        f"rnode/n[1-{MEMBERS}]",
        "boot",
        "--batch",
        "30%",
        "--parallel",
        "4",
        **{CRASH_ENV: str(point)},
    )
    assert killed.code == -9, (point, killed.err[-500:])
    plan = _plan_id(killed)
    resumed = fleet.sub("resume", "--plan", plan)
    # a member killed inside its counter step needs attention (exit 3): settle it from
    # the world's log as an operator would
    if resumed.code == 3:
        found = counters(fleet)
        shown = fleet.cli("status", "--json")  # exit 3: something needs attention
        for row in shown.json():
            rid = row["id"]
            if row["needs_attention"] is not None:
                took = found.get(rid.split("/", 1)[1], 0) == 1
                res = fleet.cli(
                    "resolve", rid, "--step", "count", "--as", "done" if took else "retry",
                    "--reason", "read the counter",
                )  # fmt: skip
                assert res.code == 0, res.err
        resumed = fleet.sub("resume", "--plan", plan)
    assert resumed.code == 0, (point, resumed.err[-2000:])
    _all_up_once(fleet)
    _batches_in_order(fleet, plan)
    healthy(fleet)
