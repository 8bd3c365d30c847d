"""A simulated Ganeti cluster, kept in its master node's state (``state["ganeti"]``).

What the fake ``gnt-instance``, ``gnt-job``, ``gnt-cluster`` and the RAPI (``curl`` on
the master) read and change. Instances have an admin state (``up``/``down``/
``offline``), a run state, a primary node, vcpus and memory, disks and NICs; their
``status`` is derived the way Ganeti derives it (``lib/query.py`` ``_GetInstStatus``):
admin up and running is ``running``, admin up and not running ``ERROR_down``, admin down
and running ``ERROR_up``, a primary node that is down ``ERROR_nodedown`` (offline:
``ERROR_nodeoffline``), where the run state cannot be read at all.

Every change is a job in the queue (``jobs``): submitted jobs run at once and end
``success`` or ``error``, unless the cluster ``hold``s them (they stay ``queued``),
``fail_next`` names an opcode whose next job fails, or a job was lost (archived: gone
from the queue). Times are real (``time.time()``), as Ganeti's ``[sec, usec]``.
``scenarios.ganeti_*`` inject all of it.
"""

from __future__ import annotations

import time
from typing import Any

from fleetlog.engine.backends.sim import ToolFailure

JOB_FINAL = ("success", "error", "canceled")


def cluster(state: dict[str, Any], host: str) -> dict[str, Any]:
    g = state.get("ganeti")
    if not isinstance(g, dict):
        raise ToolFailure(
            f"Failure: this host ({host}) is not the master of a Ganeti cluster", exit_code=1
        )
    return g


def new_cluster(name: str, nodes: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": {n: {"state": "online"} for n in nodes},
        "instances": {},
        "jobs": {},
        "next_job": 1,
        "hold": False,
        "fail_next": {},
        "mac_counter": 0,
        "ip_counter": 10,
    }


def instance_status(g: dict[str, Any], inst: dict[str, Any]) -> str:
    node = g["nodes"].get(inst["pnode"], {"state": "online"})["state"]
    if node == "offline":
        return "ERROR_nodeoffline"
    if node == "down":
        return "ERROR_nodedown"
    admin, running = inst["admin"], bool(inst["running"])
    if admin == "up":
        return "running" if running else "ERROR_down"
    if running:
        return "ERROR_up"
    return "ADMIN_offline" if admin == "offline" else "ADMIN_down"


def oper_state(g: dict[str, Any], inst: dict[str, Any]) -> bool | None:
    """The run state, or None when the primary node cannot tell."""
    node = g["nodes"].get(inst["pnode"], {"state": "online"})["state"]
    return None if node != "online" else bool(inst["running"])


def fields_of(g: dict[str, Any], name: str, inst: dict[str, Any]) -> dict[str, Any]:
    """The instance's query fields, typed as Ganeti's query layer returns them."""
    return {
        "name": name,
        "status": instance_status(g, inst),
        "admin_state": inst["admin"],
        "oper_state": oper_state(g, inst),
        "be/vcpus": inst["vcpus"],
        "be/maxmem": inst["maxmem"],
        "be/minmem": inst["maxmem"],
        "disk.sizes": list(inst["disks"]),
        "nic.macs": [n["mac"] for n in inst["nics"]],
        "nic.ips": [n["ip"] for n in inst["nics"]],
        "nic.networks": [n["network"] for n in inst["nics"]],
        "pnode": inst["pnode"],
        "os": inst["os"],
        "tags": list(inst.get("tags", [])),
    }


def new_nic(
    g: dict[str, Any],
    network: str,
    mac: str | None = None,
    ip: str | None = None,
    *,
    pool: bool = True,
) -> dict[str, Any]:
    """A NIC on ``network``: a generated MAC unless given, an address from the network's
    pool unless given or ``pool`` is off (a NIC without an IP)."""
    if mac is None:
        g["mac_counter"] += 1
        n = g["mac_counter"]
        mac = f"aa:00:00:{n // 65536 % 256:02x}:{n // 256 % 256:02x}:{n % 256:02x}"
    if ip is None and network and pool:
        g["ip_counter"] += 1
        ip = f"10.0.{g['ip_counter'] // 250}.{g['ip_counter'] % 250 + 2}"
    return {"mac": mac, "ip": ip or None, "network": network or None}


