"""The shipped machines compile cleanly, link, and model the seed faithfully."""

from __future__ import annotations

from pathlib import Path

from fleetlog import dsl
from fleetlog.dsl.spec import CallAction, EnsureAction, MachineSpec, RunAction, WaitAction
from tests.dsl.helpers import PLUGINS

MACHINES = Path(__file__).resolve().parents[2] / "machines"


def load(name: str) -> MachineSpec:
    spec, warnings = dsl.compile_file(MACHINES / f"{name}.fsm", plugins=PLUGINS)
    assert warnings == []
    return spec


def test_shipped_machines_compile_and_link_clean() -> None:
    from fleetlog.engine.model import discover_plugins

    plugins = set(discover_plugins())
    specs = {}
    for path in sorted(MACHINES.glob("*.fsm")):
        spec, warnings = dsl.compile_file(path, plugins=plugins)
        assert warnings == [], path
        specs[spec.name] = spec
    assert {"kvm_host", "vm"} <= set(specs)
    assert dsl.link_check(specs) == []


def test_only_the_registered_plugin_is_called() -> None:
    calls = {
        s.action.plugin
        for name in ("kvm_host", "vm")
        for t in load(name).transitions
        for s in t.steps
        if isinstance(s.action, CallAction)
    }
    assert calls == {"exascale.setup_wallet", "exascale.start_bsw"}


def test_configure_exascale_follows_the_seed() -> None:
    t = load("kvm_host").transition("configure_exascale")
    assert t.locks == ("self",)
    assert t.when == ("not", ("name", "egs"))
    assert t.skip_if is not None
    assert (t.skip_if.op, t.skip_if.expected) == ("contains", "edv online")
    order = [s.name for s in t.steps]
    assert order.index("cellinit") < order.index("restart_rs") < order.index("start_ms")
    assert order.index("start_ms") < order.index("node_user") < order.index("wallet")
    assert order.index("wallet") < order.index("start_bsw") < order.index("start_edv")
    assert isinstance(t.steps[-1].action, WaitAction)  # EDV last, then wait until online
    # BSW starts unless the host reports application VMs (vm_maker --list)
    bsw = t.step("start_bsw").action
    assert isinstance(bsw, CallAction) and bsw.plugin == "exascale.start_bsw"
    assert dict(bsw.args)["has_app_vms"] == ("name", "has_app_vms")
    assert t.step("rest_point").when == ("not", ("name", "cloud"))
    wallet = t.step("wallet").action
    assert isinstance(wallet, CallAction)
    assert dict(wallet.args)["trust_from"] == ("name", "trust_node")
    assert dict(wallet.args)["password"] == ("name", "wallet_password")
    assert t.on_failure is not None and t.on_failure.state == "failed"
    assert all(t.step(name).compensate is not None for name in t.on_failure.undo)


def test_clone_ensures_the_target_host_first() -> None:
    vm = load("vm")
    t = vm.transition("clone")
    assert [(p.name, p.ref_kind) for p in t.params] == [("source", "vm"), ("target", "kvm_host")]
    first = t.steps[0]
    assert first.action == EnsureAction("target", "exascale_ready", "configure_exascale")
    assert first.when == ("cmp", "==", ("name", "storage"), ("lit", "exascale"))
    create = t.step("create").action
    assert isinstance(create, RunAction) and create.on == "target"
    assert "{source.name}" in create.command and "{name}" in create.command
    assert [s.name for s in t.steps][2:] == [
        "users",
        "cell_connectivity",
        "config_software",
        "root_script",
        "db_home",
        "db_instance",
    ]


def test_vm_states_and_ganeti_statuses() -> None:
    vm = load("vm")
    assert vm.initial == "defined"
    assert set(vm.state_names) == {
        "defined",
        "BUILD",
        "ACTIVE",
        "STOPPED",
        "REBOOT",
        "ERROR",
        "DELETED",
    }
    assert vm.state("DELETED").final and vm.state("ERROR").error
    assert vm.observe is not None
    observed = {r.pattern: r.state for r in vm.observe.rules}
    for status in (
        "running",
        "ADMIN_down",
        "ERROR_up",
        "ERROR_down",
        "ERROR_nodedown",
        "ERROR_nodeoffline",
        "ERROR_wrongnode",
        "USER_down",
    ):
        assert status in observed
    assert {t.trigger for t in vm.transitions} >= {
        "create",
        "clone",
        "start",
        "stop",
        "reboot",
        "delete",
    }
