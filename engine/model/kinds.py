"""Kinds: compiled machine definitions, each put onto one ``transitions.Machine``.

Fleet resources are never added to a Machine as models (``add_model`` is quadratic and a
model costs ~17 KB); they are slotted records. "Is this trigger allowed now?" is answered
from the compiled ``(state, trigger) -> dest`` table, a dict lookup, never ``may_*``
(which would run callbacks). Replay uses the same table and never fires a trigger.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property
from typing import TYPE_CHECKING, Any

from fleetlog.dsl.spec import MachineSpec, TransitionSpec, step_to_data
from fleetlog.errors import FleetlogError

if TYPE_CHECKING:
    from transitions import Machine


class UnknownKind(FleetlogError, LookupError):
    msg_fmt = "unknown kind %(kind)r%(hint)s"
    exit_code = 2


class TriggerNotAllowed(FleetlogError):
    msg_fmt = "%(resource)s: trigger %(trigger)r is not allowed in state %(state)r%(hint)s"
    exit_code = 2


@dataclass(eq=False)
class Kind:
    """One machine definition with its derived lookup tables."""

    spec: MachineSpec
    table: dict[tuple[str, str], str] = field(init=False)
    failure_state: dict[str, str | None] = field(init=False)
    state_set: frozenset[str] = field(init=False)
    _plans: dict[str, list[dict[str, Any]]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.table = build_table(self.spec)
        self.state_set = frozenset(self.spec.state_names)
        self.failure_state = {
            t.trigger: (t.on_failure.state if t.on_failure else None) for t in self.spec.transitions
        }

    @property
    def name(self) -> str:
        return self.spec.name

    def allowed(self, state: str, trigger: str) -> str | None:
        """The destination of ``trigger`` from ``state``, or None when not allowed."""
        return self.table.get((state, trigger))

    def triggers_from(self, state: str) -> list[str]:
        return sorted(t for (s, t) in self.table if s == state)

    def transition(self, trigger: str) -> TransitionSpec:
        return self.spec.transition(trigger)

    def plan_data(self, trigger: str) -> list[dict[str, Any]]:
        """The plan of ``trigger`` as ``transition.started`` records it, serialised once
        per kind: a fan-out of a thousand resources records the same plan a thousand
        times. Callers must not mutate it."""
        plan = self._plans.get(trigger)
        if plan is None:
            steps = self.transition(trigger).steps
            plan = self._plans[trigger] = [step_to_data(s) for s in steps]
        return plan

    @cached_property
    def machine(self) -> Machine:
        """The ``transitions`` machine for this kind, built on first use (live firing and
        diagrams need it; replay and status never do)."""
        return build_machine(self.spec)

    def fire(self, record: Any, trigger: str) -> None:
        """Move a live record through ``trigger`` with the transitions machine."""
        self.machine.events[trigger].trigger(record)


def build_table(spec: MachineSpec) -> dict[tuple[str, str], str]:
    table: dict[tuple[str, str], str] = {}
    for t in spec.transitions:
        for source in t.sources:
            table[(source, t.trigger)] = t.dest
    return table


def machine_kwargs(spec: MachineSpec) -> dict[str, Any]:
    """Arguments for a ``transitions`` Machine (or GraphMachine) of this spec."""
    return {
        "model": None,
        "states": list(spec.state_names),
        "transitions": [
            {"trigger": t.trigger, "source": list(t.sources), "dest": t.dest}
            for t in spec.transitions
        ],
        "initial": spec.initial,
        "auto_transitions": False,
        "name": spec.name,
    }


@cache
def quiet_transitions() -> None:
    """Keep ``transitions``' INFO lines (every state entered and left) out of the logs of
    whoever configures logging: the journal says what happened. Called where a machine is
    built rather than at import, so that commands which build none never import
    ``logging``; a level a program set for that logger by then is left as it is."""
    import logging

    log = logging.getLogger("transitions")
    if log.level == logging.NOTSET:
        log.setLevel(logging.WARNING)


def build_machine(spec: MachineSpec) -> Machine:
    quiet_transitions()
    from transitions import Machine

    return Machine(**machine_kwargs(spec))


class KindRegistry:
    """Every loaded kind by name, and the step plugins they may call."""

    def __init__(
        self,
        kinds: Iterable[Kind] = (),
        plugins: dict[str, Any] | None = None,
        *,
        broken: dict[str, str] | None = None,
    ):
        self._kinds: dict[str, Kind] = {k.name: k for k in kinds}
        self.plugins: dict[str, Any] = dict(plugins or {})
        #: Machine packs left out, by name, with why (one line each).
        self.broken: dict[str, str] = dict(broken or {})

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def __iter__(self) -> Any:
        return iter(sorted(self._kinds.values(), key=lambda k: k.name))

    def __len__(self) -> int:
        return len(self._kinds)

    @property
    def names(self) -> list[str]:
        return sorted(self._kinds)

    def get(self, name: str) -> Kind:
        try:
            return self._kinds[name]
        except KeyError:
            hint = did_you_mean(name, self._kinds)
            if self.broken:  # the kind may be one of theirs: say so rather than guess
                hint += "; " + "; ".join(self.broken.values())
            raise UnknownKind(kind=name, hint=hint) from None

    def specs(self) -> dict[str, MachineSpec]:
        return {n: k.spec for n, k in self._kinds.items()}


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(candidates), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
