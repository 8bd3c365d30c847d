"""Rolling fan-outs (``fleetlog.engine.ops.rolling``): ``--batch``, ``--canary``,
``--canary-check``, ``--rate`` and ``--max-fail`` per batch, through the real CLI on a
real journal and simulated world. The kills between batches are in
``tests/faults/test_rolling_kill.py``."""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlog.engine.model import events as ev
from fleetlog.engine.model import load_registry
from fleetlog.engine.ops import create_resource
from fleetlog.engine.ops.plans import PREFIX, plan_key
from fleetlog.engine.ops.rolling import RolloutError, batch_sizes, parse_rate, rollout
from fleetlog.journal.ids import uuid7
from tests.engine.conftest import CRASH_ENV, CliResult, Fleet
from tests.engine.ops.test_fanout import FAN


@pytest.fixture
def fan(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "fan.fsm").write_text(FAN)
    fleet.use_machines(d)
    return fleet


def add(fleet: Fleet, count: int, doomed: tuple[int, ...] = ()) -> None:
    registry = load_registry()
    for i in range(1, count + 1):
        create_resource(fleet.journal, registry, f"fan/n{i}", {"doomed": i in doomed})


def plan_of(res: CliResult) -> str:
    line = next(line for line in res.err.splitlines() if ": plan " in line)
    return line.split("plan ", 1)[1].split(":", 1)[0]


def to_continue(res: CliResult) -> list[str]:
    """The command the stop message says to type, as arguments after ``fleetlog``."""
    line = next(line for line in res.err.splitlines() if "To continue: " in line)
    command = line.split("To continue: ", 1)[1].split()
    assert command[0] == "fleetlog"
    return command[1:]


def started(fleet: Fleet) -> list[str]:
    """Members whose first step ran, from the world's own log."""
    return sorted(
        {e.effect.split()[1] for e in fleet.sim.world.log_entries() if e.effect.startswith("flag ")}
    )


def continued(fleet: Fleet, plan: str) -> list[ev.PlanContinued]:
    return [p for e in fleet.events(PREFIX + plan) if isinstance(p := ev.read(e), ev.PlanContinued)]


# ------------------------------------------------------------------- batches, rounding
@given(
    total=st.integers(1, 500),
    batch=st.one_of(st.none(), st.integers(1, 600).map(str), st.integers(1, 100).map("{}%".format)),
    canary=st.integers(0, 499),
)
def test_batches_cover_the_members_in_order(total: int, batch: str | None, canary: int) -> None:
    canary = min(canary, total - 1)
    sizes = batch_sizes(total, batch, canary)
    assert sum(sizes) == total and all(n >= 1 for n in sizes)
    rest = sizes[1:] if canary else sizes
    if canary:
        assert sizes[0] == canary
    if batch is not None and rest:
        n = int(batch.rstrip("%"))
        size = max(1, math.ceil(total * n / 100)) if batch.endswith("%") else n
        assert all(s == size for s in rest[:-1]) and rest[-1] <= size  # only the last is short


def test_a_share_is_of_all_members_rounded_up(fan: Fleet) -> None:
    add(fan, 10)
    res = fan.cli("fire", "fan/n[1-10]", "go", "--batch", "25%", "--dry-run")
    assert res.code == 0, res.err
    batches = [line for line in res.out.splitlines() if line.startswith("batch ")]
    assert batches == [  # 25% of 10 is 2.5: batches of 3, the last one short
        "batch 1/4: fan/n[1-3] (3)",
        "batch 2/4: fan/n[4-6] (3)",
        "batch 3/4: fan/n[7-9] (3)",
        "batch 4/4: fan/n10 (1)",
    ]
    res = fan.cli("fire", "fan/n[1-10]", "go", "--canary", "1", "--batch", "50%", "--dry-run")
    assert [line for line in res.out.splitlines() if line.startswith("batch ")] == [
        "batch 1/3 (canary): fan/n1 (1)",
        "batch 2/3: fan/n[2-6] (5)",
        "batch 3/3: fan/n[7-10] (4)",
    ]
    assert batch_sizes(3, "1%", 0) == [1, 1, 1]  # never an empty batch


