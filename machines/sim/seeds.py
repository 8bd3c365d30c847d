"""What the built-in kinds' resources look like in the simulated world, and the faults
only these seeds have.

``fleetlog sim init`` hands every resource (from an inventory, or the journal with its
state) to the seeders below, which build the twin: KVM hosts with their guests, storage
cells as shipped, a Ganeti master holding its instances, two xCAT management nodes and
their shared directory, the diskless admin node and iSCSI servers. A resource in a
state the twin cannot reproduce faithfully is seeded as shipped and the seeder says so
(``sim init`` prints it): the rehearsal then starts from what the world really holds.

The world faults are changes made behind the machines' backs, each a seed's own
failure: a VIP that already answers (xCAT HA), cloud-init finishing with errors (the
diskless image), a Ganeti instance or a KVM guest whose status drifted (Synnefo's
reconciler), a service that needs two tries (Exascale).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from fleetlog.engine.backends.sim import (
    Seeding,
    SeedResource,
    World,
    WorldFaultError,
    sim_seeder,
    sim_world_fault,
)
from fleetlog.machines.sim import scenarios
from fleetlog.machines.sim.tools import cell_state, ganeti_state
from fleetlog.machines.sim.tools.exascale_state import OFFLINE, ONLINE
from fleetlog.machines.sim.tools.vm_maker import DEPLOY_STAGES

#: vm states whose guest exists on its host, and the status the host reports for it.
_GUEST_STATUS = {
    "BUILD": "running",
    "ACTIVE": "running",
    "REBOOT": "running",
    "STOPPED": "stopped",
    "ERROR": "ERROR_down",
}
#: The diskless CHAP secrets: when the operator's environment holds them at `sim init`,
#: the iSCSI servers check them (by digest), so a wrong one fails in the rehearsal too.
_CHAP = {
    "discovery.sendtargets": ("DISCOVERY_USER", "DISCOVERY_PASSWORD"),
    "node.session": ("NODE_USER", "NODE_PASSWORD"),
}


def _as_shipped(res: SeedResource, initial: tuple[str, ...]) -> str | None:
    if res.state in initial:
        return None
    return f"{res.id}: seeded as shipped (the twin cannot rebuild state {res.state!r})"


# ------------------------------------------------------------------------- Exascale
@sim_seeder("kvm_host")
def seed_kvm_host(res: SeedResource, world: Seeding) -> str | None:
    state = world.host(res.host)
    state["role"] = "kvm_host"
    if res.state == "exascale_ready":
        cluster = str(res.params.get("exa_cluster") or "exa")
        trust = str(res.params.get("trust_node") or "cell1")
        root = f"{cluster}-root-ca@{trust}"
        state.update(scenarios.configured_kvm_host(egs=bool(res.params.get("egs")), root_cert=root))
        if not res.params.get("egs"):
            state["exascale"]["services"]["egs_compute"] = OFFLINE
        return None
    return _as_shipped(res, ("discovered", "ready", "retired"))


@sim_seeder("cell")
def seed_cell(res: SeedResource, world: Seeding) -> str | None:
    state = world.host(res.host)
    for key, value in cell_state.fresh_cell().items():
        state.setdefault(key, value)
    if res.state == "online":
        cell = cell_state.edit(state)
        egs = bool(res.params.get("egs"))
        cluster = str(res.params.get("cluster") or "exa")
        leader = str(res.params.get("leader") or res.name)
        cell["services"] = dict.fromkeys(cell_state.SERVICES, ONLINE)
        if not egs:
            cell["services"]["egs_cell"] = OFFLINE
        cell["egs_cluster"] = cluster if egs else None
        cell["pooldisks"] = {
            "HardDisk": [d for d in cell["celldisks"] if d.startswith("CD_")],
            "FlashDisk": [d for d in cell["celldisks"] if d.startswith("FD_")],
        }
        root = f"{cluster}-root-ca@{leader}"
        state["exascale"] = {
            "egs": egs,
            "root_cert": root if leader == res.name else None,
            "wallet": {
                "dir": str(res.params.get("wallet_dir") or ""),
                "user": "cellnode",
                "trusted_certs": [root],
                "restEndPoint": "ers:5052",
            },
            "users": {"cellnode": {"key": "cellnode"}},
            "keys": {"cellnode": f"fp:{res.name}:cellnode"},
        }
        return None
    return _as_shipped(res, ("discovered", "retired"))


@sim_seeder("exascale_cluster")
def seed_exascale_cluster(res: SeedResource, world: Seeding) -> str | None:
    """The cluster has no host of its own: its commands run on the leader cell."""
    return _as_shipped(res, ("defined", "retired"))


@sim_seeder("vm")
def seed_vm(res: SeedResource, world: Seeding) -> str | None:
    rid = _ref(res.params.get("host"), "kvm_host")
    ref = world.resource(rid)
    address = ref.host if ref is not None else rid.partition("/")[2]
    state = world.host(address)
    state.setdefault("role", "kvm_host")
    status = _GUEST_STATUS.get(res.state)
    if status is None:  # defined, DELETED: no guest on the host
        return None
    guest: dict[str, Any] = {
        "status": status,
        "storage": str(res.params.get("storage") or "asm"),
        "source": None,
        "image": res.params.get("image"),
    }
    if res.state != "BUILD":
        guest["deployed"] = list(DEPLOY_STAGES)
    state.setdefault("vms", {})[res.name] = guest
    return None


@sim_world_fault(
    "flaky-service",
    help="The next N starts of a service on --host fail (Exascale: a service that "
    "needs two tries). Params: service (cells: rs, ms, cellsrv, <svc>_cell; KVM hosts: "
    "rs, ms, edv, bsw_compute, egs_compute), failures (default 1).",
    params=("service", "failures"),
)
def flaky_service(world: World, host: str | None, params: Mapping[str, str]) -> str:
    host = _need_host(world, host)
    service = _need(params, "service")
    failures = _count(params.get("failures", "1"), "failures")
    scenarios.flaky_service(world, host, service, failures)
    return f"the next {failures} start(s) of {service} on {host} fail"


@sim_world_fault(
    "guest-status",
    help="A KVM guest's status changes behind fleetlog's back (an operator's command on "
    "the host, a crash). Params: guest, status (running, stopped, ERROR_down, ...).",
    params=("guest", "status"),
)
def guest_status(world: World, host: str | None, params: Mapping[str, str]) -> str:
    host = _need_host(world, host)
    guest, status = _need(params, "guest"), _need(params, "status")
    try:
        scenarios.ganeti_flip(world, host, guest, status)
    except KeyError as exc:
        raise WorldFaultError(str(exc).strip("'\"")) from None
    return f"guest {guest} on {host} is now {status}"


# --------------------------------------------------------------------------- Ganeti
@sim_seeder("ganeti_cluster")
def seed_ganeti_cluster(res: SeedResource, world: Seeding) -> str | None:
    state = world.host(res.host)
    if "ganeti" not in state:
        state["ganeti"] = ganeti_state.new_cluster(res.name, [res.host])
    return None


@sim_seeder("ganeti_vm")
def seed_ganeti_vm(res: SeedResource, world: Seeding) -> str | None:
    cluster = world.resource(_ref(res.params.get("cluster"), "ganeti_cluster"))
    if cluster is None:
        return f"{res.id}: its cluster is not in the twin"
    seed_ganeti_cluster(cluster, world)
    g = world.host(cluster.host)["ganeti"]
    if res.state in ("defined", "DELETED"):
        return None
    if res.state == "BUILD":
        return _as_shipped(res, ())
    macs = [m for m in str(res.params.get("macs") or "").split(",") if m]
    ips = [i for i in str(res.params.get("ips") or "").split(",") if i]
    networks = [n for n in str(res.params.get("networks") or "").split(",") if n]
    nics = [
        ganeti_state.new_nic(
            g, net, macs[i] if i < len(macs) else None, ips[i] if i < len(ips) else None
        )
        for i, net in enumerate(networks)
    ]
    g["instances"][res.name] = {
        "admin": "up" if res.state == "ACTIVE" else "down",
        "running": res.state == "ACTIVE",
        "pnode": str(res.params.get("node") or sorted(g["nodes"])[0]),
        "vcpus": int(res.params.get("vcpus") or 1),
        "maxmem": int(res.params.get("ram") or 1024),
        "disks": [int(d) for d in str(res.params.get("disks") or "10240").split(",") if d],
        "nics": nics,
        "os": str(res.params.get("os") or "snf-image+default"),
    }
    if res.state == "ERROR":
        g["instances"][res.name].update(admin="up", running=False)
    return None


@sim_world_fault(
    "ganeti-drift",
    help="A Ganeti instance changes behind fleetlog's back, on the master --host. "
    "Params: instance, and any of admin (up, down, offline), running (true, false), "
    "vcpus, maxmem, removed (true: gone from the cluster).",
    params=("instance", "admin", "running", "vcpus", "maxmem", "removed"),
)
def ganeti_drift(world: World, host: str | None, params: Mapping[str, str]) -> str:
    host = _need_host(world, host)
    name = _need(params, "instance")
    changes: dict[str, Any] = {}
    for key, value in params.items():
        if key in ("running", "removed"):
            changes[key] = _bool(value, key)
        elif key in ("vcpus", "maxmem"):
            changes[key] = _count(value, key)
        elif key == "admin":
            changes[key] = value
    if not changes:
        raise WorldFaultError("say what drifts: admin=, running=, vcpus=, maxmem= or removed=")
    try:
        scenarios.ganeti_drift(world, host, name, **changes)
    except KeyError as exc:
        raise WorldFaultError(str(exc).strip("'\"")) from None
    shown = ", ".join(f"{k}={v}" for k, v in sorted(changes.items()))
    return f"Ganeti instance {name} on {host} drifted: {shown}"


# ------------------------------------------------------------------------- xCAT HA
@sim_seeder("ha_mn")
def seed_ha_mn(res: SeedResource, world: Seeding) -> str | None:
    state = world.host(res.host)
    nic = str(res.params.get("nic") or "eth0")
    vip = str(res.params.get("vip") or "10.0.0.100")
    netmask = str(res.params.get("netmask") or "24")
    mns = sorted(r.host for r in world.resources("ha_mn"))
    subnet = vip.rpartition(".")[0]
    own = f"{subnet}.{mns.index(res.host) + 1}/{netmask}"
    state.setdefault("role", "xcat_mn")
    state.setdefault("hostname", res.host)
    state.setdefault("ifaces", {nic: [own]})
    shared = str(res.params.get("shared") or "/HA-data")
    volume = world.shared("nfs:" + shared.strip("/"))
    volume.setdefault("fs", {shared: {"t": "d"}})
    return _as_shipped(res, ("installed",))


@sim_seeder("ha_pair")
def seed_ha_pair(res: SeedResource, world: Seeding) -> str | None:
    """The pair's own checks (the VIP answers, and from one node only) run from its
    host: a vantage point on the same network, with no address of its own to hold."""
    world.host(res.host).setdefault("hostname", res.host)
    return _as_shipped(res, ("defined",))


@sim_world_fault(
    "vip-answering",
    help="An address already answers ping from --host (default: a host 'intruder' "
    "added to the twin): xCAT HA's setup and activation must refuse it. Params: address.",
    params=("address",),
)
def vip_answering(world: World, host: str | None, params: Mapping[str, str]) -> str:
    address = _need(params, "address")
    if "/" in address or not address.replace(".", "").isdigit():
        raise WorldFaultError(f"address {address!r}: give an IPv4 address like 10.0.0.100")
    host = host or "intruder"
    state = world.host_state(host)
    ifaces = state.setdefault("ifaces", {})
    addrs = ifaces.setdefault("eth0", [])
    if f"{address}/24" not in addrs:
        addrs.append(f"{address}/24")
    state.setdefault("hostname", host)
    world.set_host_state(host, state)
    return f"{address} now answers from {host}"


# ------------------------------------------------------------------------- diskless
@sim_seeder("diskless_image")
def seed_diskless_image(res: SeedResource, world: Seeding) -> str | None:
    from fleetlog.engine.model import expand_names

    admin = world.host(res.host)
    admin.setdefault("role", "admin")
    admin.setdefault("hostname", res.host)
    chap = _chap_from_environment()
    servers = str(res.params.get("iscsi_servers") or "iscsi_srv[1-2]")
    for srv in (n.rpartition("/")[2] for n in expand_names(servers)):
        state = world.host(srv)
        state.setdefault("role", "iscsi_server")
        state.setdefault("hostname", srv)
        if chap:
            state.setdefault("lio", {})["chap"] = chap
    return _as_shipped(res, ("defined", "retired"))


def _chap_from_environment() -> dict[str, dict[str, str]]:
    from fleetlog.engine.backends.sim import secret_digest

    chap: dict[str, dict[str, str]] = {}
    for prefix, (user, password) in _CHAP.items():
        u = os.environ.get(f"FLEETLOG_SECRET_{user}")
        p = os.environ.get(f"FLEETLOG_SECRET_{password}")
        if u and p:
            chap[prefix] = {"username": secret_digest(u), "password": secret_digest(p)}
    return chap


@sim_seeder("diskless_node")
def seed_diskless_node(res: SeedResource, world: Seeding) -> str | None:
    state = world.host(res.host)
    state.setdefault("hostname", res.host)
    return _as_shipped(res, ("trapped",))


@sim_world_fault(
    "cloud-init",
    help="cloud-init in the reference VM of the admin --host (default top1) finishes "
    "with other errors (param errors: ';'-separated; empty: none) or leaves a "
    "malformed result file (param malformed=true).",
    params=("errors", "malformed"),
)
def cloud_init(world: World, host: str | None, params: Mapping[str, str]) -> str:
    host = host or "top1"
    state = world.host_state(host)
    if _bool(params.get("malformed", "false"), "malformed"):
        state["cloud_init"] = {"malformed": True}
        said = "leaves a malformed result file"
    else:
        errors = [e.strip() for e in params.get("errors", "").split(";") if e.strip()]
        state["cloud_init"] = {"errors": errors}
        said = f"finishes with {len(errors)} error(s)"
    world.set_host_state(host, state)
    return f"cloud-init on {host} {said}"


# -------------------------------------------------------------------------- helpers
def _ref(value: Any, kind: str) -> str:
    """A reference parameter as a resource id (``node1`` or ``kvm_host/node1``)."""
    text = str(value or "")
    return text if "/" in text else f"{kind}/{text}"


def _need(params: Mapping[str, str], key: str) -> str:
    value = params.get(key)
    if not value:
        raise WorldFaultError(f"needs --param {key}=...")
    return value


def _need_host(world: World, host: str | None) -> str:
    if not host:
        raise WorldFaultError("needs --host HOST")
    if host not in world.hosts():
        raise WorldFaultError(f"the simulated world has no host {host!r}")
    return host


def _count(value: str, key: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = 0
    if n < 1:
        raise WorldFaultError(f"{key} must be a whole number >= 1, not {value!r}")
    return n


def _bool(value: str, key: str) -> bool:
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise WorldFaultError(f"{key} must be true or false, not {value!r}")
