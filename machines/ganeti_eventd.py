"""snf-ganeti-eventd's messages as an ingest source (``fleetlog ingest``).

Synnefo's eventd (``snf-cyclades-gtools/synnefo/ganeti/eventd.py``) watches Ganeti's job
queue and publishes, each time a job file changes, one JSON message per opcode of the
job; Cyclades' dispatcher reads them in ``snf-cyclades-app/synnefo/logic/callbacks.py``
and applies them in ``logic/backend.py`` (``process_op_status``). The shapes read here:

- ``ganeti-op-status`` (eventd): ``instance``, ``operation`` (the opcode), ``jobId``,
  ``status`` (the opcode's Ganeti job status), ``logmsg`` (the op log's last line),
  ``event_time`` (Ganeti's ``[seconds, microseconds]``), ``cluster``, ``result``;
  ``job_fields`` (the job's input: ``nics``, ``disks``, ``beparams`` for
  ``OP_INSTANCE_CREATE`` and ``OP_INSTANCE_SET_PARAMS``) and, after a successful create
  or startup or a finished modify, ``instance_nics``/``instance_disks`` as Ganeti then
  holds them. Older eventds sent ``nics`` and ``beparams`` at the top level instead.
- ``ganeti-create-progress`` (``snf-progress-monitor``: ``rprogress``/``wprogress``) and
  ``image-copy-progress`` (snf-image's monitor: ``progress``): how far a build's image
  copy is, in percent.
- ``ganeti-net-status`` (older Synnefo's Ganeti hook): the instance's ``nics``.

Everything else eventd and its siblings publish (``ganeti-network-status``,
``ganeti-cluster-status``, ``eventd-heartbeat``, snf-image's diagnostics) is about no
instance's state: counted as ignored. A message without ``event_time`` is refused, as
the dispatcher refuses it (``if_update_required``: a malformed time is a ``KeyError``,
the message is nacked).

What the engine does with the messages (duplicates, order, the kind's ``job`` rules,
``compare`` clauses) is ``engine/ops/ingest.py``'s; this module only reads the format.
"""

from __future__ import annotations

from typing import Any

from fleetlog.engine.ops import Message, iso_time

SOURCE_NAME = "eventd"
OP_STATUS = "ganeti-op-status"
#: Build progress: ``snf-progress-monitor``'s and snf-image's monitor's.
PROGRESS = ("ganeti-create-progress", "image-copy-progress")
NET_STATUS = "ganeti-net-status"
#: Message types of Synnefo's Ganeti exchange (and eventd's heartbeat): a message whose
#: ``type`` starts so is this source's, even a type it does not read (ignored).
PREFIXES = ("ganeti-", "image-", "eventd-")
#: Ganeti's job statuses (``waitlock`` before Ganeti 2.6).
JOB_STATUSES = frozenset(
    {"queued", "waiting", "waitlock", "canceling", "running", "canceled", "success", "error"}
)
#: ``instance_nics`` keys -> the ``gnt-instance list`` fields the kinds compare.
NIC_FIELDS = {
    "mac": "nic.macs",
    "ip": "nic.ips",
    "network": "nic.networks",
    "name": "nic.names",
    "mode": "nic.modes",
    "link": "nic.links",
    "uuid": "nic.uuids",
}
#: Always present when the NICs are: a NIC without an IP is an empty IP, not "unknown".
NIC_ALWAYS = ("mac", "ip", "network")
DISK_FIELDS = {"size": "disk.sizes", "name": "disk.names", "uuid": "disk.uuids"}


def is_eventd_message(d: dict[str, Any]) -> bool:
    """A Synnefo exchange message: a ``type`` of its families, and not fleetlog's own
    format (which names a ``resource``)."""
    kind = d.get("type")
    return isinstance(kind, str) and kind.startswith(PREFIXES) and "resource" not in d


def _instance(d: dict[str, Any]) -> str:
    name = d.get("instance")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{d['type']} message without an 'instance'")
    return name


def _when(d: dict[str, Any], instance: str) -> str:
    if d.get("event_time") is None:
        raise ValueError(f"{d['type']} message for {instance!r} without 'event_time'")
    when: str = iso_time(d["event_time"])
    return when


