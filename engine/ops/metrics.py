"""Prometheus metrics read from the journal (``fleetlog metrics``; names in
docs/notifications.md).

Nothing is counted in memory by a running fleetlog: every figure is read from the
journal when it is asked for, so a scrape, a textfile written by cron and a rerun over
the same journal agree, and counters never reset with a process. ``measure`` folds the
journal into a ``FleetMetrics`` (plain numbers); ``JournalCollector`` turns that into
metric families for a ``prometheus_client`` registry, reading the journal again on
every collect.

- Resources by kind and state, in progress and needing attention: from replay, as
  ``fleetlog status`` shows them. Every state of a kind with resources is reported, 0
  included, so an alert on "broken > 0" has a series to read.
- Transitions completed and failed, step outcomes and step durations: counted over the
  whole journal. A step's duration is the one its ``step.succeeded`` recorded (the
  action's own run time); a failed attempt's is the time from its ``step.started`` to its
  ``step.failed``. Compensations (``undo``) are counted under ``phase="undo"``.
"""

from __future__ import annotations

import bisect
import json
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.replay import replay_all
from fleetlog.journal import Journal

#: Upper bounds (seconds) of the step duration histogram's buckets: a probe, a command,
#: a package install, a reboot, an image build.
STEP_BUCKETS: tuple[float, ...] = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0)

_COUNTED = (
    ev.TRANSITION_COMPLETED,
    ev.TRANSITION_FAILED,
    ev.TRANSITION_ABORTED,
    ev.STEP_STARTED,
    ev.STEP_SUCCEEDED,
    ev.STEP_FAILED,
    ev.STEP_SKIPPED,
    ev.DRIFT_DETECTED,
)
_TRANSITION_OUTCOMES = {
    ev.TRANSITION_COMPLETED: "completed",
    ev.TRANSITION_FAILED: "failed",
    ev.TRANSITION_ABORTED: "aborted",
}
_STEP_OUTCOMES = {
    ev.STEP_SUCCEEDED: "succeeded",
    ev.STEP_FAILED: "failed",
    ev.STEP_SKIPPED: "skipped",
}


