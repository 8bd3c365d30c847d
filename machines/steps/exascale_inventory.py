"""Inventory sugar for ``exascale_cluster`` (see docs/inventory.md): the EGS rule.

The DSL has no list-of-refs param, so ``machines/exascale_cluster.fsm`` has slots
``cell1..cell8`` and ``host1..host8``. An inventory names them as node sets or lists::

    [exascale_cluster.exa]
    cells = "cell[1-3]"      # -> cell1 = "cell1", cell2 = "cell2", cell3 = "cell3"
    hosts = "node[1-2]"      # -> host1 = "node1", host2 = "node2"

and this hook derives, by the seed's rule, the parameters of the members:

- five EGS instances: ``egs = true`` on each of the first five cells; with fewer than
  five cells, on the first ``5 - cells`` KVM hosts (``egs = false`` on every other
  member);
- every cell: ``leader`` = the first cell (root CA, trust), ``cluster`` = the cluster's
  name; every host: ``exa_cluster`` = the cluster's name and ``trust_node`` = the
  leader cell's address (the seed's NEW rule: trust comes from an Exascale node).

A value the inventory sets explicitly on a member must agree, or loading fails.
No step plugin here (``__all__`` is empty); the loader reads ``INVENTORY_HOOKS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__: list[str] = []

EGS_INSTANCES = 5
CELL_SLOTS = 8
HOST_SLOTS = 8

Lookup = Callable[[str], Mapping[str, Any] | None]


class InventoryHookError(ValueError):
    """A problem in the table the hook expands; the loader adds file and table."""


def _names(value: Any, key: str) -> list[str]:
    if isinstance(value, list):
        if not all(isinstance(v, str) and v for v in value):
            raise InventoryHookError(f"{key}: expected a node set or a list of names")
        names = list(value)
    elif isinstance(value, str):
        from ClusterShell.NodeSet import NodeSet, NodeSetParseError

        try:
            names = list(NodeSet(value))
        except (NodeSetParseError, ValueError) as exc:
            raise InventoryHookError(f"{key}: bad node set {value!r}: {exc}") from None
    else:
        raise InventoryHookError(f"{key}: expected a node set or a list of names")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InventoryHookError(f"{key}: {dupes[0]!r} is listed twice")
    return names


def egs_placement(cells: list[str], hosts: list[str]) -> tuple[list[str], list[str]]:
    """(cells, hosts) that run the five EGS instances: the first five cells, then the
    first KVM hosts to make up five."""
    egs_cells = cells[:EGS_INSTANCES]
    return egs_cells, hosts[: max(0, EGS_INSTANCES - len(egs_cells))]


def expand_cluster(
    name: str, table: Mapping[str, Any], lookup: Lookup
) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    params = dict(table)
    for i in range(1, CELL_SLOTS + 1):
        if f"cell{i}" in params and "cells" in params:
            raise InventoryHookError(f"give `cells` or cell1..cell{CELL_SLOTS}, not both")
    for i in range(1, HOST_SLOTS + 1):
        if f"host{i}" in params and "hosts" in params:
            raise InventoryHookError(f"give `hosts` or host1..host{HOST_SLOTS}, not both")
    if "cells" in params:
        cells = _names(params.pop("cells"), "cells")
        if len(cells) > CELL_SLOTS:
            raise InventoryHookError(
                f"cells: {len(cells)} cells, but exascale_cluster has {CELL_SLOTS} cell slots"
            )
        params.update({f"cell{i}": c for i, c in enumerate(cells, 1)})
    else:
        cells = _slots(params, "cell", CELL_SLOTS)
    if "hosts" in params:
        hosts = _names(params.pop("hosts"), "hosts")
        if len(hosts) > HOST_SLOTS:
            raise InventoryHookError(
                f"hosts: {len(hosts)} KVM hosts, but exascale_cluster has {HOST_SLOTS} host slots"
            )
        params.update({f"host{i}": h for i, h in enumerate(hosts, 1)})
    else:
        hosts = _slots(params, "host", HOST_SLOTS)
    if not cells:
        raise InventoryHookError("an Exascale cluster needs at least one cell (`cells`)")
    egs_cells, egs_hosts = egs_placement(cells, hosts)
    if len(egs_cells) + len(egs_hosts) < EGS_INSTANCES:
        raise InventoryHookError(
            f"{len(cells)} cells and {len(hosts)} KVM hosts cannot hold the "
            f"{EGS_INSTANCES} EGS instances: add KVM hosts to `hosts`"
        )
    leader = cells[0]
    leader_params = lookup(f"cell/{leader}") or {}
    leader_host = str(leader_params.get("host") or leader)
    derived: dict[str, dict[str, Any]] = {}
    for cell in cells:
        derived[f"cell/{cell}"] = {"egs": cell in egs_cells, "leader": leader, "cluster": name}
    for host in hosts:
        derived[f"kvm_host/{host}"] = {
            "egs": host in egs_hosts,
            "exa_cluster": name,
            "trust_node": leader_host,
        }
    return params, derived


def _slots(params: Mapping[str, Any], prefix: str, count: int) -> list[str]:
    """Slot values given one by one must be filled in order, without gaps."""
    names: list[str] = []
    gap = None
    for i in range(1, count + 1):
        value = params.get(f"{prefix}{i}")
        if value in (None, ""):
            gap = gap or f"{prefix}{i}"
            continue
        if gap is not None:
            raise InventoryHookError(f"{prefix}{i} is set but {gap} is not: fill slots in order")
        names.append(str(value).rpartition("/")[2])
    return names


INVENTORY_HOOKS = {"exascale_cluster": expand_cluster}