def test_batches_follow_the_natural_order(fan: Fleet) -> None:
    add(fan, 12)
    res = fan.cli("fire", "fan/n*", "go", "--batch", "5", "--dry-run")
    assert [line for line in res.out.splitlines() if line.startswith("batch ")] == [
        "batch 1/3: fan/n[1-5] (5)",  # n10 is not before n2
        "batch 2/3: fan/n[6-10] (5)",
        "batch 3/3: fan/n[11-12] (2)",
    ]


def test_rates() -> None:
    assert parse_rate("5/s") == 5.0
    assert parse_rate("30/m") == 0.5
    assert parse_rate("0.5/s") == 0.5
    with pytest.raises(RolloutError):
        rollout(3, canary=3)


@pytest.mark.parametrize(
    "args",
    [
        ("--batch", "0"),
        ("--batch", "0%"),
        ("--batch", "101%"),
        ("--batch", "-3"),
        ("--batch", "ten"),
        ("--rate", "abc"),
        ("--rate", "0/s"),
        ("--rate", "5"),
        ("--rate", "5/h"),
        ("--canary", "10"),
        ("--canary", "11"),
        ("--canary", "-1"),
        ("--canary-check", "true"),
        ("--canary", "2", "--canary-check", " "),
        ("--submit", "--batch", "5"),
        ("--submit", "--rate", "5/s"),
    ],
)
def test_bad_values_are_one_line_usage_errors(fan: Fleet, args: tuple[str, ...]) -> None:
    add(fan, 10)
    head = fan.journal.head()
    res = fan.cli("fire", "fan/n[1-10]", "go", *args)
    assert res.code == 2, res
    assert res.err.startswith("fleetlog: error: ") and res.err.count("\n") == 1, res.err
    assert fan.journal.head() == head  # nothing journaled, nothing started
    assert started(fan) == []


@pytest.mark.parametrize("flag", ["--yes", "--accept-failures"])
def test_resume_decides_for_one_plan_only(fan: Fleet, flag: str) -> None:
    add(fan, 2)
    res = fan.cli("resume", "--all", flag)
    assert res.code == 2 and "give it with --plan ID" in res.err


# ------------------------------------------------------------------------- canaries
def test_a_failed_canary_stops_with_the_rest_not_started(fan: Fleet) -> None:
    add(fan, 10, doomed=(2,))
    res = fan.cli("fire", "fan/n[1-10]", "go", "--canary", "3", "--batch", "4", "--yes")
    assert res.code == 1, res.err
    assert "fan/n[4-10] (7): not started (the canary failed)" in res.out.splitlines()
    assert started(fan) == ["n1", "n2", "n3"]  # the rest never began
    plan = plan_of(res)
    assert to_continue(res) == ["resume", "--plan", plan, "--accept-failures"]
    assert "stopped at batch 1/3: the canary failed; 7 resources not started" in res.err
    shown = fan.cli("status", "--plan", plan, "--json").json()
    assert shown["finished"] is False
    assert [b["counts"]["not_started"] for b in shown["batches"]] == [0, 4, 3]
    assert shown["batches"][0]["waiting"] == "the canary failed"
    assert shown["batches"][0]["command"] == f"fleetlog resume --plan {plan} --accept-failures"
    text = fan.cli("status", "--plan", plan).out
    assert "batch 1/3 (canary) fan/n[1-3]: done 2, failed 1" in text

    again = fan.cli("resume", "--plan", plan)  # without the decision it stays stopped
    assert again.code == 1 and started(fan) == ["n1", "n2", "n3"]

    went = fan.cli(*to_continue(res))  # the command it printed
    assert went.code == 1  # n2 is still failed
    assert started(fan) == sorted(f"n{i}" for i in range(1, 11))
    [decision] = continued(fan, plan)
    assert (decision.batch, decision.by, decision.forgiven) == (1, "accept-failures", ["fan/n2"])
    assert fan.cli("status", "--plan", plan, "--json").json()["finished"] is True


