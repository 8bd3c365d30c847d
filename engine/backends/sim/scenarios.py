"""Ready-made worlds for tests and the demo.

``exascale_rack`` builds the seed's environment (seeds/exascale-clone-guest.txt): eight
KVM hosts, clusters deployed only on node1 and node2, so Exascale (EGS, EDV, wallet,
trust root) is configured there and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.backends.sim.tools.exascale_state import ONLINE, SERVICES
from engine.backends.sim.world import World

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
) -> list[str]:
    """Seed ``world`` with ``node1..nodeN``; returns the host names.

    ``guests`` maps host -> {guest name: storage}; those guests are running.
    """
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
