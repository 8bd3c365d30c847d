"""The task: one transition of one resource, with everything a step may touch.

Ironic hands an operation a ``task`` that owns the node's reservation, its driver and the
node itself; fleetlog's step loop, ``ensure`` and undo get the same: the transition's
progress and values, the leases it holds, the backend, the journal writer and the step
plugins. None of them sees the whole runner. ``ensure`` still needs to start or resume a
transition on another resource: it asks the ``Intake`` it was given (the runner
implements it), so the runtime's modules import each other one way only.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from fleetlog.engine.model.kinds import Kind
from fleetlog.engine.model.progress import Progress
from fleetlog.engine.model.records import Resource
from fleetlog.engine.model.values import Scope
from fleetlog.engine.runtime.leases import LeaseSet
from fleetlog.engine.runtime.outcome import Outcome
from fleetlog.engine.runtime.writer import JournalWriter
from fleetlog.journal import Event, Journal

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend


class Intake(Protocol):
    """Starting and resuming transitions: what ``ensure`` asks of the runner."""

    journal: Journal

    def load(self, rid: str) -> Resource: ...

    def fire(
        self,
        rid: str,
        trigger: str,
        given: Mapping[str, Any] | None = None,
        *,
        causation_id: str | None = None,
        inherited: LeaseSet | None = None,
    ) -> Outcome: ...

    def resume(self, rid: str, *, inherited: LeaseSet | None = None) -> Outcome: ...

    def tell(self, line: str, *, key: object = None) -> None:
        """A one-line warning for the operator (once per ``key`` when one is given)."""


@dataclass
class Task:
    """One transition being driven: ``rid`` under ``leases``, at ``progress``."""

    rid: str
    record: Resource
    kind: Kind
    progress: Progress
    scope: Scope
    leases: LeaseSet
    backend: Backend
    writer: JournalWriter
    plugins: dict[str, Callable[..., Any]]
    intake: Intake
    sleep: Callable[[float], None]
    #: Set to stop before the next step (a worker's SIGTERM).
    stopping: threading.Event
    #: The first step's ``step.started``, when it was journaled with the transition's
    #: start (``Runner._start``): that step runs at once, it is not in doubt.
    opened: Event | None = None

    @property
    def journal(self) -> Journal:
        return self.writer.journal
