"""Where a transition stands, reconstructed from its journal events alone.

Resume reads results; it does not re-run them. The ``transition.started`` event carries
the plan as it was when the transition began (steps, resolved params, definition hash),
so a resumed transition follows that plan even if the ``.fsm`` file changed since.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from fleetlog.dsl.spec import StepSpec, step_from_data
from fleetlog.journal.base import Event

StepStatus = Literal["pending", "in_doubt", "succeeded", "skipped", "failed"]


@dataclass
class StepState:
    status: StepStatus = "pending"
    attempts: int = 0
    output: str = ""
    started_event_id: str | None = None


@dataclass
class Progress:
    resource: str
    transition_id: str
    trigger: str
    source: str
    target: str
    params: dict[str, Any]
    plan: list[StepSpec]
    failure_state: str | None
    undo: list[str]
    started_seq: int
    started_event_id: str
    command_id: str | None
    causation_id: str | None
    definition_hash: str
    locks: list[str] = field(default_factory=list)
    steps: dict[str, StepState] = field(default_factory=dict)
    compensations: dict[str, StepState] = field(default_factory=dict)
    failed_step: str | None = None
    error: str | None = None
    attention: dict[str, Any] | None = None
    resolution: dict[str, Any] | None = None
    finished: str | None = None  # "transition.completed" / "transition.failed" / ...

    @property
    def phase(self) -> Literal["run", "undo"]:
        return "undo" if self.failed_step is not None else "run"


def reconstruct(
    started: Event, later: Iterable[Event], plan: Sequence[StepSpec] | None = None
) -> Progress:
    """Fold the events of one transition (from its ``transition.started`` on).

    ``plan``: the steps ``started`` recorded, when the caller has them as specs (it just
    recorded them); otherwise they are rebuilt from the event.
    """
    p = started.payload
    failure = p.get("failure") or {}
    prog = Progress(
        resource=started.stream,
        transition_id=started.correlation_id or started.event_id,
        trigger=p["trigger"],
        source=p["from"],
        target=p["to"],
        params=dict(p.get("params") or {}),
        plan=list(plan) if plan is not None else [step_from_data(s) for s in p.get("plan", [])],
        failure_state=failure.get("state"),
        undo=list(failure.get("undo") or []),
        started_seq=started.seq,
        started_event_id=started.event_id,
        command_id=started.command_id,
        causation_id=started.causation_id,
        definition_hash=p.get("definition_hash", ""),
        locks=list(p.get("locks") or []),
    )
    prog.steps = {s.name: StepState() for s in prog.plan}
    for ev in later:
        _apply(prog, ev)
    return prog


def _apply(prog: Progress, ev: Event) -> None:
    t = ev.type
    p = ev.payload
    name = p.get("step")
    book = prog.compensations if p.get("undo") else prog.steps
    if t == "step.started" and name is not None:
        st = book.setdefault(name, StepState())
        st.status = "in_doubt"
        st.attempts = max(st.attempts, int(p.get("attempt", st.attempts + 1)))
        st.started_event_id = ev.event_id
    elif t == "step.succeeded" and name is not None:
        st = book.setdefault(name, StepState())
        st.status = "succeeded"
        st.output = p.get("output", "")
    elif t == "step.skipped" and name is not None:
        st = book.setdefault(name, StepState())
        st.status = "skipped"
        st.output = p.get("output", "")
    elif t == "step.failed" and name is not None:
        st = book.setdefault(name, StepState())
        if p.get("will_retry"):
            st.status = "pending"
        else:
            st.status = "failed"
            if not p.get("undo"):
                prog.failed_step = name
                prog.error = p.get("error")
    elif t == "attention.required":
        prog.attention = {"step": name, "reason": p.get("reason"), "seq": ev.seq}
        prog.resolution = None
    elif t == "step.resolved" and name is not None:
        prog.attention = None
        prog.resolution = {
            "step": name,
            "as": p.get("as"),
            "reason": p.get("reason"),
            "actor": ev.actor,
            "applied": False,
        }
        st = prog.steps.setdefault(name, StepState())
        how = p.get("as")
        if how == "done":
            st.status = "succeeded"
            st.output = f"resolved as done by {ev.actor}: {p.get('reason')}"
        elif how == "retry":
            st.status = "pending"
        elif how == "abort":
            st.status = "failed"
            prog.failed_step = name
            prog.error = f"aborted by {ev.actor}: {p.get('reason')}"
    elif t in ("transition.completed", "transition.failed", "transition.aborted"):
        prog.finished = t
