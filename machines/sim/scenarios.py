"""Ready-made worlds for tests and the demo.

``exascale_rack`` builds the environment of Oracle's "Setup Exascale on KVM for clone
and delete guest": eight KVM hosts, clusters deployed only on node1 and node2, so
Exascale (EGS, EDV, wallet, trust root) is configured there and nowhere else. With
``cells=N`` it also holds N fresh storage cells (``cell1..cellN``), so the whole
"Configure Exascale Storage on Cell Servers" deployment can run from scratch
(``configured=()``).

``flaky_service`` makes a service need two tries to start; ``ganeti_flip`` changes a
guest's status behind fleetlog's back (the Synnefo reconciliation seed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleetlog.engine.backends.sim import World
from fleetlog.machines.sim.tools import cell_state
from fleetlog.machines.sim.tools.exascale_state import ONLINE, SERVICES

DEFAULT_ROOT_CERT = "exascale-root-ca-1"
DEFAULT_GUESTS: Mapping[str, Mapping[str, str]] = {
    "node1": {"exa1_vm1": "exascale", "asm1_vm1": "asm"},
    "node2": {"exa2_vm1": "exascale", "asm2_vm1": "asm"},
}


def configured_kvm_host(*, egs: bool = True, root_cert: str = DEFAULT_ROOT_CERT) -> dict[str, Any]:
    """The state of a KVM host where the full deployment configured Exascale."""
    return {
        "role": "kvm_host",
        "exascale": {
            "egs": egs,
            "root_cert": root_cert,
            "cellinit": {"ipaddress1": "192.168.10.1/22"},
            "services": dict.fromkeys(SERVICES, ONLINE),
            "wallet": {
                "dir": "/etc/oracle/cell/network-config/eswallet",
                "user": "kvmnode",
                "exaRootUrl": "https://ers:5052",
                "restEndPoint": "ers:5052",
                "trusted_certs": [root_cert],
            },
            "users": {"kvmnode": {"key": None}},
            "keys": {},
        },
    }


def exascale_rack(
    world: World,
    *,
    computes: int = 8,
    configured: Iterable[str] = ("node1", "node2"),
    guests: Mapping[str, Mapping[str, str]] = DEFAULT_GUESTS,
    root_cert: str = DEFAULT_ROOT_CERT,
    cells: int = 0,
) -> list[str]:
    """Seed ``world`` with ``node1..nodeN`` (and ``cell1..cellM`` when ``cells=M``);
    returns the KVM host names.

    ``guests`` maps host -> {guest name: storage}; those guests are running.
    """
    exascale_cells(world, cells)
    configured = set(configured)
    hosts = [f"node{i}" for i in range(1, computes + 1)]
    for host in hosts:
        state: dict[str, Any] = (
            configured_kvm_host(root_cert=root_cert) if host in configured else {"role": "kvm_host"}
        )
        vms = {
            name: {"status": "running", "storage": storage, "source": None}
            for name, storage in guests.get(host, {}).items()
        }
        if vms:
            state["vms"] = vms
        world.set_host_state(host, state)
    return hosts


def exascale_cells(world: World, count: int, **disks: int) -> list[str]:
    """Seed ``cell1..cellN`` as shipped: celldisks normal, no service, no Exascale."""
    names = [f"cell{i}" for i in range(1, count + 1)]
    for name in names:
        world.set_host_state(name, cell_state.fresh_cell(**disks))
    return names


def flaky_service(world: World, host: str, service: str, failures: int = 1) -> None:
    """Make the next ``failures`` starts of ``service`` on ``host`` fail: a service that
    needs two tries. Cells: rs, ms, cellsrv, <svc>_cell; KVM hosts: rs, ms, edv,
    bsw_compute, egs_compute. Not a tool effect, so not logged."""
    state = world.host_state(host)
    section = "cell" if cell_state.is_cell(state) else "exascale"
    state.setdefault(section, {}).setdefault("start_failures", {})[service] = failures
    world.set_host_state(host, state)


def ganeti_flip(world: World, host: str, guest: str, status: str) -> None:
    """Change ``guest``'s status on ``host`` behind fleetlog's back (an operator's
    ``gnt-instance`` on the node, a crash): no engine, no journal, no world log entry.
    ``status`` is a Ganeti instance status (``ADMIN_down``, ``ERROR_down``, ...) or
    ``running``/``stopped``."""
    state = world.host_state(host)
    vm = state.get("vms", {}).get(guest)
    if vm is None:
        raise KeyError(f"no guest {guest!r} on {host}")
    vm["status"] = status
    world.set_host_state(host, state)
