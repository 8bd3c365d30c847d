"""The compiled (state, trigger) table must agree with transitions on every pair."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from transitions import MachineError

from fleetlog.dsl.spec import MachineSpec, StateSpec, TransitionSpec
from fleetlog.engine.model import Kind, KindRegistry, Resource, UnknownKind


@st.composite
def machine_specs(draw: st.DrawFn) -> MachineSpec:
    n_states = draw(st.integers(min_value=1, max_value=8))
    states = [f"s{i}" for i in range(n_states)]
    n_triggers = draw(st.integers(min_value=1, max_value=6))
    transitions = []
    for i in range(n_triggers):
        sources = draw(
            st.lists(st.sampled_from(states), min_size=1, max_size=n_states, unique=True)
        )
        dest = draw(st.sampled_from(states))
        transitions.append(TransitionSpec(trigger=f"t{i}", sources=tuple(sources), dest=dest))
    return MachineSpec(
        name="gen",
        title="generated",
        params=(),
        secrets=(),
        states=tuple(StateSpec(s, initial=(i == 0)) for i, s in enumerate(states)),
        observe=None,
        transitions=tuple(transitions),
    )


@settings(max_examples=300, deadline=None)
@given(machine_specs())
def test_table_agrees_with_transitions_on_every_pair(spec: MachineSpec) -> None:
    kind = Kind(spec)
    for state in spec.state_names:
        for t in spec.transitions:
            record = Resource(id="gen/x", kind="gen", name="x", state=state, params={})
            expected = kind.allowed(state, t.trigger)
            if expected is None:
                with pytest.raises(MachineError):
                    kind.fire(record, t.trigger)
                assert record.state == state
            else:
                kind.fire(record, t.trigger)
                assert record.state == expected


def test_machine_is_built_without_models_or_auto_transitions() -> None:
    spec = MachineSpec(
        name="k",
        title="",
        params=(),
        secrets=(),
        states=(StateSpec("a", initial=True), StateSpec("b")),
        observe=None,
        transitions=(TransitionSpec("go", ("a",), "b"),),
    )
    machine = Kind(spec).machine
    assert machine.models == []
    assert set(machine.events) == {"go"}  # no to_a/to_b auto transitions


def test_records_are_small_and_slotted() -> None:
    rec = Resource(id="vm/x", kind="vm", name="x", state="a", params={})
    assert not hasattr(rec, "__dict__")
    assert sys.getsizeof(rec) < 200


def test_unknown_kind_suggests_a_near_name() -> None:
    spec = MachineSpec(
        name="kvm_host",
        title="",
        params=(),
        secrets=(),
        states=(StateSpec("a", initial=True),),
        observe=None,
        transitions=(),
    )
    reg = KindRegistry([Kind(spec)])
    with pytest.raises(UnknownKind, match="did you mean 'kvm_host'"):
        reg.get("kvm_hst")
