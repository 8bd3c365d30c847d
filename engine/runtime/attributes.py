"""What a succeeded step records into its resource: the values of its ``set`` options.

A step that submits a backend job records the job's id (``set job = output matching
"JobID: ([0-9]+)"``), a clone its new host (``set host = target``), a resize the new
sizes: reconcile compares them with the backend and ingest updates them, so they are
attributes of the resource, journaled as ``attributes.set`` right behind the step's
success and folded by replay.

A value that cannot be had (the output does not match, or is not of the param's type)
fails the step for good: its command ran, so running it again is no answer.
"""

from __future__ import annotations

import re
from typing import Any

from fleetlog.dsl import evaluate
from fleetlog.dsl.spec import StepSpec
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import Kind
from fleetlog.engine.model.params import coerce
from fleetlog.engine.model.values import Scope
from fleetlog.errors import FleetlogError


class SetFailed(FleetlogError):
    msg_fmt = "step %(step)r: set %(name)s: %(problem)s"


def step_values(kind: Kind, step: StepSpec, scope: Scope, output: str) -> dict[str, Any]:
    """The typed values ``step``'s ``set`` options give after it printed ``output``."""
    values: dict[str, Any] = {}
    for st in step.sets:
        if st.output:
            raw: Any = output.strip()
            if st.pattern is not None:
                found = re.search(st.pattern, output, re.M)
                if found is None:
                    raise SetFailed(
                        step=step.name,
                        name=st.name,
                        problem=f"the output does not match {st.pattern!r}: {raw[:80]!r}",
                    )
                raw = found.group(1)
        else:
            raw = evaluate(st.value, scope.lookup)
        try:
            values[st.name] = coerce(kind.spec.param(st.name), raw, scope.record.id)
        except FleetlogError as exc:
            raise SetFailed(step=step.name, name=st.name, problem=str(exc)) from None
    return values


def apply_values(scope: Scope, transition_params: frozenset[str], values: dict[str, Any]) -> None:
    """Later steps of the same transition see the new values (a transition param of the
    same name still wins, as it did before)."""
    scope.record.params.update(values)
    params = scope.params
    if isinstance(params, dict):
        for name, value in values.items():
            if name not in transition_params:
                params[name] = value


def recorded(step: StepSpec, values: dict[str, Any], previous: dict[str, Any]) -> ev.AttributesSet:
    return ev.AttributesSet(values=values, previous=previous, step=step.name)
