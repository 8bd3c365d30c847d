"""Inventory sugar for ``exascale_cluster`` (see docs/inventory.md): the EGS rule.

An inventory names the cluster's members as node sets or lists, in order::

    [exascale_cluster.exa]
    cells = "cell[1-3]"      # the EGS leader first
    hosts = "node[1-2]"

and this hook derives the cluster's ``leader`` (the first cell) and ``egs_hosts``, and
by the seed's rule the parameters of the members:

- five EGS instances: ``egs = true`` on each of the first five cells; with fewer than
  five cells, on the first ``5 - cells`` KVM hosts (``egs = false`` on every other
  member), which are the cluster's ``egs_hosts``;
- every cell: ``leader`` = the first cell (root CA, trust), ``cluster`` = the cluster's
  name; every host: ``exa_cluster`` = the cluster's name and ``trust_node`` = the
  leader cell's address (the seed's NEW rule: trust comes from an Exascale node).

A value the inventory sets explicitly (``leader``, ``egs_hosts``, or a member's param)
must agree, or loading fails. The pack declares ``INVENTORY_HOOKS`` (``pack.py``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

EGS_INSTANCES = 5

Lookup = Callable[[str], Mapping[str, Any] | None]


class InventoryHookError(ValueError):
    """A problem in the table the hook expands; the loader adds file and table."""


def _names(value: Any, key: str) -> list[str]:
    """Member names, in the order written, from a node set string or a TOML list."""
    from fleetlog.engine.model import expand_names

    if isinstance(value, list):
        if not all(isinstance(v, str) and v for v in value):
            raise InventoryHookError(f"{key}: expected a node set or a list of names")
        names = [v.rpartition("/")[2] for v in value]
    elif isinstance(value, str):
        try:
            names = [n.rpartition("/")[2] for n in expand_names(value)]
        except ValueError as exc:
            raise InventoryHookError(f"{key}: {exc}") from None
    else:
        raise InventoryHookError(f"{key}: expected a node set or a list of names")
    counts = Counter(names)
    dupes = sorted(n for n, count in counts.items() if count > 1)
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
    if "cells" not in params:
        raise InventoryHookError("an Exascale cluster needs its cells (`cells`)")
    cells = _names(params["cells"], "cells")
    hosts = _names(params.get("hosts", []), "hosts")
    if not cells:
        raise InventoryHookError("an Exascale cluster needs at least one cell (`cells`)")
    egs_cells, egs_hosts = egs_placement(cells, hosts)
    if len(egs_cells) + len(egs_hosts) < EGS_INSTANCES:
        raise InventoryHookError(
            f"{len(cells)} cells and {len(hosts)} KVM hosts cannot hold the "
            f"{EGS_INSTANCES} EGS instances: add KVM hosts to `hosts`"
        )
    leader = cells[0]
    _agree(params, "leader", leader, "the first of `cells`")
    _agree(params, "egs_hosts", egs_hosts, "the hosts the EGS rule picks")
    params.update(cells=cells, hosts=hosts, leader=leader, egs_hosts=egs_hosts)
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


def _agree(params: Mapping[str, Any], key: str, derived: Any, what: str) -> None:
    """A value the file gives for a derived param must be the derived one."""
    if key not in params:
        return
    given = params[key]
    names = _names(given, key) if isinstance(derived, list) else str(given).rpartition("/")[2]
    if names != derived:
        shown = ", ".join(derived) if isinstance(derived, list) else derived
        raise InventoryHookError(
            f"{key} = {given!r} contradicts the EGS rule: it must be {what} ({shown or 'none'})"
        )


INVENTORY_HOOKS = {"exascale_cluster": expand_cluster}