def test_a_canary_waits_for_confirmation(fan: Fleet) -> None:
    add(fan, 6)
    res = fan.cli("fire", "fan/n[1-6]", "go", "--canary", "2", "--json")
    assert res.code == 3, res.err  # waiting for an operator, nothing failed
    data = res.json()
    plan = data["plan"]
    assert data["not_started"] == [f"fan/n{i}" for i in range(3, 7)]
    assert data["stopped"] == {
        "reason": "the canary waits for confirmation",
        "batch": 1,
        "batches": 2,
        "command": f"fleetlog resume --plan {plan} --yes",
    }
    assert started(fan) == ["n1", "n2"]
    assert fan.cli("resume", "--plan", plan).code == 3  # still waiting
    assert started(fan) == ["n1", "n2"]
    went = fan.cli(*to_continue(res))
    assert went.code == 0, went.err
    assert "fan/n[1-2] (2): done earlier in this plan -> done" in went.out
    assert started(fan) == [f"n{i}" for i in range(1, 7)]
    [decision] = continued(fan, plan)
    assert (decision.batch, decision.by) == (1, "yes")


def test_yes_goes_on_after_a_canary_that_passed(fan: Fleet) -> None:
    add(fan, 6)
    res = fan.cli("fire", "fan/n[1-6]", "go", "--canary", "2", "--batch", "2", "--yes")
    assert res.code == 0, res.err
    lines = [line for line in res.err.splitlines() if ": batch " in line]
    assert lines == [
        "fleetlog: batch 1/3 (canary): fan/n[1-2] (2)",
        "fleetlog: batch 2/3: fan/n[3-4] (2)",
        "fleetlog: batch 3/3: fan/n[5-6] (2)",
    ]


def test_a_canary_check_that_passes_lets_the_fan_out_go_on(fan: Fleet) -> None:
    add(fan, 5)
    check = 'test "$FLEETLOG_CANARY" = "fan/n1 fan/n2" && test -n "$FLEETLOG_PLAN"'
    res = fan.cli("fire", "fan/n[1-5]", "go", "--canary", "2", "--canary-check", check)
    assert res.code == 0, res.err
    assert started(fan) == [f"n{i}" for i in range(1, 6)]
    [decision] = continued(fan, plan_of(res))
    assert (decision.by, decision.check) == ("canary-check", check)


def test_a_canary_check_that_fails_stops_the_fan_out(fan: Fleet) -> None:
    add(fan, 5)
    check = "echo all good; echo 'latency 900ms' >&2; exit 7"
    res = fan.cli("fire", "fan/n[1-5]", "go", "--canary", "2", "--canary-check", check)
    assert res.code == 1, res.err
    assert "the canary check failed (exit 7: latency 900ms; resuming checks again)" in res.err
    plan = plan_of(res)
    assert to_continue(res) == ["resume", "--plan", plan, "--yes"]
    assert started(fan) == ["n1", "n2"] and continued(fan, plan) == []
    went = fan.cli(*to_continue(res))
    assert went.code == 0 and started(fan) == [f"n{i}" for i in range(1, 6)]


# ------------------------------------------------------------------ --max-fail per batch
def test_max_fail_applies_to_each_batch(fan: Fleet) -> None:
    """Two failures of the first five are 40% of the batch (over 30) though only 20% of
    the plan: the batch stops starting and no later batch starts."""
    add(fan, 10, doomed=(1, 2, 8))
    res = fan.cli(
        "fire", "fan/n[1-10]", "go", "--batch", "5", "--max-fail", "30", "--parallel", "1"
    )
    assert res.code == 1
    assert "fan/n[3-10] (8): not started (--max-fail reached)" in res.out.splitlines()
    assert started(fan) == ["n1", "n2"]
    plan = plan_of(res)
    assert to_continue(res) == ["resume", "--plan", plan, "--accept-failures"]
    went = fan.cli(*to_continue(res))
    # n1, n2 forgiven: the rest of batch 1 runs, then batch 2, where n8 is 1 of 5 (20%)
    assert went.code == 1, went.err
    assert started(fan) == sorted(f"n{i}" for i in range(1, 11))
    assert [(c.batch, c.forgiven) for c in continued(fan, plan)] == [(1, ["fan/n1", "fan/n2"])]


