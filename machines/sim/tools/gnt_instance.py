"""Fake ``gnt-instance``: a Ganeti cluster's instances (seed: Synnefo/Ganeti).

On a cluster's master (a host whose state holds ``ganeti``, see ``ganeti_state``) it is
Ganeti's own command: ``list [--no-headers] [--separator=S] [--units=U] [-o FIELDS]
[NAMES]`` printed as Ganeti prints it (``Y``/``N``, MiB without a unit once a separator
is given, lists comma-joined with ``None`` for a missing item, ``?`` for a value a down
node cannot give), and ``add``, ``remove``, ``startup``, ``shutdown``, ``reboot``,
``modify -B``, each a job (``--submit`` prints ``JobID: N`` and returns).

On any other host, the older single-node view of ``vm_maker``'s guests: supported:
``list [--no-headers] [-o name,status]``, ``info NAME``, ``startup NAME``,
``shutdown NAME``, ``reboot NAME``. Guests are the ones ``vm_maker`` keeps in
``state["vms"]``; their ``status`` is shown the way Ganeti reports an instance
(admin state x observed): ``running``, ``ADMIN_down``, ``ERROR_down``, ... — a
``stopped`` guest is ``ADMIN_down``. A status written behind fleetlog's back with
``scenarios.ganeti_flip`` shows up here and in the ``vm`` observer, which is what the
reconciler has to notice.
"""

from __future__ import annotations

from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult, sim_tool
from fleetlog.machines.sim.tools import ganeti_state as gs
from fleetlog.machines.sim.tools._args import parse

GANETI_STATUSES = (
    "running",
    "ADMIN_down",
    "ADMIN_offline",
    "ERROR_up",
    "ERROR_down",
    "ERROR_nodedown",
    "ERROR_nodeoffline",
    "ERROR_wrongnode",
    "USER_down",
)


def ganeti_status(vm: dict[str, Any]) -> str:
    status = str(vm.get("status", "ERROR_down"))
    return "ADMIN_down" if status == "stopped" else status


@sim_tool("gnt-instance")
def gnt_instance(ctx: ToolContext) -> ToolResult:
    if not ctx.args:
        raise ToolFailure("usage: gnt-instance list|info|startup|shutdown|reboot ...", 2)
    command, rest = ctx.args[0], ctx.args[1:]
    if "ganeti" in ctx.state:
        return _cluster_command(ctx, command, rest)
    vms: dict[str, Any] = ctx.state.get("vms", {})
    if command == "list":
        opts = parse("gnt-instance list", rest, valued=["-o"], flags=["--no-headers"])
        fields = opts.values.get("-o", "name,status").split(",")
        if any(f not in ("name", "status") for f in fields):
            raise ToolFailure("gnt-instance list: fields are name, status", exit_code=2)
        rows = [
            [name if f == "name" else ganeti_status(vms[name]) for f in fields]
            for name in sorted(vms)
        ]
        head = [] if "--no-headers" in opts.flags else [[f.capitalize() for f in fields]]
        return ToolResult(0, "".join(" ".join(r) + "\n" for r in head + rows))
    opts = parse(f"gnt-instance {command}", rest)
    if command not in ("info", "startup", "shutdown", "reboot") or len(opts.positional) != 1:
        raise ToolFailure(f"gnt-instance: unknown command {command!r}", exit_code=2)
    name = opts.positional[0]
    vm = vms.get(name)
    if vm is None:
        raise ToolFailure(f"Failure: prerequisites not met: instance '{name}' not known")
    if command == "info":
        return ToolResult(
            0, f"Instance name: {name}\n  State: {ganeti_status(vm)}\n  Node: {ctx.host}\n"
        )
    wanted = "stopped" if command == "shutdown" else "running"
    if command == "reboot" or vm["status"] != wanted:
        vm["status"] = wanted
        ctx.log(f"guest {name} {command}")
    return ToolResult(0, "")


# ------------------------------------------------------------------ on a cluster master
TITLES = {
    "name": "Instance",
    "status": "Status",
    "admin_state": "InstanceState",
    "oper_state": "Running",
    "be/vcpus": "ConfigVCPUs",
    "be/maxmem": "ConfigMaxMem",
    "be/minmem": "ConfigMinMem",
    "disk.sizes": "Disk_sizes",
    "nic.macs": "NIC_MACs",
    "nic.ips": "NIC_IPs",
    "nic.networks": "NIC_networks",
    "pnode": "Primary_node",
    "os": "OS",
    "tags": "Tags",
}
UNIT_FIELDS = frozenset({"be/maxmem", "be/minmem"})
_SIZE = {"": 1, "m": 1, "g": 1024, "t": 1024 * 1024}


