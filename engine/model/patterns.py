"""Resource patterns: ``KIND``, ``KIND/NODESET`` (ClusterShell syntax) or a glob.

``node/ocean[1-1000]`` expands with ClusterShell's NodeSet (operators ``, ! & ^`` too),
so operators write the ranges they already write for ``clush``; a set is counted before
it is expanded and refused over the cap (``fleetlog.limits``), and node groups
(``@group``) are never resolved. ``vm/guest*`` is an
fnmatch glob over existing resources. A bare ``KIND`` means every resource of it.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable

from fleetlog import limits
from fleetlog.errors import UsageError

_GLOB = set("*?")
_DIGITS = re.compile(r"(\d+)")


def natural_key(resource_id: str) -> list[object]:
    """``vm/g2`` before ``vm/g10``: the order ClusterShell and operators use."""
    return [int(p) if p.isdigit() else p for p in _DIGITS.split(resource_id)]


def expand(pattern: str) -> list[str]:
    """The resource ids a ``KIND/NODESET`` pattern names (no glob, no bare kind)."""
    kind, sep, names = pattern.partition("/")
    if not sep or not kind or not names or "/" in names:
        raise UsageError(
            f"bad resource pattern {limits.shown(pattern)}: expected KIND/NAME or KIND/NODESET"
        )
    from ClusterShell.NodeSet import NodeSetParseError

    try:
        nodes = limits.expand_nodeset(names)
    except limits.InputError:
        raise
    except (NodeSetParseError, ValueError) as exc:
        raise UsageError(f"bad node set in {limits.shown(pattern)}: {exc}") from None
    return [f"{kind}/{n}" for n in nodes]


def select(pattern: str | None, existing: Iterable[str]) -> list[str]:
    """The existing resource ids that ``pattern`` matches, in natural order."""
    ids = sorted(existing, key=natural_key)
    if not pattern:
        return ids
    if "/" not in pattern:
        return [i for i in ids if i.split("/", 1)[0] == pattern]
    if _GLOB & set(pattern):
        return [i for i in ids if fnmatch.fnmatchcase(i, pattern)]
    wanted = set(expand(pattern))
    return [i for i in ids if i in wanted]


def fold_names(ids: Iterable[str]) -> str:
    """The shortest node-set notation for ids of one or more kinds (for summaries)."""
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet

    by_kind: dict[str, list[str]] = {}
    for rid in ids:
        kind, _, name = rid.partition("/")
        by_kind.setdefault(kind, []).append(name)
    # Names are folded as they are: never read as node groups ('@x') to resolve.
    return ",".join(
        f"{k}/{NodeSet.fromlist(v, resolver=RESOLVER_NOGROUP)}" for k, v in sorted(by_kind.items())
    )
