"""Metrics read from a journal built here by real runs on the simulator, checked by
parsing the exposition with prometheus-client's own parsers (OpenMetrics and the
classic text format)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as classic_families

from fleetlog.engine.backends.sim import Fault
from fleetlog.engine.ops.metrics import STEP_BUCKETS, Histogram, measure, render
from tests.engine.conftest import Rig

JOB = """
machine job {
    param host: str = "jh"
    param doomed: bool = false

    initial state new
    state done
    state broken : error

    transition go : new -> done {
        step prep run "touch_flag {name}" idempotent
        step work run "fail doomed" when doomed retry 2 every 1s
        step tail run "counter {name}"
        on failure -> broken
    }
}
"""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def rig(make_rig: Callable[..., Rig]) -> Rig:
    """j1 completes, j2 fails at `work` (after its retries), j3's `tail` is sent but its
    answer is lost (needs attention), j4 is never fired."""
    rig = make_rig(JOB)
    rig.add("job/j1")
    rig.add("job/j2", doomed=True)
    rig.add("job/j3", host="jh3")
    rig.add("job/j4")
    rig.sim.world.inject(Fault("counter", mode="drop", host="jh3"))
    for rid in ("job/j1", "job/j2", "job/j3"):
        rig.runner.fire(rid, "go")
    return rig


def samples(text: str, parse: Any = text_string_to_metric_families) -> Samples:
    out: Samples = {}
    for family in parse(text):
        for s in family.samples:
            out[s.name, tuple(sorted(s.labels.items()))] = s.value
    return out


def value(found: Samples, name: str, **labels: str) -> float:
    return found[name, tuple(sorted(labels.items()))]


def when(event: Any) -> float:
    return datetime.fromisoformat(event.recorded_at.replace("Z", "+00:00")).timestamp()


def test_the_exposition_matches_the_journal(rig: Rig) -> None:
    text = render(lambda: measure(rig.journal, rig.registry)).decode()
    assert text.endswith("# EOF\n")
    found = samples(text)

    def steps(step: str, outcome: str) -> float:
        labels = {"kind": "job", "step": step, "phase": "plan", "outcome": outcome}
        return found.get(("fleetlog_steps_total", tuple(sorted(labels.items()))), 0)

    def transitions(outcome: str) -> float:
        labels = {"kind": "job", "trigger": "go", "outcome": outcome}
        return value(found, "fleetlog_transitions_total", **labels)

    for state, n in {"new": 2, "done": 1, "broken": 1}.items():
        assert value(found, "fleetlog_resources", kind="job", state=state) == n
    assert value(found, "fleetlog_resources_in_progress", kind="job") == 1
    assert value(found, "fleetlog_resources_needing_attention", kind="job") == 1
    assert (transitions("completed"), transitions("failed")) == (1, 1)

    events = rig.events()
    # Every step outcome in the journal is counted, under its step and outcome.
    for step in ("prep", "work", "tail"):
        for outcome in ("succeeded", "failed", "skipped"):
            n = sum(1 for e in events if e.type == f"step.{outcome}" and e.payload["step"] == step)
            assert steps(step, outcome) == n, (step, outcome)
    assert steps("work", "failed") == 3  # retry 2: three attempts
    assert steps("prep", "succeeded") == 3

    # prep: three successes, each with the duration its step.succeeded recorded.
    prep = [
        e.payload["duration"]
        for e in events
        if e.type == "step.succeeded" and e.payload["step"] == "prep"
    ]
    labels = {"kind": "job", "step": "prep", "phase": "plan"}
    assert value(found, "fleetlog_step_duration_seconds_count", **labels) == 3
    assert math.isclose(value(found, "fleetlog_step_duration_seconds_sum", **labels), sum(prep))
    for bound in STEP_BUCKETS:
        wanted = sum(1 for d in prep if d <= bound)
        bucket = value(found, "fleetlog_step_duration_seconds_bucket", le=str(bound), **labels)
        assert bucket == wanted
    # work: three failed attempts, timed from each step.started to its step.failed.
    work = [
        e
        for e in events
        if e.payload.get("step") == "work" and e.type in ("step.started", "step.failed")
    ]
    spans = [when(b) - when(a) for a, b in zip(work[::2], work[1::2], strict=True)]
    labels["step"] = "work"
    assert value(found, "fleetlog_step_duration_seconds_count", **labels) == 3
    total = value(found, "fleetlog_step_duration_seconds_sum", **labels)
    assert math.isclose(total, sum(spans), abs_tol=1e-6)

    head = rig.journal.head()
    assert value(found, "fleetlog_journal_head_seq") == head
    last = next(rig.journal.read_all(from_seq=head - 1))
    stamp = value(found, "fleetlog_journal_last_event_timestamp_seconds")
    assert stamp == pytest.approx(when(last))


def test_the_classic_text_format_says_the_same(rig: Rig) -> None:
    read = lambda: measure(rig.journal, rig.registry)  # noqa: E731
    openmetrics = samples(render(read).decode())
    classic = samples(render(read, "prometheus").decode(), classic_families)
    # The classic format has no _created samples and no # EOF; the numbers agree.
    assert {k: v for k, v in openmetrics.items() if not k[0].endswith("_created")} == classic


def test_an_empty_journal_has_only_the_journal_metrics(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(JOB)
    found = samples(render(lambda: measure(rig.journal, rig.registry)).decode())
    assert found == {("fleetlog_journal_head_seq", ()): 0.0}


@given(st.lists(st.floats(min_value=0, max_value=1e5, allow_nan=False), max_size=50))
def test_histogram_buckets_are_cumulative(durations: list[float]) -> None:
    h = Histogram()
    for d in durations:
        h.observe(d)
    buckets = h.buckets()
    counts = [c for _, c in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == ("+Inf", float(len(durations)))
    for bound, count in buckets[:-1]:
        assert count == sum(1 for d in durations if d <= float(bound))