def mebibytes(text: str) -> int:
    """``--disk 0:size=10G`` / ``-B maxmem=512M``: Ganeti's ``ParseUnit`` (MiB by default)."""
    text = text.strip().lower()
    number = text.rstrip("mgtib")
    suffix = text[len(number) :].removesuffix("ib").removesuffix("b")
    if not number or suffix not in _SIZE:
        raise ValueError(text)
    return round(float(number) * _SIZE[suffix])


DEFAULT_FIELDS = "name,os,pnode,status,be/maxmem"


def format_unit(mib: int, unit: str) -> str:
    """Ganeti's ``FormatUnit``: ``m`` plain MiB, ``g``/``t`` scaled, ``h`` human."""
    if unit == "m":
        return str(mib)
    if unit == "g":
        return f"{mib / 1024:0.1f}"
    if unit == "t":
        return f"{mib / 1024 / 1024:0.1f}"
    if mib < 1024:
        return f"{mib}M"
    if mib < 1024 * 1024:
        return f"{mib / 1024:0.1f}G"
    return f"{mib / 1024 / 1024:0.1f}T"


def _cell(field: str, value: Any, unit: str, node_state: str) -> str:
    if value is None:
        return "*" if node_state == "offline" else "?"
    if isinstance(value, bool):
        return "Y" if value else "N"
    if isinstance(value, list):
        if field == "disk.sizes":
            return ",".join(format_unit(v, unit) for v in value)
        return ",".join(str(v) for v in value)
    if field in UNIT_FIELDS:
        return format_unit(int(value), unit)
    return str(value)