@dataclass
class Histogram:
    """Counts per bucket of ``STEP_BUCKETS`` (not cumulative), the last for +Inf."""

    counts: list[int] = field(default_factory=lambda: [0] * (len(STEP_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect.bisect_left(STEP_BUCKETS, seconds)] += 1
        self.total += seconds

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative, as Prometheus histograms are."""
        out, running = [], 0
        for bound, count in zip((*map(str, STEP_BUCKETS), "+Inf"), self.counts, strict=True):
            running += count
            out.append((bound, float(running)))
        return out


@dataclass
class FleetMetrics:
    """What the journal says, as numbers; keys are label values in label order."""

    resources: Counter[tuple[str, str]] = field(default_factory=Counter)  # kind, state
    in_progress: Counter[str] = field(default_factory=Counter)  # kind
    attention: Counter[str] = field(default_factory=Counter)  # kind
    transitions: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    steps: Counter[tuple[str, str, str, str]] = field(default_factory=Counter)
    durations: dict[tuple[str, str, str], Histogram] = field(default_factory=dict)
    drift: Counter[tuple[str, str]] = field(default_factory=Counter)  # kind, class
    head: int = 0
    last_event_at: float | None = None


def _seconds(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def measure(journal: Journal, registry: KindRegistry) -> FleetMetrics:
    """Every figure, from the journal as it is now."""
    m = FleetMetrics()
    head = journal.tail()
    m.head = head.seq
    for rec in replay_all(journal, registry, to_seq=head.seq).values():
        m.resources[rec.kind, rec.state] += 1
        if rec.in_progress is not None:
            m.in_progress[rec.kind] += 1
        if rec.attention is not None:
            m.attention[rec.kind] += 1
    for kind in {k for k, _ in m.resources}:
        if kind in registry:
            for state in registry.get(kind).spec.state_names:
                m.resources[kind, state] += 0
    # The started time of each step attempt still waiting for its outcome.
    started: dict[tuple[str, str, bool], str] = {}
    rows = journal.read_all_rows(
        to_seq=head.seq,
        types=_COUNTED,
        columns=("seq", "stream", "type", "recorded_at", "payload"),
    )
    for _seq, stream, kind_of_event, recorded_at, text in rows:
        kind = stream.split("/", 1)[0]
        payload = json.loads(text)
        if kind_of_event in _TRANSITION_OUTCOMES:
            outcome = _TRANSITION_OUTCOMES[kind_of_event]
            m.transitions[kind, str(payload.get("trigger")), outcome] += 1
        elif kind_of_event == ev.DRIFT_DETECTED:
            about = str(payload.get("resource") or stream).split("/", 1)[0]
            m.drift[about, str(payload.get("class"))] += 1
        else:
            step = str(payload.get("step"))
            undo = bool(payload.get("undo"))
            key = (stream, step, undo)
            if kind_of_event == ev.STEP_STARTED:
                started[key] = recorded_at
                continue
            phase = "undo" if undo else "plan"
            m.steps[kind, step, phase, _STEP_OUTCOMES[kind_of_event]] += 1
            began = started.pop(key, None)
            if kind_of_event == ev.STEP_SKIPPED:
                continue
            duration = payload.get("duration")
            if not isinstance(duration, int | float) and began is not None:
                duration = max(0.0, _seconds(recorded_at) - _seconds(began))
            if isinstance(duration, int | float):
                hist = m.durations.setdefault((kind, step, phase), Histogram())
                hist.observe(float(duration))
    if head.seq:
        last = next(journal.read_all(from_seq=head.seq - 1, to_seq=head.seq), None)
        if last is not None:
            m.last_event_at = _seconds(last.recorded_at)
    return m


def families(m: FleetMetrics) -> Iterator[Metric]:
    """The metric families of ``m``, names and labels as docs/notifications.md lists."""
    resources = GaugeMetricFamily(
        "fleetlog_resources", "Resources by kind and state.", labels=["kind", "state"]
    )
    for (kind, state), n in sorted(m.resources.items()):
        resources.add_metric([kind, state], n)
    yield resources
    in_progress = GaugeMetricFamily(
        "fleetlog_resources_in_progress",
        "Resources with a transition in progress.",
        labels=["kind"],
    )
    attention = GaugeMetricFamily(
        "fleetlog_resources_needing_attention",
        "Resources stopped at a step an operator must resolve (fleetlog resolve).",
        labels=["kind"],
    )
    for kind in sorted({k for k, _ in m.resources}):
        in_progress.add_metric([kind], m.in_progress[kind])
        attention.add_metric([kind], m.attention[kind])
    yield in_progress
    yield attention
    transitions = CounterMetricFamily(
        "fleetlog_transitions",
        "Transitions ended, by kind, trigger and outcome (completed, failed, aborted).",
        labels=["kind", "trigger", "outcome"],
    )
    for labels, n in sorted(m.transitions.items()):
        transitions.add_metric(list(labels), n)
    yield transitions
    steps = CounterMetricFamily(
        "fleetlog_steps",
        "Step outcomes (each attempt), by kind, step, phase (plan, undo) and outcome "
        "(succeeded, failed, skipped).",
        labels=["kind", "step", "phase", "outcome"],
    )
    for labels4, n in sorted(m.steps.items()):
        steps.add_metric(list(labels4), n)
    yield steps
    durations = HistogramMetricFamily(
        "fleetlog_step_duration",
        "How long step attempts ran, succeeded or failed.",
        labels=["kind", "step", "phase"],
        unit="seconds",
    )
    for labels3, hist in sorted(m.durations.items()):
        durations.add_metric(list(labels3), hist.buckets(), hist.total)
    yield durations
    drift = CounterMetricFamily(
        "fleetlog_drift_findings",
        "Drift findings journaled by reconcile, by kind and class.",
        labels=["kind", "class"],
    )
    for labels2, n in sorted(m.drift.items()):
        drift.add_metric(list(labels2), n)
    yield drift
    yield GaugeMetricFamily("fleetlog_journal_head_seq", "The journal's last seq.", value=m.head)
    if m.last_event_at is not None:
        yield GaugeMetricFamily(
            "fleetlog_journal_last_event_timestamp_seconds",
            "When the journal's last event was recorded (Unix time).",
            value=m.last_event_at,
        )


class JournalCollector(Collector):
    """A collector that reads the journal on every collect (every scrape)."""

    def __init__(self, read: Callable[[], FleetMetrics]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        yield from families(self.read())


def collector_registry(read: Callable[[], FleetMetrics]) -> CollectorRegistry:
    """A registry holding only the journal's metrics (no process or platform ones:
    those describe the exporter, not the fleet)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JournalCollector(read))
    return registry


def render(read: Callable[[], FleetMetrics], fmt: str = "openmetrics") -> bytes:
    """The exposition text: ``openmetrics`` or ``prometheus`` (the classic text format,
    the only one node_exporter's textfile collector reads)."""
    registry = collector_registry(read)
    if fmt == "openmetrics":
        from prometheus_client.openmetrics.exposition import generate_latest

        text: bytes = generate_latest(registry)  # type: ignore[no-untyped-call]
        return text
    from prometheus_client.exposition import generate_latest as generate_text

    return generate_text(registry)
