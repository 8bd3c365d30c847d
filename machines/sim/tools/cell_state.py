"""The storage-cell part of a simulated host's state, shared by ``cellcli`` and ``escli``.

A host is a cell when ``state["role"] == "cell"``. Layout of ``state["cell"]``::

    celldisks       {name: "normal" | "predictive failure" | ...}
    free_gb         {"hc": int, "ef": int}      free hard-disk / flash space
    services        {rs, ms, cellsrv, egs_cell, ers_cell, syseds_cell, usreds_cell,
                     bsm_cell, bsw_cell: "online" | "offline"}
    pooldisks       {"HardDisk": [names], "FlashDisk": [names]}
    egs_cluster     str | None   the EGS cluster this cell runs an instance of
    start_failures  {service: n} the next n starts of ``service`` fail (a service that
                                 needs two tries), counted down even though they fail

The Exascale identity of a cell (root certificate, wallet, users, keys, vaults) lives in
``state["exascale"]`` like a KVM host's (see ``exascale_state``), so ``escli`` wallet,
user and key commands and ``trustFrom=`` work the same on cells and computes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult
from fleetlog.machines.sim.tools.exascale_state import OFFLINE, ONLINE

CELLCLI_SERVICES = ("rs", "ms", "cellsrv")
ESCLI_CELL_SERVICES = (
    "egs_cell",
    "ers_cell",
    "syseds_cell",
    "usreds_cell",
    "bsm_cell",
    "bsw_cell",
)
SERVICES = CELLCLI_SERVICES + ESCLI_CELL_SERVICES
DISK_TYPES = ("HardDisk", "FlashDisk")


def is_cell(state: Mapping[str, Any]) -> bool:
    return state.get("role") == "cell"


def _defaults() -> dict[str, Any]:
    return {
        "celldisks": {},
        "free_gb": {"hc": 0, "ef": 0},
        "services": dict.fromkeys(SERVICES, OFFLINE),
        "pooldisks": {t: [] for t in DISK_TYPES},
        "egs_cluster": None,
        "start_failures": {},
    }


def read(state: Mapping[str, Any]) -> dict[str, Any]:
    """The cell's state with defaults, without touching ``state`` (probes are read-only)."""
    cell = _defaults()
    stored = state.get("cell", {})
    for key, value in stored.items():
        if key in ("services", "pooldisks"):
            cell[key].update(copy.deepcopy(value))
        else:
            cell[key] = copy.deepcopy(value)
    return cell


def edit(state: dict[str, Any]) -> dict[str, Any]:
    current = state["cell"] = read(state)
    return current


def take_start_failure(section: dict[str, Any], service: str) -> bool:
    """True (and one fewer left) when this start of ``service`` is due to fail."""
    left = int(section.get("start_failures", {}).get(service, 0))
    if left <= 0:
        return False
    section.setdefault("start_failures", {})[service] = left - 1
    return True


def alter_service(ctx: ToolContext, services: dict[str, str], action: str, name: str) -> None:
    """``ALTER … SERVICES`` (cellcli, dbmcli): ``startup``, ``shutdown`` or ``restart``;
    a start of what already runs or a stop of what is stopped changes nothing."""
    if action == "restart":
        services[name] = ONLINE
        ctx.log(f"{name} restarted")
    elif action == "startup" and services[name] != ONLINE:
        services[name] = ONLINE
        ctx.log(f"{name} started")
    elif action == "shutdown" and services[name] != OFFLINE:
        services[name] = OFFLINE
        ctx.log(f"{name} stopped")


def switch_service(
    ctx: ToolContext, section: dict[str, Any], name: str, action: str, blockers: list[str]
) -> ToolResult:
    """``escli chservice``'s effect, the same on a KVM host and on a cell: start or
    restart (refused with the blockers, or failing once per queued start failure), or
    stop; starting what already runs and stopping what is stopped change nothing."""
    services = section["services"]
    if action in ("--start", "--restart"):
        if blockers:
            raise ToolFailure(f"ESCLI: cannot start {name}: " + "; ".join(blockers))
        if action == "--restart" or services[name] != ONLINE:
            if take_start_failure(section, name):
                return ToolResult(1, "", f"ESCLI: service {name} failed to start; retry\n")
            services[name] = ONLINE
            ctx.log(f"{name} {'restarted' if action == '--restart' else 'started'}")
    elif services[name] != OFFLINE:
        services[name] = OFFLINE
        ctx.log(f"{name} stopped")
    return ToolResult(0, f"Service {name} is {services[name]}\n")


def fresh_cell(
    *, disks: int = 4, flash: int = 2, hc_gb: int = 4000, ef_gb: int = 800
) -> dict[str, Any]:
    """A cell as it ships: celldisks normal, services down, nothing Exascale configured."""
    celldisks = {f"CD_{i:02d}": "normal" for i in range(disks)}
    celldisks.update({f"FD_{i:02d}": "normal" for i in range(flash)})
    return {"role": "cell", "cell": {"celldisks": celldisks, "free_gb": {"hc": hc_gb, "ef": ef_gb}}}


__all__ = [
    "CELLCLI_SERVICES",
    "DISK_TYPES",
    "ESCLI_CELL_SERVICES",
    "OFFLINE",
    "ONLINE",
    "SERVICES",
    "edit",
    "fresh_cell",
    "is_cell",
    "read",
    "take_start_failure",
]
