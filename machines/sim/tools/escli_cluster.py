"""``escli`` commands of the Exascale cluster itself: cell services, EGS membership, the
cluster root certificate, key listing, vaults and database wallets (see ``escli``).

Kept apart from ``escli`` (the KVM host's wallet and service commands) so each module
stays small; ``escli`` dispatches here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult
from fleetlog.machines.sim.tools import cell_state
from fleetlog.machines.sim.tools import exascale_state as exa_state
from fleetlog.machines.sim.tools._args import attributes, parse
from fleetlog.machines.sim.tools.cell_state import ESCLI_CELL_SERVICES, ONLINE

EGS_NAMES = ("egs_cell", "egs_compute")


# -- cell services -----------------------------------------------------------------------


def cell_lsservice(ctx: ToolContext) -> ToolResult:
    cell = cell_state.read(ctx.state)
    svc = cell["services"]
    names = [n for n in ESCLI_CELL_SERVICES if n != "egs_cell" or cell["egs_cluster"]]
    lines = [f"cellsrv_cell {svc['cellsrv']}"] + [f"{n} {svc[n]}" for n in names]
    return ToolResult(0, "".join(f"{line}\n" for line in lines))


def _cell_blockers(ctx: ToolContext, cell: dict[str, Any], name: str) -> list[str]:
    exa = exa_state.read(ctx.state)
    wallet = exa["wallet"] or {}
    missing = []
    if cell["services"]["cellsrv"] != ONLINE:
        missing.append("CELLSRV is not running")
    if name == "egs_cell" and not cell["egs_cluster"]:
        missing.append("no EGS instance is configured on this cell")
    if name in ("bsm_cell", "bsw_cell", "syseds_cell", "usreds_cell"):
        if not any(cell["pooldisks"].values()):
            missing.append("no pool disks")
        if not wallet.get("user"):
            missing.append("wallet has no user")
        if not wallet.get("trusted_certs"):
            missing.append("wallet has no trusted certificate")
    return missing


def cell_chservice(ctx: ToolContext, name: str | None, flags: set[str]) -> ToolResult:
    if name not in ESCLI_CELL_SERVICES or len(flags) != 1:
        raise ToolFailure(
            "usage: escli chservice --attributes name="
            + "|".join(ESCLI_CELL_SERVICES)
            + " --start|--stop|--restart",
            exit_code=2,
        )
    cell = cell_state.edit(ctx.state)
    action = next(iter(flags))
    blockers = _cell_blockers(ctx, cell, name) if action != "--stop" else []
    return cell_state.switch_service(ctx, cell, name, action, blockers)


# -- EGS membership and the cluster root ---------------------------------------------------


def _mkservice(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli mkservice", args, valued=["--attributes"])
    attrs = attributes("escli", opts.values.get("--attributes", ""))
    name, cluster = attrs.get("name"), attrs.get("cluster")
    is_cell = cell_state.is_cell(ctx.state)
    expected = "egs_cell" if is_cell else "egs_compute"
    if name != expected or not cluster:
        raise ToolFailure(
            f"usage: escli mkservice --attributes name={expected},cluster=CLUSTER", exit_code=2
        )
    if is_cell:
        cell = cell_state.edit(ctx.state)
        if cell["egs_cluster"]:
            raise ToolFailure(f"ESCLI: EGS instance already exists (cluster {cell['egs_cluster']})")
        cell["egs_cluster"] = cluster
    else:
        exa = exa_state.edit(ctx.state)
        if exa["egs"]:
            raise ToolFailure("ESCLI: EGS instance already exists on this compute")
        exa["egs"] = True
        exa["egs_cluster"] = cluster
    ctx.log(f"EGS instance {name} created in cluster {cluster}")
    return ToolResult(0, f"EGS instance {name} created in cluster {cluster}\n")


def _rmservice(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli rmservice", args, valued=["--attributes"])
    name = attributes("escli", opts.values.get("--attributes", "")).get("name")
    if name not in EGS_NAMES:
        raise ToolFailure("usage: escli rmservice --attributes name=egs_cell|egs_compute", 2)
    if cell_state.is_cell(ctx.state):
        cell = cell_state.edit(ctx.state)
        if cell["services"]["egs_cell"] == ONLINE:
            raise ToolFailure("ESCLI: stop egs_cell before removing it")
        if cell["egs_cluster"]:
            cell["egs_cluster"] = None
            ctx.log("EGS instance egs_cell removed")
    else:
        exa = exa_state.edit(ctx.state)
        if exa["services"]["egs_compute"] == ONLINE:
            raise ToolFailure("ESCLI: stop egs_compute before removing it")
        if exa["egs"]:
            exa["egs"] = False
            exa.pop("egs_cluster", None)
            ctx.log("EGS instance egs_compute removed")
    return ToolResult(0, f"EGS instance {name} removed\n")


def _mkcert(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli mkcert", args, valued=["--cluster"], flags=["--root"])
    cluster = opts.values.get("--cluster")
    if "--root" not in opts.flags or not cluster:
        raise ToolFailure("usage: escli mkcert --root --cluster CLUSTER", exit_code=2)
    exa = exa_state.edit(ctx.state)
    if exa["root_cert"]:
        raise ToolFailure(f"ESCLI: a root certificate already exists: {exa['root_cert']}")
    exa["root_cert"] = f"{cluster}-root-ca@{ctx.host}"
    ctx.log(f"root certificate {exa['root_cert']} created")
    return ToolResult(0, f"Root certificate {exa['root_cert']} created\n")


def _lscert(ctx: ToolContext, args: list[str]) -> ToolResult:
    parse("escli lscert", args, flags=["--root"])
    cert = exa_state.read(ctx.state)["root_cert"]
    if not cert:
        return ToolResult(1, "", "ESCLI: no root certificate\n")
    return ToolResult(0, f"{cert}\n")


def _lskey(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli lskey", args, valued=["--name"])
    keys = exa_state.read(ctx.state)["keys"]
    if "--name" in opts.values:
        wanted = opts.values["--name"]
        if wanted not in keys:
            return ToolResult(1, "", f"ESCLI: key {wanted} does not exist\n")
        keys = {wanted: keys[wanted]}
    return ToolResult(0, "".join(f"{k} {keys[k]}\n" for k in sorted(keys)))


def _rmwallet(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli rmwallet", args, valued=["--wallet"])
    directory = opts.values.get("--wallet")
    if not directory:
        raise ToolFailure("usage: escli rmwallet --wallet DIR", exit_code=2)
    exa = exa_state.edit(ctx.state)
    wallet = exa["wallet"]
    if wallet is not None and wallet["dir"] == directory:
        exa["wallet"] = None
        ctx.log(f"wallet {directory} removed")
    return ToolResult(0, f"Wallet {directory} removed\n")


# -- vaults and database wallets (OEDACLI CREATEDBWALLET / CREATEGIVAULT / CREATEDBVAULT) --


def _need_egs(ctx: ToolContext, what: str) -> None:
    state = ctx.state
    if cell_state.is_cell(state):
        online = cell_state.read(state)["services"]["egs_cell"] == ONLINE
    else:
        online = exa_state.read(state)["services"]["egs_compute"] == ONLINE
    if not online:
        raise ToolFailure(f"ESCLI: cannot {what}: EGS is not running on {ctx.host}")


def _named(ctx: ToolContext, args: list[str], usage: str) -> str:
    opts = parse(f"escli {ctx.args[0]}", args)
    if len(opts.positional) != 1:
        raise ToolFailure(f"usage: escli {usage}", exit_code=2)
    return opts.positional[0]


def _mkvault(ctx: ToolContext, args: list[str]) -> ToolResult:
    name = _named(ctx, args, "mkvault NAME")
    _need_egs(ctx, f"create vault {name}")
    vaults = exa_state.edit(ctx.state).setdefault("vaults", [])
    if name in vaults:
        raise ToolFailure(f"ESCLI: vault {name} already exists")
    vaults.append(name)
    ctx.log(f"vault {name} created")
    return ToolResult(0, f"Vault {name} created\n")


def _lsvault(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli lsvault", args)
    vaults = exa_state.read(ctx.state).get("vaults", [])
    if opts.positional:
        missing = [v for v in opts.positional if v not in vaults]
        if missing:
            return ToolResult(1, "", f"ESCLI: vault {missing[0]} does not exist\n")
        vaults = opts.positional
    return ToolResult(0, "".join(f"{v}\n" for v in vaults))


def _rmvault(ctx: ToolContext, args: list[str]) -> ToolResult:
    name = _named(ctx, args, "rmvault NAME")
    exa = exa_state.edit(ctx.state)
    vaults = exa.setdefault("vaults", [])
    if name in vaults:
        vaults.remove(name)
        ctx.log(f"vault {name} removed")
    return ToolResult(0, f"Vault {name} removed\n")


def _dbwallet_dir(ctx: ToolContext, args: list[str], required: bool = True) -> str | None:
    opts = parse(f"escli {ctx.args[0]}", args, valued=["--wallet"])
    directory = opts.values.get("--wallet")
    if required and not directory:
        raise ToolFailure(f"usage: escli {ctx.args[0]} --wallet DIR", exit_code=2)
    return directory


def _mkdbwallet(ctx: ToolContext, args: list[str]) -> ToolResult:
    directory = _dbwallet_dir(ctx, args)
    _need_egs(ctx, "create a database wallet")
    wallets = exa_state.edit(ctx.state).setdefault("db_wallets", [])
    if directory in wallets:
        raise ToolFailure(f"ESCLI: database wallet {directory} already exists")
    wallets.append(directory)
    ctx.log(f"database wallet {directory} created")
    return ToolResult(0, f"Database wallet {directory} created\n")


def _lsdbwallet(ctx: ToolContext, args: list[str]) -> ToolResult:
    directory = _dbwallet_dir(ctx, args, required=False)
    wallets = exa_state.read(ctx.state).get("db_wallets", [])
    if directory is not None:
        if directory not in wallets:
            return ToolResult(1, "", f"ESCLI: no database wallet at {directory}\n")
        wallets = [directory]
    return ToolResult(0, "".join(f"{w}\n" for w in wallets))


def _rmdbwallet(ctx: ToolContext, args: list[str]) -> ToolResult:
    directory = _dbwallet_dir(ctx, args)
    exa = exa_state.edit(ctx.state)
    wallets = exa.setdefault("db_wallets", [])
    if directory in wallets:
        wallets.remove(directory)
        ctx.log(f"database wallet {directory} removed")
    return ToolResult(0, f"Database wallet {directory} removed\n")


CLUSTER_COMMANDS: dict[str, Callable[[ToolContext, list[str]], ToolResult]] = {
    "mkservice": _mkservice,
    "rmservice": _rmservice,
    "mkcert": _mkcert,
    "lscert": _lscert,
    "lskey": _lskey,
    "rmwallet": _rmwallet,
    "mkvault": _mkvault,
    "lsvault": _lsvault,
    "rmvault": _rmvault,
    "mkdbwallet": _mkdbwallet,
    "lsdbwallet": _lsdbwallet,
    "rmdbwallet": _rmdbwallet,
}
