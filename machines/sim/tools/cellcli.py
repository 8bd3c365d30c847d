"""Fake ``cellcli``: the storage cell's management CLI (``cellcli -e "<command>"``).

Supported (case-insensitive)::

    list cell [detail]
    list cell attributes A,B,...        one line, the values space-separated
                                        (name status rsStatus msStatus cellsrvStatus
                                         freeSpaceHC freeSpaceEF egsCluster)
    list celldisk [attributes name,status]
    alter cell startup|shutdown|restart services rs|ms|cellsrv|all
    create pooldisk all harddisk|flashdisk
    list pooldisk [attributes name,type]
    drop pooldisk all

Starting a running service succeeds with no effect (and logs nothing). A start listed in
``start_failures`` fails (exit 1) and counts down — a service that needs two tries.
Creating pool disks twice is an error, as on a real cell: the machine's ``check`` says
whether they exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetlog.engine.backends.sim import (
    ToolContext,
    ToolFailure,
    ToolResult,
    sim_observer,
    sim_tool,
)
from fleetlog.machines.sim.tools import cell_state
from fleetlog.machines.sim.tools.cell_state import CELLCLI_SERVICES, ONLINE

_DISK_PREFIX = {"HardDisk": "CD_", "FlashDisk": "FD_"}
_SPACE_KEY = {"HardDisk": "hc", "FlashDisk": "ef"}


@sim_tool("cellcli")
def cellcli(ctx: ToolContext) -> ToolResult:
    if len(ctx.args) < 2 or ctx.args[0] != "-e":
        raise ToolFailure('usage: cellcli -e "<command>"', exit_code=2)
    if not cell_state.is_cell(ctx.state):
        raise ToolFailure(f"cellcli: {ctx.host} is not a storage cell", exit_code=127)
    text = " ".join(ctx.args[1:])
    words = text.replace(",", " , ").split()
    low = [w.lower() for w in words]
    if low[:2] == ["list", "cell"]:
        return _list_cell(ctx, words[2:])
    if low[:2] == ["list", "celldisk"]:
        return _list_celldisk(ctx, low[2:])
    if low[:2] == ["alter", "cell"] and len(low) >= 5 and low[3] == "services":
        return _services(ctx, low[2], [w for w in low[4:] if w != ","])
    if low[:3] == ["create", "pooldisk", "all"] and len(low) == 4:
        return _create_pooldisks(ctx, low[3])
    if low[:2] == ["list", "pooldisk"]:
        return _list_pooldisks(ctx, low[2:])
    if low == ["drop", "pooldisk", "all"]:
        return _drop_pooldisks(ctx)
    raise ToolFailure(f"CELL-01504: Invalid command syntax: {text}", exit_code=2)


def _attr_names(words: list[str]) -> list[str]:
    if not words:
        return []
    if words[0].lower() != "attributes":
        raise ToolFailure(f"CELL-01504: Invalid command syntax: {' '.join(words)}", exit_code=2)
    return [w for w in words[1:] if w != ","]


def _cell_attrs(ctx: ToolContext, cell: dict[str, Any]) -> dict[str, str]:
    svc = cell["services"]

    def running(name: str) -> str:
        return "running" if svc[name] == ONLINE else "stopped"

    return {
        "name": ctx.host,
        "status": "online" if svc["cellsrv"] == ONLINE else "offline",
        "rsStatus": running("rs"),
        "msStatus": running("ms"),
        "cellsrvStatus": running("cellsrv"),
        "freeSpaceHC": f"{cell['free_gb']['hc']}G",
        "freeSpaceEF": f"{cell['free_gb']['ef']}G",
        "egsCluster": cell["egs_cluster"] or "none",
    }


def _list_cell(ctx: ToolContext, rest: list[str]) -> ToolResult:
    cell = cell_state.read(ctx.state)
    attrs = _cell_attrs(ctx, cell)
    if rest and rest[0].lower() == "detail":
        return ToolResult(0, "".join(f"\t {k}: {v}\n" for k, v in attrs.items()))
    names = _attr_names(rest)
    if not names:
        return ToolResult(0, f"\t {ctx.host}\t {attrs['status']}\n")
    lowered = {k.lower(): v for k, v in attrs.items()}
    unknown = [n for n in names if n.lower() not in lowered]
    if unknown:
        raise ToolFailure(f"CELL-02559: unknown attribute {unknown[0]}", exit_code=2)
    return ToolResult(0, " ".join(lowered[n.lower()] for n in names) + "\n")


def _list_celldisk(ctx: ToolContext, rest: list[str]) -> ToolResult:
    names = _attr_names(rest) or ["name", "status"]
    disks = cell_state.read(ctx.state)["celldisks"]
    lines = []
    for disk in sorted(disks):
        row = {"name": disk, "status": disks[disk]}
        if any(n not in row for n in names):
            raise ToolFailure("CELL-02559: celldisk attributes are name, status", exit_code=2)
        lines.append("\t " + "\t ".join(row[n] for n in names))
    return ToolResult(0, "".join(f"{line}\n" for line in lines))


def _services(ctx: ToolContext, action: str, which: list[str]) -> ToolResult:
    if action not in ("startup", "shutdown", "restart"):
        raise ToolFailure(f"CELL-01504: unknown action {action!r}", exit_code=2)
    names = list(CELLCLI_SERVICES) if which == ["all"] else which
    if not names or any(n not in CELLCLI_SERVICES for n in names):
        raise ToolFailure(f"CELL-01504: unknown service {' '.join(which)!r}", exit_code=2)
    cell = cell_state.edit(ctx.state)
    services = cell["services"]
    out = []
    for name in names:
        if (action != "shutdown" and services[name] != ONLINE) or action == "restart":
            if cell_state.take_start_failure(cell, name):
                # Not a ToolFailure: the countdown must persist, like a real failed start.
                out.append(f"CELL-01537: {name.upper()} failed to start in time; retry.")
                return ToolResult(1, "\n".join(out) + "\n", out[-1] + "\n")
        cell_state.alter_service(ctx, services, action, name)
        out.append(f"{name.upper()} services {'shut down' if action == 'shutdown' else 'started'}.")
    return ToolResult(0, "\n".join(out) + "\n")


def _create_pooldisks(ctx: ToolContext, media: str) -> ToolResult:
    disk_type = {"harddisk": "HardDisk", "flashdisk": "FlashDisk"}.get(media)
    if disk_type is None:
        raise ToolFailure("CELL-01504: create pooldisk all harddisk|flashdisk", exit_code=2)
    cell = cell_state.edit(ctx.state)
    if cell["services"]["cellsrv"] != ONLINE:
        raise ToolFailure("CELL-02527: CELLSRV is not running")
    if cell["pooldisks"][disk_type]:
        raise ToolFailure(f"CELL-04519: {disk_type} pool disks already exist")
    prefix = _DISK_PREFIX[disk_type]
    disks = [d for d, s in sorted(cell["celldisks"].items()) if d.startswith(prefix)]
    bad = [d for d in disks if cell["celldisks"][d] != "normal"]
    if not disks or bad:
        raise ToolFailure(
            f"CELL-04520: cannot create {disk_type} pool disks: "
            + (f"celldisk {bad[0]} is not normal" if bad else "no celldisks")
        )
    if cell["free_gb"][_SPACE_KEY[disk_type]] <= 0:
        raise ToolFailure(f"CELL-04521: no free {disk_type} space")
    cell["pooldisks"][disk_type] = [f"PD_{d}" for d in disks]
    ctx.log(f"{len(disks)} {disk_type} pool disks created")
    return ToolResult(0, f"{len(disks)} {disk_type} pool disks successfully created\n")


def _list_pooldisks(ctx: ToolContext, rest: list[str]) -> ToolResult:
    names = _attr_names(rest) or ["name", "type"]
    pools = cell_state.read(ctx.state)["pooldisks"]
    lines = []
    for disk_type, disks in pools.items():
        for disk in disks:
            row = {"name": disk, "type": disk_type}
            if any(n not in row for n in names):
                raise ToolFailure("CELL-02559: pooldisk attributes are name, type", exit_code=2)
            lines.append("\t " + "\t ".join(row[n] for n in names))
    return ToolResult(0, "".join(f"{line}\n" for line in lines))


def _drop_pooldisks(ctx: ToolContext) -> ToolResult:
    cell = cell_state.edit(ctx.state)
    if cell["services"]["egs_cell"] == ONLINE or cell["services"]["bsw_cell"] == ONLINE:
        raise ToolFailure("CELL-04522: cannot drop pool disks while Exascale services run")
    dropped = sum(len(v) for v in cell["pooldisks"].values())
    if dropped:
        cell["pooldisks"] = {t: [] for t in cell["pooldisks"]}
        ctx.log(f"{dropped} pool disks dropped")
    return ToolResult(0, f"{dropped} pool disks dropped\n")


@sim_observer("cell")
def observe_cell(host: str, state: Mapping[str, Any]) -> dict[str, str] | None:
    """A cell reports ``exascale:online`` once its block store (BSW) serves; any other
    host has no view of cells."""
    if not cell_state.is_cell(state):
        return None
    online = cell_state.read(state)["services"]["bsw_cell"] == ONLINE
    return {host: "exascale:online" if online else "exascale:absent"}
