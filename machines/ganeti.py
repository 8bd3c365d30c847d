"""Ganeti job results as an ingest source (``fleetlog ingest``).

Ganeti's job output is Python literals, not JSON (``'``, ``None``, ``True``); the
engine parses each message with ``ast.literal_eval`` and hands it here when it looks like
a job (``ops`` with ``opstatus``, ``opresult`` or ``status``). Mapped per Synnefo: an
``OP_INSTANCE_QUERY_DATA`` result gives each instance's status (admin state × run state),
and a finished ``OP_INSTANCE_CREATE/STARTUP/SHUTDOWN/REBOOT/REMOVE`` job the status its
success (or a failed create) implies.
"""

from __future__ import annotations

from typing import Any

from fleetlog.engine.ops import Message, iso_time

#: Ganeti job statuses that are final (success, error, canceled); the others (queued,
#: waiting, running, canceling) mean "not done yet".
FINAL_JOB = ("success", "error", "canceled")
#: Status of the instance after a successful job of each opcode (Synnefo's mapping:
#: CREATE->STARTED, STARTUP->STARTED, SHUTDOWN->STOPPED, REBOOT->STARTED,
#: REMOVE->DESTROYED), as the Ganeti instance status the observe maps know.
JOB_SUCCESS_STATUS = {
    "OP_INSTANCE_CREATE": "running",
    "OP_INSTANCE_STARTUP": "running",
    "OP_INSTANCE_REBOOT": "running",
    "OP_INSTANCE_SHUTDOWN": "ADMIN_down",
    "OP_INSTANCE_REMOVE": "removed",
}
#: A create that failed or was cancelled: Synnefo's ERROR (admin up, not running).
CREATE_FAILED_STATUS = "ERROR_down"


def ganeti_instance_status(info: dict[str, Any]) -> str:
    """Ganeti's instance status from its admin (config) state and run state."""
    if isinstance(info.get("status"), str):
        return str(info["status"])
    admin = info.get("config_state", info.get("admin_state"))
    run = info.get("run_state", info.get("oper_state"))
    if isinstance(run, bool):
        run = "up" if run else "down"
    if admin not in ("up", "down", "offline") or run not in ("up", "down"):
        raise ValueError(
            f"instance {info.get('name')!r}: cannot tell its status from config_state "
            f"{admin!r} and run_state {run!r}"
        )
    if admin == "up":
        return "running" if run == "up" else "ERROR_down"
    if run == "up":
        return "ERROR_up"
    return "ADMIN_offline" if admin == "offline" else "ADMIN_down"


def is_ganeti_job(d: dict[str, Any]) -> bool:
    return "ops" in d and ("opstatus" in d or "opresult" in d or "status" in d)


def ganeti_messages(d: dict[str, Any], line: int, kind: str) -> tuple[list[Message], int]:
    """(messages, ops ignored) for one Ganeti job result."""
    job_id = d.get("id")
    if not isinstance(job_id, str | int) or isinstance(job_id, bool) or job_id == "":
        raise ValueError("Ganeti job without an 'id'")
    ops = d.get("ops")
    if not isinstance(ops, list) or not ops:
        raise ValueError(f"Ganeti job {job_id}: 'ops' must be a non-empty list")
    opstatus = d.get("opstatus") or []
    opresult = d.get("opresult") or []
    status = d.get("status")
    if status is not None and status not in FINAL_JOB:
        return [], len(ops)  # queued, waiting, running, canceling: nothing happened yet
    when_raw = d.get("end_ts") or d.get("received_ts")
    if when_raw is None:
        raise ValueError(f"Ganeti job {job_id}: no end_ts to date it")
    when = iso_time(when_raw)
    out: list[Message] = []
    ignored = 0
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("OP_ID"), str):
            raise ValueError(f"Ganeti job {job_id}: op {i} has no OP_ID")
        op_id = op["OP_ID"]
        op_status = opstatus[i] if i < len(opstatus) else status
        job = {"id": str(job_id), "op": op_id, "opstatus": op_status}
        if op_id == "OP_INSTANCE_QUERY_DATA":
            result = opresult[i] if i < len(opresult) else None
            if op_status != "success":
                ignored += 1
                continue
            if not isinstance(result, dict):
                raise ValueError(f"Ganeti job {job_id}: op {i} result is not a dict")
            for name in sorted(result):
                info = result[name]
                if not isinstance(info, dict):
                    raise ValueError(f"Ganeti job {job_id}: instance {name!r} is not a dict")
                st = ganeti_instance_status(info)
                extra = {k: info.get(k) for k in ("config_state", "run_state", "pnode")}
                out.append(
                    Message(
                        line,
                        f"{job_id}/{i}/{name}",
                        f"{kind}/{name}",
                        st,
                        when,
                        "ganeti",
                        {**job, **extra},
                    )
                )
            continue
        name = op.get("instance_name") or op.get("instance")
        if op_id in JOB_SUCCESS_STATUS and isinstance(name, str) and name:
            if op_status == "success":
                st = JOB_SUCCESS_STATUS[op_id]
            elif op_id == "OP_INSTANCE_CREATE" and op_status in ("error", "canceled"):
                st = CREATE_FAILED_STATUS
            else:
                ignored += 1
                continue
            out.append(Message(line, f"{job_id}/{i}", f"{kind}/{name}", st, when, "ganeti", job))
        else:
            ignored += 1
    return out, ignored


class GanetiJobs:
    """The ingest source the pack declares (``pack.py``)."""

    name = "ganeti"

    def accepts(self, data: dict[str, Any]) -> bool:
        return is_ganeti_job(data)

    def messages(self, data: dict[str, Any], line: int, kind: str) -> tuple[list[Message], int]:
        return ganeti_messages(data, line, kind)


SOURCE = GanetiJobs()
