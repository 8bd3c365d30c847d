"""The audit of a transition that was cut short: the crash (which process, during which
step), each resume, the pause for an operator's decision, and the decision itself; a
step settled by ``fleetlog resolve`` is no longer shown as running."""

from __future__ import annotations

from typing import Any

import pytest

from tests.engine.conftest import CRASH_ENV, Fleet

JOB = """
machine job {
    param host: str = "h1"
    initial state new
    state done
    transition go : new -> done {
        step s1 run "counter s1"
        step s2 run "counter s2"
        step s3 run "counter s3"
    }
}
"""


@pytest.fixture
def crashed(fleet: Fleet) -> Fleet:
    """job/j1's go killed during s2 (not idempotent), then resumed: it needs attention."""
    d = fleet.root / "machines"
    d.mkdir()
    (d / "job.fsm").write_text(JOB)
    fleet.use_machines(d)
    assert fleet.cli("add", "job/j1").code == 0
    assert fleet.sub("fire", "job/j1", "go", **{CRASH_ENV: "5"}).code != 0
    assert fleet.cli("resume", "--all").code == 3
    return fleet


def transition(fleet: Fleet) -> dict[str, Any]:
    res = fleet.cli("audit", "job/j1", "--json")
    assert res.code == 0, res.err
    [entry] = [e for e in res.json()[0]["entries"] if e["kind"] == "transition"]
    assert isinstance(entry, dict)
    return entry


def test_the_crash_and_the_resume_are_on_the_timeline(crashed: Fleet) -> None:
    t = transition(crashed)
    steps = {s["step"]: s["status"] for s in t["steps"]}
    assert steps == {"s1": "succeeded", "s2": "needs_attention"}
    cuts = [(c["what"], c.get("step")) for c in t["interruptions"]]
    assert cuts == [("crashed", "s2"), ("resumed", None), ("paused", None)]
    crash = t["interruptions"][0]
    assert crash["reason"] == "owner process is gone"
    assert crash["owner"].count(":") == 2  # host:pid:nonce of the process that died
    text = crashed.cli("audit", "job/j1").out
    assert f"crashed: {crash['owner']} stopped during step s2 (owner process is gone" in text
    assert "resumed by " in text
    assert "paused: " in text and "let go: needs attention at step s2" in text


def test_after_a_resolve_the_step_is_settled_and_the_resume_shown(crashed: Fleet) -> None:
    res = crashed.cli("resolve", "job/j1", "--step", "s2", "--as", "done", "--reason", "seen")
    assert res.code == 0, res.err
    t = transition(crashed)
    assert t["outcome"] == "completed"
    s2 = next(s for s in t["steps"] if s["step"] == "s2")
    assert s2["status"] == "succeeded"
    assert s2["resolved"]["as"] == "done" and s2["resolved"]["reason"] == "seen"
    assert [a["outcome"] for a in s2["attempts"]] == ["resolved as done"]
    cuts = [c["what"] for c in t["interruptions"]]
    assert cuts == ["crashed", "resumed", "paused", "resumed"]  # no pause after the end
    text = crashed.cli("audit", "job/j1").out
    line = next(x for x in text.splitlines() if "- s2 " in x)
    assert "running" not in line
    assert "succeeded" in line and "(resolved as done by " in line and ": seen)" in line
    # Journal order: the decision comes before the resume it allowed.
    notes = [x.strip() for x in text.splitlines() if x.strip()[:1] in "!~"]
    decided = next(i for i, x in enumerate(notes) if x.startswith("! step.resolved"))
    assert notes[decided + 1].startswith("~ seq") and "resumed by" in notes[decided + 1]


def test_an_uninterrupted_transition_has_no_interruptions(fleet: Fleet) -> None:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "job.fsm").write_text(JOB)
    fleet.use_machines(d)
    assert fleet.cli("add", "job/j1").code == 0
    assert fleet.cli("fire", "job/j1", "go").code == 0
    assert transition(fleet)["interruptions"] == []
