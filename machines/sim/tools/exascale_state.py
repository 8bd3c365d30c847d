"""The Exascale part of a simulated KVM host's state, shared by dbmcli, escli, vm_maker.

Layout of ``state["exascale"]`` (everything optional; defaults below)::

    egs          bool   this host runs one of the five EGS instances
    root_cert    str    the cluster trust root held by an Exascale node (EGS nodes have it)
    cellinit     {k: v} | None   cellinit.ora settings (dbmcli alter dbserver cellinit)
    services     {rs, ms, edv, bsw_compute, egs_compute: "online" | "offline"}
    wallet       None | {dir, user, exaRootUrl, restEndPoint, trusted_certs: [cert]}
    users        {id: {"key": key name | None}}
    keys         {name: fingerprint}

EDV can start only when cellinit is set, RS and MS run, and the wallet names a user,
an exaRootUrl and holds a trust certificate fetched from an Exascale node — the order the
seed's ``configureExascaleOnNonEgsKvmHost`` follows.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

SERVICES = ("rs", "ms", "edv", "bsw_compute", "egs_compute")
ONLINE, OFFLINE = "online", "offline"


def _defaults() -> dict[str, Any]:
    return {
        "egs": False,
        "root_cert": None,
        "cellinit": None,
        "services": dict.fromkeys(SERVICES, OFFLINE),
        "wallet": None,
        "users": {},
        "keys": {},
    }


def read(state: Mapping[str, Any]) -> dict[str, Any]:
    """The host's Exascale state with defaults filled in, without touching ``state``
    (a read-only probe must not make the host's stored state grow)."""
    exa = _defaults()
    stored = state.get("exascale", {})
    exa.update({k: copy.deepcopy(v) for k, v in stored.items() if k != "services"})
    exa["services"].update(stored.get("services", {}))
    return exa


def edit(state: dict[str, Any]) -> dict[str, Any]:
    """The host's Exascale state for mutation (stored back into ``state``)."""
    current = state["exascale"] = read(state)
    return current


def edv_online(state: Mapping[str, Any]) -> bool:
    return bool(read(state)["services"]["edv"] == ONLINE)


def edv_blockers(exa: Mapping[str, Any]) -> list[str]:
    """Why EDV cannot start yet (empty: it can)."""
    wallet = exa["wallet"] or {}
    missing = []
    if not exa["cellinit"]:
        missing.append("cellinit.ora is not configured")
    if exa["services"]["rs"] != ONLINE:
        missing.append("RS is not running")
    if exa["services"]["ms"] != ONLINE:
        missing.append("MS is not running")
    if not wallet:
        missing.append("no wallet")
    else:
        if not wallet.get("user"):
            missing.append("wallet has no user")
        if not wallet.get("exaRootUrl"):
            missing.append("wallet has no exaRootUrl")
        if not wallet.get("trusted_certs"):
            missing.append("wallet has no trusted certificate")
    return missing
