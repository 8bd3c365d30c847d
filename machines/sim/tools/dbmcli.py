"""Fake ``dbmcli``: the compute node's management CLI (``dbmcli -e "<command>"``).

Supported: ``list dbserver [detail]``; ``alter dbserver cellinit k=v ...``;
``alter dbserver startup|shutdown|restart services rs|ms|edv|all``.
Starting a running service succeeds with no effect (and logs nothing). A service listed
in ``state["exascale"]["start_failures"]`` fails its next n starts (a service that needs
two tries; see ``scenarios.flaky_service``).
"""

from __future__ import annotations

from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult, sim_tool
from fleetlog.machines.sim.tools import exascale_state as exa_state
from fleetlog.machines.sim.tools.cell_state import alter_service, take_start_failure
from fleetlog.machines.sim.tools.exascale_state import ONLINE

DBM_SERVICES = ("rs", "ms", "edv")


@sim_tool("dbmcli")
def dbmcli(ctx: ToolContext) -> ToolResult:
    if len(ctx.args) < 2 or ctx.args[0] != "-e":
        raise ToolFailure('usage: dbmcli -e "<command>"', exit_code=2)
    words = " ".join(ctx.args[1:]).split()
    lowered = [w.lower() for w in words]
    if lowered[:2] == ["list", "dbserver"]:
        return _list(ctx)
    if lowered[:3] == ["alter", "dbserver", "cellinit"]:
        return _cellinit(ctx, words[3:])
    if lowered[:2] == ["alter", "dbserver"] and len(lowered) == 5 and lowered[3] == "services":
        return _services(ctx, lowered[2], lowered[4])
    raise ToolFailure(f"ERROR: unsupported command: {' '.join(words)}", exit_code=2)


def _list(ctx: ToolContext) -> ToolResult:
    # dbmcli runs on database servers only: a host that answers it is a KVM host.
    if "role" not in ctx.state:
        ctx.state["role"] = "kvm_host"
    exa = exa_state.read(ctx.state)
    svc = exa["services"]

    def running(name: str) -> str:
        return "running" if svc[name] == ONLINE else "stopped"

    lines = [
        f"name: {ctx.host}",
        "status: online",
        f"cellinit: {'configured' if exa['cellinit'] else 'not configured'}",
        f"rsStatus: {running('rs')}",
        f"msStatus: {running('ms')}",
        f"edvStatus: {running('edv')}",
    ]
    return ToolResult(0, "".join(f"\t {line}\n" for line in lines))


def _cellinit(ctx: ToolContext, assignments: list[str]) -> ToolResult:
    attrs: dict[str, str] = {}
    for item in assignments:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ToolFailure(f"ERROR: bad cellinit setting {item!r}", exit_code=2)
        attrs[key] = value
    if not attrs:
        raise ToolFailure("ERROR: alter dbserver cellinit needs name=value settings", 2)
    exa = exa_state.edit(ctx.state)
    merged = {**(exa["cellinit"] or {}), **attrs}
    if merged != exa["cellinit"]:
        exa["cellinit"] = merged
        ctx.log("cellinit " + " ".join(f"{k}={v}" for k, v in sorted(attrs.items())))
    return ToolResult(0, f"DBServer {ctx.host} successfully altered\n")


def _services(ctx: ToolContext, action: str, which: str) -> ToolResult:
    if action not in ("startup", "shutdown", "restart"):
        raise ToolFailure(f"ERROR: unknown action {action!r}", exit_code=2)
    names = DBM_SERVICES if which == "all" else (which,)
    if any(n not in DBM_SERVICES for n in names):
        raise ToolFailure(f"ERROR: unknown service {which!r}", exit_code=2)
    exa = exa_state.edit(ctx.state)
    out = []
    for name in names:
        out.append(f"{_verb(action)} {name.upper()} services...")
        if action != "shutdown":
            _check_can_start(exa, name)
            due = action == "restart" or exa["services"][name] != ONLINE
            if due and take_start_failure(exa, name):
                # Not a ToolFailure: the countdown persists, like a real failed start.
                msg = f"ERROR: {name.upper()} services failed to start in time; retry."
                return ToolResult(1, "\n".join(out) + "\n", msg + "\n")
        alter_service(ctx, exa["services"], action, name)
        out.append(f"The {action.upper()} of {name.upper()} services was successful.")
    return ToolResult(0, "\n".join(out) + "\n")


def _verb(action: str) -> str:
    return {"startup": "Starting", "shutdown": "Stopping", "restart": "Restarting"}[action]


def _check_can_start(exa: dict[str, Any], name: str) -> None:
    if name == "ms" and not exa["cellinit"]:
        raise ToolFailure("ERROR: cannot start MS: cellinit.ora is not configured")
    if name == "edv" and (blockers := exa_state.edv_blockers(exa)):
        raise ToolFailure("ERROR: cannot start EDV: " + "; ".join(blockers))