def _list(ctx: ToolContext, g: dict[str, Any], rest: list[str]) -> ToolResult:
    opts = parse(
        "gnt-instance list",
        rest,
        valued=["-o", "--output", "--separator", "--units"],
        flags=["--no-headers", "-v", "--verbose"],
    )
    fields = (opts.values.get("-o") or opts.values.get("--output") or DEFAULT_FIELDS).split(",")
    if fields and fields[0].startswith("+"):
        fields = [*DEFAULT_FIELDS.split(","), fields[0][1:], *fields[1:]]
    unknown = [f for f in fields if f not in TITLES]
    if unknown:
        return ToolResult(2, "", f"Warning: Queried for unknown fields {', '.join(unknown)}\n")
    sep = opts.values.get("--separator")
    unit = opts.values.get("--units") or ("m" if sep else "h")
    names = opts.positional or sorted(g["instances"])
    missing = [n for n in names if n not in g["instances"]]
    if missing:
        raise ToolFailure(f"Failure: prerequisites not met: Instance '{missing[0]}' not known")
    rows: list[list[str]] = []
    if "--no-headers" not in opts.flags:
        rows.append([TITLES[f] for f in fields])
    for name in names:
        inst = g["instances"][name]
        values = gs.fields_of(g, name, inst)
        node_state = g["nodes"].get(inst["pnode"], {}).get("state", "online")
        rows.append([_cell(f, values[f], unit, node_state) for f in fields])
    if sep is not None:
        return ToolResult(0, "".join(sep.join(r) + "\n" for r in rows))
    widths = [max((len(r[i]) for r in rows), default=0) for i in range(len(fields))]
    lines = [" ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return ToolResult(0, "".join(line + "\n" for line in lines))


def _key_values(tool: str, text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in filter(None, text.split(",")):
        key, sep, value = part.partition("=")
        if not sep:
            raise ToolFailure(f"{tool}: bad parameter {part!r} (expected name=value)", exit_code=2)
        out[key] = value
    return out


def _indexed(tool: str, text: str) -> tuple[int, dict[str, str]]:
    """``0:size=10G,mode=rw`` (``--disk`` / ``--net``)."""
    index, sep, rest = text.partition(":")
    if not sep or not index.isdigit():
        raise ToolFailure(f"{tool}: expected N:name=value,... in {text!r}", exit_code=2)
    return int(index), _key_values(tool, rest)


def _int_param(tool: str, params: dict[str, str], key: str, sizes: bool = False) -> int | None:
    if key not in params:
        return None
    try:
        return mebibytes(params[key]) if sizes else int(params[key])
    except ValueError:
        raise ToolFailure(f"{tool}: invalid value {params[key]!r} for {key}", exit_code=2) from None


def _add_op(rest: list[str]) -> tuple[dict[str, Any], bool]:
    tool = "gnt-instance add"
    disks: dict[int, dict[str, str]] = {}
    nics: dict[int, dict[str, str]] = {}
    values: dict[str, str] = {}
    submit = False
    positional: list[str] = []
    i = 0
    while i < len(rest):
        arg = rest[i]
        key, eq, inline = arg.partition("=")
        takes = key in (
            "-t",
            "-o",
            "--os-type",
            "--disk",
            "--net",
            "-B",
            "--backend-parameters",
            "-n",
            "--node",
            "--disk-template",
        )
        if takes:
            if eq:
                value = inline
            else:
                if i + 1 >= len(rest):
                    raise ToolFailure(f"{tool}: option {key} needs a value", exit_code=2)
                i += 1
                value = rest[i]
            if key == "--disk":
                n, params = _indexed(tool, value)
                disks[n] = params
            elif key == "--net":
                n, params = _indexed(tool, value)
                nics[n] = params
            else:
                values[key] = value
        elif arg == "--submit":
            submit = True
        elif arg.startswith("-"):
            raise ToolFailure(f"{tool}: unknown option {arg}", exit_code=2)
        else:
            positional.append(arg)
        i += 1
    if len(positional) != 1:
        raise ToolFailure(f"{tool}: expected one instance name", exit_code=2)
    be = _key_values(tool, values.get("-B", values.get("--backend-parameters", "")))
    sizes = [_int_param(tool, disks[n], "size", sizes=True) for n in sorted(disks)]
    if not sizes or any(size is None for size in sizes):
        raise ToolFailure(f"{tool}: every --disk needs a size", exit_code=2)
    op: dict[str, Any] = {
        "OP_ID": "OP_INSTANCE_CREATE",
        "instance_name": positional[0],
        "disk_template": values.get("-t", values.get("--disk-template", "plain")),
        "os_type": values.get("-o", values.get("--os-type", "")),
        "pnode": values.get("-n", values.get("--node")) or None,
        "beparams": {
            "vcpus": _int_param(tool, be, "vcpus") or 1,
            "maxmem": _int_param(tool, be, "maxmem", sizes=True) or 1024,
        },
        "disks": [{"size": size} for size in sizes],
        "nics": [
            {k: (v or None) for k, v in nics[n].items() if k in ("mac", "ip", "network")}
            for n in sorted(nics)
        ],
    }
    return op, submit


def _job_reply(g: dict[str, Any], job_id: str, submit: bool) -> ToolResult:
    if submit:
        return ToolResult(0, f"JobID: {job_id}\n")
    job = g["jobs"][job_id]
    if job["status"] == "success":
        return ToolResult(0, "")
    if job["status"] == "error":  # the job stays in the queue: a result, not a no-op
        return ToolResult(1, "", f"{job['opresult'][0][1][0]}\n")
    return ToolResult(1, "", f"Job {job_id} is still {job['status']}\n")


def _cluster_command(ctx: ToolContext, command: str, rest: list[str]) -> ToolResult:
    g = gs.cluster(ctx.state, ctx.host)
    if command == "list":
        return _list(ctx, g, rest)
    if command == "add":
        op, submit = _add_op(rest)
    else:
        opts = parse(
            f"gnt-instance {command}",
            rest,
            valued=["-B", "--backend-parameters"],
            flags=["--submit", "-f", "--force", "--no-remember"],
        )
        if len(opts.positional) != 1:
            raise ToolFailure(f"gnt-instance {command}: expected one instance name", exit_code=2)
        name = opts.positional[0]
        submit = "--submit" in opts.flags
        if command == "info":
            inst = g["instances"].get(name)
            if inst is None:
                raise ToolFailure(f"Failure: prerequisites not met: Instance '{name}' not known")
            return ToolResult(
                0,
                f"Instance name: {name}\n  State: configured to be {inst['admin']}, "
                f"actual state is {'up' if inst['running'] else 'down'}\n"
                f"  Primary node: {inst['pnode']}\n",
            )
        op_ids = {
            "remove": "OP_INSTANCE_REMOVE",
            "startup": "OP_INSTANCE_STARTUP",
            "start": "OP_INSTANCE_STARTUP",
            "shutdown": "OP_INSTANCE_SHUTDOWN",
            "stop": "OP_INSTANCE_SHUTDOWN",
            "reboot": "OP_INSTANCE_REBOOT",
            "modify": "OP_INSTANCE_SET_PARAMS",
        }
        if command not in op_ids:
            raise ToolFailure(f"gnt-instance: unknown command {command!r}", exit_code=2)
        op = {"OP_ID": op_ids[command], "instance_name": name}
        if command == "modify":
            be = _key_values("gnt-instance modify", opts.values.get("-B", ""))
            beparams = {
                k: v
                for k, v in (
                    ("vcpus", _int_param("gnt-instance modify", be, "vcpus")),
                    ("maxmem", _int_param("gnt-instance modify", be, "maxmem", sizes=True)),
                )
                if v is not None
            }
            if not beparams:
                raise ToolFailure("gnt-instance modify: nothing to change (-B)", exit_code=2)
            op["beparams"] = beparams
    job_id = gs.submit(g, op)
    ctx.log(f"ganeti job {job_id} {op['OP_ID']} {op['instance_name']}")
    return _job_reply(g, job_id, submit)
