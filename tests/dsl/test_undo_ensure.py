"""``undo ensure R is S via T``: a compensation that brings another resource back (the
HA pair's fenced node powered on again) compiles, survives the journal round trip, and
is link-checked like any ``ensure``."""

from __future__ import annotations

from fleetlog import dsl
from fleetlog.dsl.spec import EnsureAction, MachineSpec, step_from_data, step_to_data
from tests.dsl.helpers import compile_ok

NODE = """machine node {
    initial state up
    state off
    transition fence : up -> off
    transition power_on : off -> up
}"""


def pair(undo: str) -> MachineSpec:
    return compile_ok(f"""machine pair {{
    param primary: ref node
    initial state a
    state b
    state broken : error
    transition failover : a -> b {{
        step fence ensure primary is off via fence
                   undo ensure primary is {undo}
        step next  run "true"
        on failure -> broken undo [fence]
    }}
}}""")


def test_undo_ensure_compiles_and_round_trips() -> None:
    spec = pair("up via power_on")
    (step, _) = spec.transition("failover").steps
    assert step.compensate == EnsureAction(ref="primary", state="up", trigger="power_on")
    assert step_from_data(step_to_data(step)) == step
    linked = dsl.link_check({"node": compile_ok(NODE), "pair": spec})
    assert [d.message for d in linked] == []


def test_undo_ensure_naming_a_missing_trigger_is_refused() -> None:
    linked = dsl.link_check({"node": compile_ok(NODE), "pair": pair("up via wake")})
    assert [d.message for d in linked] == [
        "step 'fence' ensures via 'wake', which is not a trigger of kind 'node'"
    ]
