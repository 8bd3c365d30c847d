"""Cross-kind checks: refs to loaded kinds, ensure on another kind's states and triggers."""

from __future__ import annotations

from fleetlog import dsl
from fleetlog.dsl.spec import MachineSpec
from tests.dsl.helpers import compile_ok

HOST = """machine kvm_host {
    param egs: bool = false
    initial state ready
    state exascale_ready
    transition configure_exascale : ready -> exascale_ready
    transition reset : exascale_ready -> ready
}"""


def guest(step: str, params: str = "param host: ref kvm_host") -> MachineSpec:
    return compile_ok(f"""machine vm {{
    {params}
    initial state defined
    state ACTIVE
    transition clone(target: ref kvm_host) : defined -> ACTIVE {{
        {step}
    }}
}}""")


def link(vm: MachineSpec) -> list[str]:
    host = compile_ok(HOST)
    return [d.message for d in dsl.link_check({"kvm_host": host, "vm": vm})]


def test_clean_set_links_without_errors() -> None:
    vm = guest(
        "step e ensure target is exascale_ready via configure_exascale\n"
        '        step c run "x {target.egs} {target.name} {host.state}" when host.egs'
    )
    assert link(vm) == []


def test_ref_to_a_kind_that_is_not_loaded() -> None:
    vm = guest('step c run "x"', params="param host: ref kvm_hots")
    (d,) = dsl.link_check({"kvm_host": compile_ok(HOST), "vm": vm})
    assert d.message == "param 'host' refers to kind 'kvm_hots', which is not loaded"
    assert d.hint == "did you mean 'kvm_host'?"
    assert (d.file, d.line, d.col) == ("t.fsm", 2, 11)


def test_ensure_state_that_the_kind_does_not_have() -> None:
    vm = guest("step e ensure target is exascale_redy via configure_exascale")
    assert link(vm) == [
        "step 'e' ensures state 'exascale_redy', which kind 'kvm_host' does not have"
    ]


def test_ensure_via_a_trigger_the_kind_does_not_have() -> None:
    vm = guest("step e ensure target is exascale_ready via configure_exascal")
    (d,) = dsl.link_check({"kvm_host": compile_ok(HOST), "vm": vm})
    assert d.message == (
        "step 'e' ensures via 'configure_exascal', which is not a trigger of kind 'kvm_host'"
    )
    assert d.hint == "did you mean 'configure_exascale'?"
    assert (d.line, d.col, d.length) == (6, 14, 1)


def test_ensure_via_a_trigger_that_leads_elsewhere() -> None:
    vm = guest("step e ensure target is exascale_ready via reset")
    assert link(vm) == [
        "step 'e' ensures 'exascale_ready' via 'reset', but 'reset' leads to 'ready'"
    ]


def test_attribute_the_referenced_kind_does_not_have() -> None:
    vm = guest('step c run "x {target.eggs}"')
    assert link(vm) == ["step 'c' reads 'target.eggs', but kind 'kvm_host' has no param 'eggs'"]
