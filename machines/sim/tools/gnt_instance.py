"""Fake ``gnt-instance``: Ganeti's view of the guests on a node (seed: Synnefo/Ganeti).

Supported: ``list [--no-headers] [-o name,status]``, ``info NAME``, ``startup NAME``,
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
