"""Ready-made worlds for tests and the demo.

``exascale_rack`` builds the environment of Oracle's "Setup Exascale on KVM for clone
and delete guest": eight KVM hosts, clusters deployed only on node1 and node2, so
Exascale (EGS, EDV, wallet, trust root) is configured there and nowhere else. With
``cells=N`` it also holds N fresh storage cells (``cell1..cellN``), so the whole
"Configure Exascale Storage on Cell Servers" deployment can run from scratch
(``configured=()``).

``flaky_service`` makes a service need two tries to start; ``ganeti_flip`` changes a
guest's status behind fleetlog's back (the Synnefo reconciliation seed).

``ganeti_cluster`` makes a host the master of a simulated Ganeti cluster
(``tools/ganeti_state.py``); ``ganeti_instance``, ``ganeti_drift``, ``ganeti_hold``,
``ganeti_fail_next``, ``ganeti_lose_job`` and ``ganeti_node`` inject what Synnefo's
reconciler has to notice: instances made or changed by hand, stuck, failed and lost
jobs, nodes that do not answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleetlog.engine.backends.sim import World
from fleetlog.machines.sim.tools import cell_state, ganeti_state
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


# ------------------------------------------------------------------ a Ganeti cluster
def ganeti_cluster(
    world: World,
    master: str = "gnt1",
    nodes: Iterable[str] = ("gnt1", "gnt2"),
    name: str = "ganeti1",
) -> str:
    """A Ganeti cluster whose master is ``master`` (``gnt-instance``, ``gnt-job`` and the
    RAPI answer there), with ``nodes`` online and no instances or jobs yet."""
    state = world.host_state(master)
    state["ganeti"] = ganeti_state.new_cluster(name, list(nodes))
    world.set_host_state(master, state)
    return master


def _with_cluster(world: World, master: str, change: Any) -> Any:
    state = world.host_state(master)
    g = state.get("ganeti")
    if g is None:
        raise KeyError(f"{master} is not a Ganeti master")
    result = change(g)
    world.set_host_state(master, state)
    return result


def ganeti_instance(
    world: World,
    master: str,
    name: str,
    *,
    admin: str = "up",
    running: bool = True,
    pnode: str | None = None,
    vcpus: int = 1,
    maxmem: int = 1024,
    disks: Iterable[int] = (10240,),
    nics: Iterable[Mapping[str, str | None]] = ({"network": "public"},),
) -> None:
    """An instance created behind fleetlog's back (by hand, or by another tool): an
    orphan when its name is owned (``snf-``), foreign otherwise. A NIC without ``mac``
    gets a generated one; without an ``ip`` key, one from its network's pool (``"ip":
    None``: no address)."""

    def add(g: dict[str, Any]) -> None:
        g["instances"][name] = {
            "admin": admin,
            "running": running,
            "pnode": pnode or sorted(g["nodes"])[0],
            "vcpus": vcpus,
            "maxmem": maxmem,
            "disks": list(disks),
            "nics": [
                ganeti_state.new_nic(
                    g, n.get("network") or "", n.get("mac"), n.get("ip"), pool="ip" not in n
                )
                for n in nics
            ],
            "os": "snf-image+default",
        }

    _with_cluster(world, master, add)


def ganeti_drift(world: World, master: str, name: str, **changes: Any) -> None:
    """Change an instance behind fleetlog's back: ``admin``, ``running``, ``vcpus``,
    ``maxmem``, ``disks`` (list of MiB), ``nics`` (list of {mac, ip, network}), or
    ``removed=True`` (gone from the cluster)."""

    def drift(g: dict[str, Any]) -> None:
        inst = g["instances"].get(name)
        if inst is None:
            raise KeyError(f"no instance {name!r} on {master}")
        if changes.pop("removed", False):
            del g["instances"][name]
            return
        unknown = set(changes) - {"admin", "running", "vcpus", "maxmem", "disks", "nics", "pnode"}
        if unknown:
            raise KeyError(f"cannot drift {sorted(unknown)}")
        inst.update(changes)

    _with_cluster(world, master, drift)


def ganeti_hold(world: World, master: str, hold: bool = True) -> None:
    """Jobs submitted from now on stay ``queued`` (a busy or stuck queue); releasing the
    hold runs the queued jobs in order."""

    def set_hold(g: dict[str, Any]) -> None:
        g["hold"] = hold
        if not hold:
            for job_id in sorted(g["jobs"], key=int):
                if g["jobs"][job_id]["status"] == "queued":
                    ganeti_state.run_job(g, job_id)

    _with_cluster(world, master, set_hold)


def ganeti_fail_next(world: World, master: str, op_id: str, times: int = 1) -> None:
    """The next ``times`` jobs of opcode ``op_id`` end in ``error``, changing nothing."""

    def fail(g: dict[str, Any]) -> None:
        g["fail_next"][op_id] = g["fail_next"].get(op_id, 0) + times

    _with_cluster(world, master, fail)


def ganeti_lose_job(world: World, master: str, job_id: str) -> None:
    """The job is gone from the queue (archived, or the queue was lost)."""
    _with_cluster(world, master, lambda g: g["jobs"].pop(str(job_id)))


def ganeti_node(world: World, master: str, node: str, state: str) -> None:
    """A node goes ``down`` (its instances' run state cannot be read), ``offline``, or
    back ``online``."""
    if state not in ("online", "down", "offline"):
        raise ValueError(f"node state {state!r}")

    def set_state(g: dict[str, Any]) -> None:
        g["nodes"][node]["state"] = state

    _with_cluster(world, master, set_state)


def ganeti_jobs(world: World, master: str) -> dict[str, dict[str, Any]]:
    """The job queue as the RAPI shows it, by id (tests read job outcomes here)."""
    g = world.host_state(master)["ganeti"]
    return {i: ganeti_state.public_job(j) for i, j in g["jobs"].items()}
