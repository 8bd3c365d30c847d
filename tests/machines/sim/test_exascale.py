"""The Exascale seed on the sim: cloning onto an unconfigured KVM host fails exactly as
reported, and succeeds once the host is configured the way the seed's fix does it."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fleetlog.engine.backends.sim import SimBackend
from fleetlog.machines.sim.scenarios import exascale_rack
from fleetlog.machines.sim.tools.vm_maker import not_configured_error

# configureExascaleOnNonEgsKvmHost, in the seed's order.
CONFIGURE_NODE3 = [
    "dbmcli -e 'alter dbserver cellinit ipaddress1=192.168.10.3/22'",
    "dbmcli -e 'alter dbserver restart services rs'",
    "dbmcli -e 'alter dbserver startup services ms'",
    "escli mkkey --name node3",
    "escli mkuser kvmnode3 --key node3",
    "escli mkwallet --wallet /etc/oracle/cell/network-config/eswallet",
    "escli chwallet --attributes user=kvmnode3",
    "escli chwallet --attributes clearTrust=true",
    "escli chwallet exaRootUrl=https://ers:5052",
    "escli chwallet --attributes trustFrom=node1",
    "escli chservice --attributes name=bsw_compute --start",
    "dbmcli -e 'alter dbserver startup services edv'",
]


@pytest.fixture
def rack(sim: SimBackend) -> SimBackend:
    exascale_rack(sim.world)
    return sim


def configure(sim: SimBackend, host: str = "node3") -> None:
    for command in CONFIGURE_NODE3:
        result = sim.run(host, command)
        assert result.ok, f"{command}: {result.stderr}"


def test_clone_onto_unconfigured_host_fails_as_in_the_seed(rack: SimBackend) -> None:
    result = rack.run("node3", "vm_maker --clone exa1_vm1 --name exa1_vm3")
    assert result.exit_code == 1
    assert result.stderr == (
        "ERROR: Exascale is not configured on this KVM host (EDV service not running); "
        "cannot create guest exa1_vm3\n"
    )
    assert result.stderr.strip() == not_configured_error("exa1_vm3")
    assert rack.observe("node3", "vm", "exa1_vm3") is None
    assert rack.world.log_entries() == []


def test_asm_guests_clone_anywhere(rack: SimBackend) -> None:
    assert rack.run("node3", "vm_maker --clone asm1_vm1 --name asm1_vm3").ok
    assert rack.observe("node3", "vm", "asm1_vm3") == "running"


def test_clone_succeeds_after_configuring_the_host(rack: SimBackend) -> None:
    assert rack.observe("node3", "kvm_host", "node3") == "exascale:absent"
    assert "edv online" not in rack.run("node3", "escli lsservice --detail").stdout
    configure(rack)
    assert "edv online" in rack.run("node3", "escli lsservice --detail").stdout
    assert rack.observe("node3", "kvm_host", "node3") == "exascale:online"
    assert "edvStatus: running" in rack.run("node3", "dbmcli -e list dbserver detail").stdout

    assert rack.run("node3", "vm_maker --clone exa1_vm1 --name exa1_vm3").ok
    assert rack.observe("node3", "vm", "exa1_vm3") == "running"
    assert rack.world.host_state("node3")["vms"]["exa1_vm3"]["storage"] == "exascale"
    assert rack.inventory("kvm_host")["node4"] == "exascale:absent"


def test_edv_refuses_to_start_before_the_wallet_trusts_the_cluster(rack: SimBackend) -> None:
    for command in CONFIGURE_NODE3[:-3]:  # everything but trust, BSW and EDV
        assert rack.run("node3", command).ok
    result = rack.run("node3", "dbmcli -e 'alter dbserver startup services edv'")
    assert result.exit_code == 1
    assert "wallet has no trusted certificate" in result.stderr


def test_trust_comes_only_from_an_exascale_node(rack: SimBackend) -> None:
    configure(rack, "node3")
    result = rack.run("node3", "escli chwallet --attributes trustFrom=node5")
    assert result.exit_code == 1 and "not an Exascale node" in result.stderr


def test_starting_a_running_service_succeeds_with_no_effect(rack: SimBackend) -> None:
    configure(rack)
    before = len(rack.world.log_entries())
    assert rack.run("node3", "dbmcli -e 'alter dbserver startup services edv'").ok
    assert rack.run("node3", "escli chservice --attributes name=bsw_compute --start").ok
    assert len(rack.world.log_entries()) == before
    # a restart is an effect, every time
    assert rack.run("node3", "dbmcli -e 'alter dbserver restart services rs'").ok
    assert len(rack.world.log_entries()) == before + 1


def test_non_idempotent_escli_commands_fail_when_repeated(rack: SimBackend) -> None:
    configure(rack)
    wallet = rack.run("node3", "escli mkwallet --wallet /w")
    assert wallet.exit_code == 1 and "already exists" in wallet.stderr
    user = rack.run("node3", "escli mkuser kvmnode3")
    assert user.exit_code == 1 and "already exists" in user.stderr
    assert rack.run("node3", "escli lswallet").ok
    assert rack.run("node4", "escli lswallet").exit_code == 1


def test_egs_nodes_list_their_egs_service(rack: SimBackend) -> None:
    assert "egs_compute online" in rack.run("node1", "escli lsservice").stdout
    assert "egs_compute" not in rack.run("node3", "escli lsservice").stdout


def test_configuration_is_deterministic_for_a_seed(make_sim: Callable[..., SimBackend]) -> None:
    snapshots = []
    for _ in range(2):
        backend = make_sim(seed=42)
        exascale_rack(backend.world)
        configure(backend)
        snapshots.append(backend.world.snapshot())
    assert snapshots[0] == snapshots[1]
    assert snapshots[0]["node3"]["exascale"]["keys"]["node3"]  # a seeded fingerprint


@pytest.mark.parametrize(
    "command",
    [
        "dbmcli",
        "dbmcli -e 'drop everything'",
        "dbmcli -e 'alter dbserver startup services cellsrv'",
        "escli",
        "escli frobnicate",
        "escli chservice --attributes name=cellsrv --start",
        "escli chwallet --attributes nonsense",
        "vm_maker",
        "vm_maker --clone exa1_vm1",
        "vm_maker --clone exa1_vm1 --name x --storage nfs",
        "vm_maker --start x --stop x",
        "vm_maker --bogus",
    ],
)
def test_usage_errors_exit_2(rack: SimBackend, command: str) -> None:
    result = rack.run("node3", command)
    assert result.exit_code == 2, result
    assert result.stderr


def test_guest_lifecycle(rack: SimBackend) -> None:
    assert rack.run("node1", "vm_maker --stop exa1_vm1").ok
    assert rack.observe("node1", "vm", "exa1_vm1") == "stopped"
    assert rack.run("node1", "vm_maker --start exa1_vm1").ok
    assert rack.run("node1", "vm_maker --list").stdout == "asm1_vm1 running\nexa1_vm1 running\n"
    assert rack.run("node1", "vm_maker --delete exa1_vm1").ok
    assert rack.observe("node1", "vm", "exa1_vm1") is None
    missing = rack.run("node1", "vm_maker --start exa1_vm1")
    assert missing.exit_code == 1 and "not found" in missing.stderr
    assert rack.run("node3", "vm_maker --clone nowhere --name y").exit_code == 1