def _dicts(value: Any, what: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ValueError(f"{what!r} must be a list of objects")
    return value


def nic_fields(nics: Any, what: str = "instance_nics") -> dict[str, list[Any]]:
    """The NICs (``[{"mac", "ip", "network", …}]``, in NIC order) as Ganeti's list fields."""
    rows = _dicts(nics, what)
    out: dict[str, list[Any]] = {}
    for key, field_name in NIC_FIELDS.items():
        if key in NIC_ALWAYS or any(key in nic for nic in rows):
            out[field_name] = [nic.get(key) for nic in rows]
    return out


def disk_fields(disks: Any) -> dict[str, list[Any]]:
    """``instance_disks`` (``[{"name", "size", "uuid"}]``) as Ganeti's list fields."""
    rows = _dicts(disks, "instance_disks")
    return {
        field_name: [disk.get(key) for disk in rows]
        for key, field_name in DISK_FIELDS.items()
        if any(key in disk for disk in rows)
    }


def be_fields(beparams: Any) -> dict[str, Any]:
    """A job's ``beparams`` as ``be/…`` fields; Ganeti before 2.6 said ``memory`` for
    ``maxmem``."""
    if not isinstance(beparams, dict):
        raise ValueError("'beparams' must be an object")
    out = {f"be/{key}": value for key, value in beparams.items() if value is not None}
    if "be/memory" in out and "be/maxmem" not in out:
        out["be/maxmem"] = out["be/memory"]
    return out


def op_status_message(d: dict[str, Any], line: int, kind: str) -> Message:
    """One ``ganeti-op-status``: the job's outcome for one instance. The id is job,
    opcode and status: a redelivery is a duplicate, the job's ``running`` and
    ``success`` are two messages."""
    instance = _instance(d)
    job_id = d.get("jobId")
    if not isinstance(job_id, str | int) or isinstance(job_id, bool) or job_id == "":
        raise ValueError(f"{OP_STATUS} message for {instance!r} without a 'jobId'")
    operation = d.get("operation")
    if not isinstance(operation, str) or not operation:
        raise ValueError(f"{OP_STATUS} message for {instance!r} without an 'operation'")
    status = d.get("status")
    if status not in JOB_STATUSES:
        raise ValueError(
            f"{OP_STATUS} message for {instance!r}: {status!r} is not a Ganeti job status"
        )
    when = _when(d, instance)
    job_fields = d.get("job_fields") or {}
    if not isinstance(job_fields, dict):
        raise ValueError("'job_fields' must be an object")
    fields: dict[str, Any] = {}
    if d.get("instance_nics") is not None:
        fields.update(nic_fields(d["instance_nics"]))
    elif d.get("nics") is not None:
        fields.update(nic_fields(d["nics"], "nics"))
    if d.get("instance_disks") is not None:
        fields.update(disk_fields(d["instance_disks"]))
    # The flavor a job asked for is the instance's only once the job succeeded
    # (process_op_status reads beparams on success only).
    beparams = job_fields.get("beparams") or d.get("beparams")
    if beparams and status == "success":
        fields.update(be_fields(beparams))
    job: dict[str, Any] = {"id": str(job_id), "type": OP_STATUS}
    if isinstance(d.get("cluster"), str):
        job["cluster"] = d["cluster"]
    if status in ("error", "canceled") and d.get("result") is not None:
        job["result"] = d["result"]  # Ganeti's encoded error: why the job failed
    if fields:
        job["fields"] = fields
    logmsg = d.get("logmsg")
    return Message(
        line=line,
        message_id=f"{job_id}/{operation}/{status}",
        resource=f"{kind}/{instance}",
        status=None,
        event_time=when,
        source=SOURCE_NAME,
        job=job,
        operation=operation,
        job_status=status,
        fields=fields or None,
        logmsg=None if logmsg is None else str(logmsg),
    )


def progress_message(d: dict[str, Any], line: int, kind: str) -> Message:
    """A build's progress (percent, capped at 100 as Synnefo does): journaled, it moves
    nothing. It belongs to the instance's ``OP_INSTANCE_CREATE``."""
    instance = _instance(d)
    when = _when(d, instance)
    value = next((d[k] for k in ("progress", "rprogress", "wprogress") if k in d), None)
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{d['type']} message for {instance!r} without a numeric progress")
    if value < 0:
        raise ValueError(f"{d['type']} message for {instance!r}: negative progress {value}")
    return Message(
        line=line,
        message_id=f"progress/{when}",
        resource=f"{kind}/{instance}",
        status=None,
        event_time=when,
        source=SOURCE_NAME,
        job={"type": d["type"]},
        operation="OP_INSTANCE_CREATE",
        progress=float(min(value, 100)),
    )


def net_status_message(d: dict[str, Any], line: int, kind: str) -> Message:
    """The instance's NICs as Ganeti's hook saw them after a start or a modify."""
    instance = _instance(d)
    when = _when(d, instance)
    fields = nic_fields(d.get("nics"), "nics")
    return Message(
        line=line,
        message_id=f"net/{when}",
        resource=f"{kind}/{instance}",
        status=None,
        event_time=when,
        source=SOURCE_NAME,
        job={"type": NET_STATUS, "fields": fields},
        fields=fields,
    )


def eventd_messages(d: dict[str, Any], line: int, kind: str) -> tuple[list[Message], int]:
    """(messages, parts ignored) for one message of Synnefo's Ganeti exchange."""
    kind_of_message = d["type"]
    if kind_of_message == OP_STATUS:
        return [op_status_message(d, line, kind)], 0
    if kind_of_message in PROGRESS:
        return [progress_message(d, line, kind)], 0
    if kind_of_message == NET_STATUS:
        return [net_status_message(d, line, kind)], 0
    return [], 1  # networks, clusters, heartbeats, image diagnostics: no instance state


class EventdMessages:
    """The ingest source the pack declares (``pack.py``)."""

    name = SOURCE_NAME

    def accepts(self, data: dict[str, Any]) -> bool:
        return is_eventd_message(data)

    def messages(self, data: dict[str, Any], line: int, kind: str) -> tuple[list[Message], int]:
        return eventd_messages(data, line, kind)


SOURCE = EventdMessages()
