"""Ganeti's listings as the reconciler reads them: ``gnt-instance list``, ``gnt-job list``
and the RAPI's ``GET /2/instances?bulk=1`` and ``GET /2/jobs?bulk=1``.

Declared by the built-in pack (``Pack.listing_formats``) and named in a kind's observe
block (``list "gnt-instance list …" on cluster format ganeti_instances columns "…"
separator "|"``). Each follows what Ganeti itself prints (``lib/cli.py``
``FormatQueryResult`` and ``lib/client/gnt_instance.py``, ``gnt_job.py``; RAPI
``lib/rapi/rlib2.py``):

- ``gnt-instance list --separator=S``: one row per instance, the ``-o`` fields in order.
  Booleans are ``Y``/``N``; sizes are MiB without a unit once a separator is given
  (``FormatUnit`` with ``m``), human units (``512M``, ``1.0G``) otherwise; list fields
  (``disk.sizes``, ``nic.macs``, ``nic.ips``, ``nic.networks``) are comma-joined with
  ``str()`` of each item, so a NIC without an address reads ``None``. A value Ganeti
  cannot get prints as ``??`` / ``?`` / ``-`` / ``*`` (``(unknown)``, ``(nodata)``,
  ``(unavail)``, ``(offline)`` with ``--verbose``): the field is None, and when it is
  the ``status`` the row is *unknown* — present, state unknown.
- ``gnt-job list --separator=S -o id,status,summary[,received_ts,start_ts,end_ts]``:
  status is one of queued, waiting, canceling, running, canceled, success, error;
  timestamps print as ``FormatTime`` does (``YYYY-MM-DD HH:MM:SS.ffffff``, read as UTC:
  run the listing with ``TZ=UTC`` on the master).
- RAPI: a JSON list of objects with Ganeti's query field names (``name``, ``status``,
  ``oper_state``, ``disk.sizes``, ``nic.macs``, …) and ``beparams`` / ``hvparams``
  dicts, read as ``be/NAME`` / ``hv/NAME`` fields the way ``gnt-instance list`` names
  them; jobs with ``ops`` (opcode dicts with ``OP_ID``) and timestamps as
  ``[seconds, microseconds]``. A listing without ``bulk=1`` (only ids and URIs) is
  refused: it says nothing about any instance's status.

Anything else raises ``ValueError`` with the line or item: the reconciler then treats
the whole listing as unknown, never as "nothing there".
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from fleetlog.engine.model.listing import FormatOptions, Job, JobOutcome, Listed

#: What Ganeti prints for a value it could not get (RSS_DESCRIPTION, terse and verbose).
UNAVAILABLE = frozenset({"??", "?", "-", "*", "(unknown)", "(nodata)", "(unavail)", "(offline)"})
BOOL_FIELDS = frozenset({"oper_state", "admin_up", "network_port_open"})
INT_FIELDS = frozenset({"be/vcpus", "oper_vcpus", "network_port", "be/auto_balance"})
#: Fields Ganeti types as units (MiB).
UNIT_FIELDS = frozenset({"be/maxmem", "be/minmem", "be/memory", "oper_ram", "disk_usage"})
LIST_FIELDS = frozenset(
    {
        "disk.sizes",
        "disk.names",
        "disk.uuids",
        "nic.macs",
        "nic.ips",
        "nic.modes",
        "nic.links",
        "nic.bridges",
        "nic.networks",
        "nic.networks.names",
        "nic.names",
        "nic.uuids",
        "snodes",
        "tags",
    }
)
JOB_OUTCOMES: dict[str, JobOutcome] = {
    "queued": "pending",
    "waiting": "pending",
    "running": "pending",
    "canceling": "pending",
    "success": "success",
    "error": "error",
    "canceled": "canceled",
}
_UNIT = re.compile(r"^(\d+(?:\.\d+)?)([MGT]?)$")
_UNIT_FACTOR = {"": 1, "M": 1, "G": 1024, "T": 1024 * 1024}


def mebibytes(text: str) -> int:
    """A Ganeti size as MiB: ``10240`` (``--separator``'s default unit), ``512M``,
    ``1.0G``, ``2.5T`` (human units, rounded as Ganeti rounds them)."""
    m = _UNIT.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a size")
    return round(float(m.group(1)) * _UNIT_FACTOR[m.group(2)])


def _bool(text: str) -> bool:
    if text in ("Y", "N"):
        return text == "Y"
    raise ValueError(f"{text!r} is not Y or N")


def cell_value(field: str, text: str) -> Any:
    """One ``gnt-instance list`` cell as a value; None when Ganeti could not get it."""
    if text in UNAVAILABLE:
        return None
    if field in BOOL_FIELDS:
        return _bool(text)
    if field in INT_FIELDS:
        return int(text)
    if field in UNIT_FIELDS or field.startswith("disk.size/"):
        return mebibytes(text)
    if field in LIST_FIELDS:
        if text == "":
            return []
        items = text.split(",")
        if field == "disk.sizes":
            return [mebibytes(i) for i in items]
        return [None if i == "None" else i for i in items]
    return text


def ganeti_time(text: str) -> str | None:
    """``FormatTime``'s ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (UTC) as ISO-8601."""
    if text in UNAVAILABLE or text == "":
        return None
    for pattern in ("%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%d %H:%M:%S"):
        try:
            when = datetime.strptime(text, pattern).replace(tzinfo=UTC)
        except ValueError:
            continue
        return when.isoformat().replace("+00:00", "Z")
    raise ValueError(f"{text!r} is not a Ganeti timestamp")


def rapi_time(value: Any) -> str | None:
    """A RAPI timestamp (``[seconds, microseconds]``) as ISO-8601."""
    if value is None:
        return None
    if (
        not isinstance(value, list | tuple)
        or len(value) != 2
        or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError(f"{value!r} is not a [seconds, microseconds] timestamp")
    when = datetime.fromtimestamp(value[0] + value[1] / 1e6, UTC)
    return when.isoformat().replace("+00:00", "Z")


def _rows(
    text: str, options: FormatOptions, defaults: tuple[str, ...]
) -> list[tuple[int, dict[str, str]]]:
    cols = options.columns or defaults
    out: list[tuple[int, dict[str, str]]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        cells = line.split(options.separator) if options.separator else line.split()
        if len(cells) != len(cols):
            raise ValueError(
                f"line {lineno}: {len(cells)} field(s), expected {len(cols)} "
                f"({', '.join(cols)}): {line[:80]!r}"
            )
        out.append((lineno, dict(zip(cols, (c.strip() for c in cells), strict=True))))
    return out


class GanetiInstances:
    """``gnt-instance list --no-headers --separator=S -o FIELDS`` (``name`` and
    ``status`` among them). A header row (``Instance``) is skipped."""

    name = "ganeti_instances"

    def resources(self, text: str, options: FormatOptions) -> list[Listed]:
        cols = options.columns or ("name", "status")
        if "name" not in cols or "status" not in cols:
            raise ValueError("format ganeti_instances needs the 'name' and 'status' fields")
        out: list[Listed] = []
        for lineno, row in _rows(text, FormatOptions(cols, options.separator), cols):
            if row["name"] == "Instance" and row["status"] == "Status" and not out:
                continue
            try:
                fields = {f: cell_value(f, v) for f, v in row.items()}
            except ValueError as exc:
                raise ValueError(f"line {lineno}: {exc}") from None
            name = fields["name"]
            if not isinstance(name, str) or not name:
                raise ValueError(f"line {lineno}: no instance name")
            pnode = fields.get("pnode")
            host = pnode if isinstance(pnode, str) else None
            status = fields["status"]
            if status is None:
                out.append(Listed(name, None, fields, host, unknown=f"status {row['status']!r}"))
            else:
                out.append(Listed(name, str(status), fields, host))
        return out


class GanetiJobs:
    """``gnt-job list --no-headers --separator=S -o id,status,summary[,…_ts]``."""

    name = "ganeti_jobs"

    def jobs(self, text: str, options: FormatOptions) -> list[Job]:
        cols = options.columns or ("id", "status", "summary")
        if "id" not in cols or "status" not in cols:
            raise ValueError("format ganeti_jobs needs the 'id' and 'status' fields")
        out: list[Job] = []
        for lineno, row in _rows(text, FormatOptions(cols, options.separator), cols):
            if row["id"] == "ID" and not out:
                continue  # a header row
            try:
                out.append(_job(row["id"], row["status"], _summary(row.get("summary")), row))
            except ValueError as exc:
                raise ValueError(f"line {lineno}: {exc}") from None
        return out


def _summary(text: str | None) -> tuple[str, ...]:
    if text is None or text in UNAVAILABLE or text == "":
        return ()
    return tuple(s for s in text.split(",") if s)


def _job(job_id: str, status: str, ops: tuple[str, ...], row: dict[str, str]) -> Job:
    if not job_id.isdigit():
        raise ValueError(f"job id {job_id!r} is not a number")
    if status not in JOB_OUTCOMES:
        raise ValueError(f"job {job_id}: unknown status {status!r}")
    return Job(
        job_id,
        status,
        JOB_OUTCOMES[status],
        ops,
        received=ganeti_time(row.get("received_ts", "")),
        started=ganeti_time(row.get("start_ts", "")),
        ended=ganeti_time(row.get("end_ts", "")),
    )


def _json_list(text: str, what: str) -> list[dict[str, Any]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {exc.lineno}: not JSON: {exc.msg}") from None
    if not isinstance(data, list):
        raise ValueError(f"expected a JSON list of {what}, got {type(data).__name__}")
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ValueError(f"item {i}: expected an object, got {type(item).__name__}")
    return data


class RapiInstances:
    """RAPI ``GET /2/instances?bulk=1``."""

    name = "ganeti_rapi_instances"

    def resources(self, text: str, options: FormatOptions) -> list[Listed]:
        out: list[Listed] = []
        for i, item in enumerate(_json_list(text, "instances")):
            name = item.get("name")
            if "uri" in item and "name" not in item:
                raise ValueError(f"item {i}: only an id and a URI: read the list with bulk=1")
            if not isinstance(name, str) or not name:
                raise ValueError(f"item {i}: no instance name")
            if "status" not in item:
                raise ValueError(f"item {i} ({name}): no 'status': was the list read with bulk=1?")
            fields: dict[str, Any] = {}
            for key, value in item.items():
                if key in ("beparams", "hvparams") and isinstance(value, dict):
                    prefix = key[:2]
                    fields.update({f"{prefix}/{k}": v for k, v in value.items()})
                else:
                    fields[key] = value
            status = item["status"]
            pnode = item.get("pnode")
            host = pnode if isinstance(pnode, str) else None
            if status is None:
                out.append(Listed(name, None, fields, host, unknown="status null"))
            elif isinstance(status, str):
                out.append(Listed(name, status, fields, host))
            else:
                raise ValueError(f"item {i} ({name}): status {status!r} is not a string")
        return out


class RapiJobs:
    """RAPI ``GET /2/jobs?bulk=1``."""

    name = "ganeti_rapi_jobs"

    def jobs(self, text: str, options: FormatOptions) -> list[Job]:
        out: list[Job] = []
        for i, item in enumerate(_json_list(text, "jobs")):
            job_id, status = item.get("id"), item.get("status")
            if isinstance(job_id, bool) or not isinstance(job_id, int | str):
                raise ValueError(f"item {i}: no job id")
            if not isinstance(status, str):
                raise ValueError(f"item {i} (job {job_id}): no 'status': read with bulk=1?")
            ops: list[str] = []
            for op in item.get("ops") or []:
                if not isinstance(op, dict) or not isinstance(op.get("OP_ID"), str):
                    raise ValueError(f"item {i} (job {job_id}): an op without OP_ID")
                ops.append(op["OP_ID"])
            if not ops:
                ops = [str(s) for s in item.get("summary") or []]
            try:
                job = _job(str(job_id), status, tuple(ops), {})
                out.append(
                    Job(
                        job.id,
                        job.status,
                        job.outcome,
                        job.ops,
                        received=rapi_time(item.get("received_ts")),
                        started=rapi_time(item.get("start_ts")),
                        ended=rapi_time(item.get("end_ts")),
                    )
                )
            except ValueError as exc:
                raise ValueError(f"item {i}: {exc}") from None
        return out


INSTANCES = GanetiInstances()
JOBS = GanetiJobs()
RAPI_INSTANCES = RapiInstances()
RAPI_JOBS = RapiJobs()