# ------------------------------------------------------------------------------ jobs
def _ts() -> list[int]:
    now = time.time()
    return [int(now), round((now % 1) * 1e6) % 1000000]


def submit(g: dict[str, Any], op: dict[str, Any]) -> str:
    """Queue one job of one opcode; run it now unless the queue is held."""
    job_id = str(g["next_job"])
    g["next_job"] += 1
    g["jobs"][job_id] = {
        "id": int(job_id),
        "status": "queued",
        "ops": [op],
        "opstatus": ["queued"],
        "opresult": [None],
        "received_ts": _ts(),
        "start_ts": None,
        "end_ts": None,
    }
    if not g.get("hold"):
        run_job(g, job_id)
    return job_id


def run_job(g: dict[str, Any], job_id: str) -> None:
    """Run a queued job: its opcode's effect, or its error."""
    job = g["jobs"][job_id]
    op = job["ops"][0]
    job["start_ts"] = _ts()
    failures = g["fail_next"]
    try:
        if failures.get(op["OP_ID"], 0) > 0:
            failures[op["OP_ID"]] -= 1
            raise ToolFailure(f"Failure: command execution error: injected {op['OP_ID']} failure")
        apply_op(g, op)
    except ToolFailure as exc:
        job.update(status="error", opstatus=["error"], opresult=[["OpExecError", [exc.message]]])
    else:
        job.update(status="success", opstatus=["success"], opresult=[None])
    job["end_ts"] = _ts()


def apply_op(g: dict[str, Any], op: dict[str, Any]) -> None:
    """What one opcode does to the cluster (``ToolFailure``: the job fails)."""
    op_id, name = op["OP_ID"], op["instance_name"]
    instances = g["instances"]
    if op_id == "OP_INSTANCE_CREATE":
        if name in instances:
            raise ToolFailure(
                f"Failure: prerequisites not met: Instance '{name}' is already in the cluster"
            )
        pnode = op.get("pnode") or sorted(g["nodes"])[0]
        if pnode not in g["nodes"]:
            raise ToolFailure(f"Failure: prerequisites not met: Node '{pnode}' is unknown")
        instances[name] = {
            "admin": "up",
            "running": True,
            "pnode": pnode,
            "vcpus": op["beparams"]["vcpus"],
            "maxmem": op["beparams"]["maxmem"],
            "disks": [d["size"] for d in op["disks"]],
            "nics": [
                new_nic(g, n.get("network", ""), n.get("mac"), n.get("ip")) for n in op["nics"]
            ],
            "os": op.get("os_type", ""),
        }
        return
    inst = instances.get(name)
    if inst is None:
        raise ToolFailure(f"Failure: prerequisites not met: Instance '{name}' not known")
    if op_id == "OP_INSTANCE_REMOVE":
        del instances[name]
    elif op_id == "OP_INSTANCE_STARTUP":
        inst.update(admin="up", running=True)
    elif op_id == "OP_INSTANCE_SHUTDOWN":
        inst.update(admin="down", running=False)
    elif op_id == "OP_INSTANCE_REBOOT":
        if not inst["running"]:
            raise ToolFailure(f"Failure: prerequisites not met: Instance {name} is not running")
    elif op_id == "OP_INSTANCE_SET_PARAMS":
        be = op.get("beparams", {})
        inst["vcpus"] = be.get("vcpus", inst["vcpus"])
        inst["maxmem"] = be.get("maxmem", inst["maxmem"])
    else:
        raise ToolFailure(f"Failure: unsupported opcode {op_id}")


def summary(job: dict[str, Any]) -> list[str]:
    out = []
    for op in job["ops"]:
        name = op["OP_ID"].removeprefix("OP_")
        target = op.get("instance_name")
        out.append(f"{name}({target})" if target else name)
    return out


def public_job(job: dict[str, Any]) -> dict[str, Any]:
    """The job as the RAPI shows it (``GET /2/jobs?bulk=1``)."""
    return {
        "id": job["id"],
        "status": job["status"],
        "ops": [dict(op) for op in job["ops"]],
        "opstatus": list(job["opstatus"]),
        "opresult": list(job["opresult"]),
        "summary": summary(job),
        "received_ts": job["received_ts"],
        "start_ts": job["start_ts"],
        "end_ts": job["end_ts"],
    }
