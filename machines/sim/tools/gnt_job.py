"""Fake ``gnt-job``, ``gnt-cluster`` and the RAPI on a simulated Ganeti master.

``gnt-job watch ID`` exits 0 once the job succeeded, 1 when it failed or is gone.
``gnt-job list [--no-headers] [--separator=S] [-o FIELDS] [IDS]`` prints the job queue
as Ganeti does (fields ``id``, ``status``, ``summary`` — ``INSTANCE_CREATE(snf-1)`` —
and the ``received_ts``/``start_ts``/``end_ts`` times as ``FormatTime`` prints them, in
UTC). ``gnt-cluster getmaster`` names the master. ``curl [-s] [-k] URL`` answers the
RAPI's ``/2/instances`` and ``/2/jobs`` (``?bulk=1`` for the full objects) with the JSON
the RAPI returns, from the same state; any other URL is a 404.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult, sim_tool
from fleetlog.machines.sim.tools import ganeti_state as gs
from fleetlog.machines.sim.tools._args import parse

JOB_FIELDS = ("id", "status", "summary", "received_ts", "start_ts", "end_ts", "opstatus")
JOB_TITLES = {
    "id": "ID",
    "status": "Status",
    "summary": "Summary",
    "received_ts": "Received",
    "start_ts": "Start",
    "end_ts": "End",
    "opstatus": "OpCode_status",
}


def format_time(ts: list[int] | None) -> str:
    if ts is None:
        return "-"
    when = datetime.fromtimestamp(ts[0], UTC)
    return when.strftime("%Y-%m-%d %H:%M:%S") + f".{ts[1]:06d}"


def _job_cell(job: dict[str, Any], field: str) -> str:
    if field == "summary":
        return ",".join(gs.summary(job))
    if field.endswith("_ts"):
        return format_time(job[field])
    if field == "opstatus":
        return ",".join(job["opstatus"])
    return str(job[field])


def _watch(g: dict[str, Any], args: list[str]) -> ToolResult:
    """``gnt-job watch ID``: Ganeti's ``WatchJob`` follows the job to its end and exits
    non-zero when it failed. The sim cannot block, so a job still pending exits 75
    (EX_TEMPFAIL) at once; hold a watcher in place with a ``hang`` fault instead."""
    if len(args) != 1:
        raise ToolFailure("usage: gnt-job watch ID", 2)
    job_id = args[0]
    head = f"Output from job {job_id} follows"
    out = f"{head}\n{'-' * len(head)}\n"
    job = g["jobs"].get(job_id)
    if job is None:
        return ToolResult(1, out, f"Job {job_id} failed: Job {job_id} not found\n")
    if job["status"] == "success":
        return ToolResult(0, out)
    if job["status"] in ("error", "canceled"):
        result = job["opresult"][0]
        why = result[1][0] if isinstance(result, list) else job["status"]
        return ToolResult(1, out, f"Job {job_id} failed: {why}\n")
    return ToolResult(75, out, f"Job {job_id} is still {job['status']}\n")


@sim_tool("gnt-job")
def gnt_job(ctx: ToolContext) -> ToolResult:
    if not ctx.args or ctx.args[0] not in ("list", "watch"):
        raise ToolFailure("usage: gnt-job list [--no-headers] [--separator=S] [-o F] [IDS]", 2)
    g = gs.cluster(ctx.state, ctx.host)
    if ctx.args[0] == "watch":
        return _watch(g, ctx.args[1:])
    opts = parse(
        "gnt-job list",
        ctx.args[1:],
        valued=["-o", "--output", "--separator"],
        flags=["--no-headers", "--running", "--pending", "--finished"],
    )
    fields = (opts.values.get("-o") or opts.values.get("--output") or "id,status,summary").split(
        ","
    )
    unknown = [f for f in fields if f not in JOB_FIELDS]
    if unknown:
        return ToolResult(2, "", f"Warning: Queried for unknown fields {', '.join(unknown)}\n")
    ids = opts.positional or sorted(g["jobs"], key=int)
    rows: list[list[str]] = []
    if "--no-headers" not in opts.flags:
        rows.append([JOB_TITLES[f] for f in fields])
    for job_id in ids:
        job = g["jobs"].get(job_id)
        if job is None:
            continue  # archived or never there: Ganeti lists nothing for it
        rows.append([_job_cell(job, f) for f in fields])
    sep = opts.values.get("--separator")
    if sep is not None:
        return ToolResult(0, "".join(sep.join(r) + "\n" for r in rows))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(len(fields))]
    lines = [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return ToolResult(0, "".join(line + "\n" for line in lines))


@sim_tool("gnt-cluster")
def gnt_cluster(ctx: ToolContext) -> ToolResult:
    if ctx.args[:1] != ["getmaster"]:
        raise ToolFailure("usage: gnt-cluster getmaster", 2)
    gs.cluster(ctx.state, ctx.host)
    return ToolResult(0, f"{ctx.host}\n")


def rapi_instance(g: dict[str, Any], name: str, inst: dict[str, Any]) -> dict[str, Any]:
    """One instance as ``GET /2/instances?bulk=1`` returns it (``rlib2.I_FIELDS``)."""
    f = gs.fields_of(g, name, inst)
    return {
        "name": name,
        "status": f["status"],
        "admin_state": f["admin_state"],
        "oper_state": f["oper_state"],
        "pnode": f["pnode"],
        "snodes": [],
        "os": f["os"],
        "disk_template": "plain",
        "disk.sizes": f["disk.sizes"],
        "nic.macs": f["nic.macs"],
        "nic.ips": f["nic.ips"],
        "nic.networks": f["nic.networks"],
        "beparams": {"vcpus": f["be/vcpus"], "maxmem": f["be/maxmem"], "minmem": f["be/minmem"]},
        "tags": f["tags"],
    }


def rapi_get(g: dict[str, Any], url: str) -> tuple[int, Any]:
    """(HTTP status, JSON body) of a RAPI GET."""
    parts = urlsplit(url)
    bulk = parse_qs(parts.query).get("bulk", ["0"])[0] == "1"
    if parts.path == "/2/instances":
        names = sorted(g["instances"])
        if bulk:
            return 200, [rapi_instance(g, n, g["instances"][n]) for n in names]
        return 200, [{"id": n, "uri": f"/2/instances/{n}"} for n in names]
    if parts.path == "/2/jobs":
        ids = sorted(g["jobs"], key=int)
        if bulk:
            return 200, [gs.public_job(g["jobs"][i]) for i in ids]
        return 200, [{"id": int(i), "uri": f"/2/jobs/{i}"} for i in ids]
    return 404, {"code": 404, "message": "Not Found", "explain": parts.path}


@sim_tool("curl")
def curl(ctx: ToolContext) -> ToolResult:
    opts = parse("curl", ctx.args, flags=["-s", "-k", "-f", "--fail", "-sk", "-ks", "--silent"])
    if len(opts.positional) != 1:
        raise ToolFailure("curl: expected one URL", 2)
    g = gs.cluster(ctx.state, ctx.host)
    status, body = rapi_get(g, opts.positional[0])
    if status != 200 and ({"-f", "--fail"} & opts.flags):
        return ToolResult(22, "", f"curl: (22) The requested URL returned error: {status}\n")
    return ToolResult(0, json.dumps(body) + "\n")