def test_accepted_failures_stay_accepted(fan: Fleet) -> None:
    """A plain plan (one batch) stopped by --max-fail; the ``resume --accept-failures``
    that goes on is killed at once: a plain ``resume`` afterwards still goes on, since
    the decision is in the journal, not in the killed process."""
    add(fan, 10, doomed=(1, 2, 3))
    res = fan.cli("fire", "fan/n[1-10]", "go", "--max-fail", "20", "--parallel", "1")
    assert res.code == 1 and started(fan) == ["n1", "n2", "n3"]
    plan = plan_of(res)
    killed = fan.sub(*to_continue(res), **{CRASH_ENV: "1"})
    assert killed.code == -9, killed.err
    assert [c.forgiven for c in continued(fan, plan)] == [["fan/n1", "fan/n2", "fan/n3"]]
    went = fan.cli("resume", "--plan", plan)
    assert went.code == 1, went.err  # n1-n3 stay failed
    assert started(fan) == sorted(f"n{i}" for i in range(1, 11))
    assert fan.cli("status", "--plan", plan, "--json").json()["finished"] is True


def test_a_later_batch_over_its_budget_stops_the_next(fan: Fleet) -> None:
    add(fan, 9, doomed=(4, 5))
    res = fan.cli("fire", "fan/n[1-9]", "go", "--batch", "3", "--max-fail", "50")
    assert res.code == 1
    # batch 2 (n4-n6) ended with 2 of 3 failed: batch 3 is not started
    assert "fan/n[7-9] (3): not started (--max-fail reached)" in res.out.splitlines()
    shown = fan.cli("status", "--plan", plan_of(res), "--json").json()
    assert [b["waiting"] for b in shown["batches"]] == [None, "--max-fail reached", None]


# ------------------------------------------------------------------------------ --rate
def test_rate_spaces_the_starts(fan: Fleet) -> None:
    """10 members at 5/s with 64 threads free: the journaled first-step starts are at
    least 0.2 s apart on average, so they span about 1.8 s (read from the journal)."""
    add(fan, 10)
    res = fan.cli("fire", "fan/n[1-10]", "go", "--rate", "5/s", "--parallel", "64")
    assert res.code == 0, res.err
    starts = sorted(
        datetime.fromisoformat(e.recorded_at.replace("Z", "+00:00")).timestamp()
        for e in fan.events()
        if e.type == ev.STEP_STARTED and e.payload.get("step") == "mark"
    )
    assert len(starts) == 10
    # The first start may be journaled late (the first member warms up): span from the
    # second, eight slots of 0.2 s.
    assert starts[-1] - starts[1] >= 1.4
    assert starts[-1] - starts[0] >= 1.4
    shown = fan.cli("status", "--plan", plan_of(res)).out
    assert "rolling: at most 5/s; --max-fail 100% per batch" in shown


# ------------------------------------------------------------------- plans from before
def test_a_plan_without_batches_still_resumes(fan: Fleet) -> None:
    """A plan journaled before rolling fan-outs (no batch keys at all) is one batch."""
    add(fan, 4, doomed=(3,))
    members = [f"fan/n{i}" for i in range(1, 5)]
    plan = uuid7()
    payload = {
        "trigger": "go",
        "params": {},
        "members": members,
        "parallel": 2,
        "max_fail": 100.0,
        "key": plan_key("go", {}, members),
        "pattern": "fan/n[1-4]",
    }
    assert ev.PlanStarted.from_payload(payload).to_payload() == payload  # the old shape
    fan.journal.append(
        PREFIX + plan,
        [ev.new_event(ev.PlanStarted.from_payload(payload), correlation_id=plan)],
        expected_version=0,
    )
    res = fan.cli("resume", "--plan", plan)
    assert res.code == 1, res.err
    assert started(fan) == ["n1", "n2", "n3", "n4"]
    assert ": batch " not in res.err
    shown = fan.cli("status", "--plan", plan, "--json").json()
    assert shown["rolling"] is None and len(shown["batches"]) == 1
    assert shown["batches"][0]["members"] == members and shown["finished"] is True
