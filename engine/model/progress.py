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
from fleetlog.engine.model import events as ev
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
    #: The backend (and host) it started on; None in journals older than the field.
    backend: str | None = None
    host: str | None = None
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
    p = ev.TransitionStarted.from_payload(started.payload)
    failure = p.failure_plan
    prog = Progress(
        resource=started.stream,
        transition_id=started.correlation_id or started.event_id,
        trigger=p.trigger,
        source=p.source,
        target=p.target,
        params=dict(p.params or {}),
        plan=list(plan) if plan is not None else [step_from_data(s) for s in p.plan or []],
        failure_state=failure.state if failure else None,
        undo=list(failure.undo) if failure else [],
        started_seq=started.seq,
        started_event_id=started.event_id,
        command_id=started.command_id,
        causation_id=started.causation_id,
        definition_hash=p.definition_hash or "",
        locks=list(p.locks or []),
        backend=p.backend,
        host=p.host,
    )
    prog.steps = {s.name: StepState() for s in prog.plan}
    for event in later:
        _apply(prog, event)
    return prog


def _apply(prog: Progress, event: Event) -> None:
    p = ev.read(event)
    if isinstance(p, ev.StepStarted):
        st = (prog.compensations if p.undo else prog.steps).setdefault(p.step, StepState())
        st.status = "in_doubt"
        st.attempts = max(st.attempts, int(p.attempt or st.attempts + 1))
        st.started_event_id = event.event_id
    elif isinstance(p, ev.StepInDoubt):
        st = (prog.compensations if p.undo else prog.steps).setdefault(p.step, StepState())
        st.status = "in_doubt"
    elif isinstance(p, ev.StepSucceeded):
        st = (prog.compensations if p.undo else prog.steps).setdefault(p.step, StepState())
        st.status = "succeeded"
        st.output = p.output or ""
    elif isinstance(p, ev.StepSkipped):
        st = prog.steps.setdefault(p.step, StepState())
        st.status = "skipped"
        st.output = p.output or ""
    elif isinstance(p, ev.StepFailed):
        st = (prog.compensations if p.undo else prog.steps).setdefault(p.step, StepState())
        if p.will_retry:
            st.status = "pending"
        else:
            st.status = "failed"
            if not p.undo:
                prog.failed_step = p.step
                prog.error = p.error
    elif isinstance(p, ev.AttentionRequired):
        prog.attention = {"step": p.step, "reason": p.reason, "seq": event.seq}
        prog.resolution = None
    elif isinstance(p, ev.StepResolved):
        prog.attention = None
        prog.resolution = {
            "step": p.step,
            "as": p.how,
            "reason": p.reason,
            "actor": event.actor,
            "applied": False,
        }
        st = prog.steps.setdefault(p.step, StepState())
        if p.how == "done":
            st.status = "succeeded"
            st.output = f"resolved as done by {event.actor}: {p.reason}"
        elif p.how == "retry":
            st.status = "pending"
        elif p.how == "abort":
            st.status = "failed"
            prog.failed_step = p.step
            prog.error = f"aborted by {event.actor}: {p.reason}"
    elif event.type in ev.TRANSITION_ENDS:
        prog.finished = event.type
