"""Fake ``escli``: the Exascale command line, as run on a KVM host.

Supported: ``lsservice [--detail]``; ``chservice --attributes name=SVC --start|--stop|--restart``;
``mkwallet --wallet DIR``; ``chwallet [--wallet DIR] [--attributes k=v,...] [k=v ...]``
(user, exaRootUrl, restEndPoint, trustFrom=HOST — copy HOST's trust root — and
clearTrust=true); ``lswallet [--wallet DIR] [--filter k=v]``; ``rmwallet --wallet DIR``;
``mkkey --name K``; ``lskey [--name K]``; ``mkuser ID [--key K]``; ``lsuser [--id ID]``.

EGS membership and the cluster's identity (cells and EGS computes):
``mkservice --attributes name=egs_cell|egs_compute,cluster=C`` (an EGS instance here),
``rmservice --attributes name=...``; ``mkcert --root --cluster C`` (the leader's cluster
root certificate), ``lscert --root``. Storage for databases (OEDACLI CREATEDBWALLET,
CREATEGIVAULT, CREATEDBVAULT, run on an EGS cell): ``mkvault NAME``, ``lsvault [NAME]``,
``rmvault NAME``, ``mkdbwallet --wallet DIR``, ``lsdbwallet [--wallet DIR]``,
``rmdbwallet --wallet DIR``.

On a storage cell (``role: cell``) ``lsservice``/``chservice`` speak of the cell's
services, ``name=<svc>_cell`` for egs, ers, syseds, usreds, bsm, bsw (see cell_state).

Filters used by probes (``lswallet --filter``, ``lskey --name``, ``lsuser --id``,
``lsvault NAME``, ``lsdbwallet --wallet``, ``lscert``) exit 1 when nothing matches, so a
machine's ``check`` can say "already there" for a value that is a parameter.
"""

from __future__ import annotations

from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult, sim_tool
from fleetlog.machines.sim.tools import cell_state
from fleetlog.machines.sim.tools import exascale_state as exa_state
from fleetlog.machines.sim.tools._args import attributes, parse
from fleetlog.machines.sim.tools.escli_cluster import CLUSTER_COMMANDS
from fleetlog.machines.sim.tools.escli_cluster import cell_chservice as _cell_chservice
from fleetlog.machines.sim.tools.escli_cluster import cell_lsservice as _cell_lsservice

ESCLI_SERVICES = ("egs_compute", "bsw_compute")
WALLET_ATTRS = ("user", "exaRootUrl", "restEndPoint")


@sim_tool("escli")
def escli(ctx: ToolContext) -> ToolResult:
    if not ctx.args:
        raise ToolFailure("usage: escli COMMAND [OPTIONS]", exit_code=2)
    command, rest = ctx.args[0], ctx.args[1:]
    handler = _COMMANDS.get(command)
    if handler is None:
        raise ToolFailure(f"ESCLI: unknown command {command!r}", exit_code=2)
    return handler(ctx, rest)


def _lsservice(ctx: ToolContext, args: list[str]) -> ToolResult:
    parse("escli lsservice", args, flags=["--detail"])
    if cell_state.is_cell(ctx.state):
        return _cell_lsservice(ctx)
    exa = exa_state.read(ctx.state)
    names = ["egs_compute"] if exa["egs"] else []
    names += ["bsw_compute", "edv"]
    return ToolResult(0, "".join(f"{n} {exa['services'][n]}\n" for n in names))


def _chservice(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse(
        "escli chservice", args, valued=["--attributes"], flags=["--start", "--stop", "--restart"]
    )
    name = attributes("escli", opts.values.get("--attributes", "")).get("name")
    if cell_state.is_cell(ctx.state):
        return _cell_chservice(ctx, name, opts.flags)
    if name not in ESCLI_SERVICES or len(opts.flags) != 1:
        raise ToolFailure(
            "usage: escli chservice --attributes name=egs_compute|bsw_compute "
            "--start|--stop|--restart",
            exit_code=2,
        )
    exa = exa_state.edit(ctx.state)
    if name == "egs_compute" and not exa["egs"]:
        raise ToolFailure(f"ESCLI: service egs_compute is not configured on {ctx.host}")
    blockers = [] if (exa["wallet"] or {}).get("user") else ["wallet has no user"]
    return cell_state.switch_service(ctx, exa, name, opts.flags.pop(), blockers)


def _mkwallet(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli mkwallet", args, valued=["--wallet"])
    directory = opts.values.get("--wallet")
    if not directory:
        raise ToolFailure("usage: escli mkwallet --wallet DIR", exit_code=2)
    exa = exa_state.edit(ctx.state)
    if exa["wallet"] is not None:
        raise ToolFailure(f"ESCLI: wallet already exists at {exa['wallet']['dir']}")
    exa["wallet"] = {
        "dir": directory,
        "user": None,
        "exaRootUrl": None,
        "restEndPoint": None,
        "trusted_certs": [],
    }
    ctx.log(f"wallet created at {directory}")
    return ToolResult(0, f"Wallet created at {directory}\n")


def _wallet(ctx: ToolContext, exa: dict[str, Any], directory: str | None) -> dict[str, Any]:
    wallet: dict[str, Any] | None = exa["wallet"]
    if wallet is None or (directory is not None and directory != wallet["dir"]):
        raise ToolFailure(f"ESCLI: no wallet found{' at ' + directory if directory else ''}")
    return wallet


def _chwallet(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli chwallet", args, valued=["--wallet", "--attributes"])
    attrs = attributes("escli", opts.values.get("--attributes", ""))
    for item in opts.positional:  # the bare form: escli chwallet exaRootUrl=...
        attrs.update(attributes("escli", item))
    if not attrs:
        raise ToolFailure("usage: escli chwallet [--wallet DIR] --attributes k=v,...", 2)
    exa = exa_state.edit(ctx.state)
    wallet = _wallet(ctx, exa, opts.values.get("--wallet"))
    for key, value in attrs.items():
        if key == "user":
            if value not in exa["users"]:
                raise ToolFailure(f"ESCLI: user {value} does not exist")
        elif key == "trustFrom":
            _trust_from(ctx, wallet, value)
            continue
        elif key == "trustFile":  # the cloud's local certificate file
            cert = f"file:{value}"
            if cert not in wallet["trusted_certs"]:
                wallet["trusted_certs"].append(cert)
                ctx.log(f"wallet trusts local certificate {value}")
            continue
        elif key == "clearTrust":
            if wallet["trusted_certs"]:
                wallet["trusted_certs"] = []
                ctx.log("wallet trusted certificates cleared")
            continue
        elif key not in WALLET_ATTRS:
            raise ToolFailure(f"ESCLI: unknown wallet attribute {key!r}", exit_code=2)
        if wallet[key] != value:
            wallet[key] = value
            ctx.log(f"wallet {key}={value}")
    return ToolResult(0, "Wallet updated\n")


def _trust_from(ctx: ToolContext, wallet: dict[str, Any], source: str) -> None:
    """Fetch the trust root from another Exascale node — the seed's NEW rule: always
    from an existing node, never a local file."""
    cert = exa_state.read(ctx.world.host_state(source))["root_cert"]
    if not cert:
        raise ToolFailure(
            f"ESCLI: cannot fetch trust certificate from {source}: not an Exascale node"
        )
    if cert not in wallet["trusted_certs"]:
        wallet["trusted_certs"].append(cert)
        ctx.log(f"wallet trusts certificate from {source}")
    exa = ctx.state["exascale"]
    if exa.get("egs") and not exa.get("root_cert"):
        exa["root_cert"] = cert  # an EGS compute holds the cluster root from now on


def _lswallet(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli lswallet", args, valued=["--wallet", "--filter"])
    wallet = _wallet(ctx, exa_state.read(ctx.state), opts.values.get("--wallet"))
    for key, value in attributes("escli", opts.values.get("--filter", "")).items():
        if key not in WALLET_ATTRS:
            raise ToolFailure(f"ESCLI: unknown wallet attribute {key!r}", exit_code=2)
        if (wallet[key] or "") != value:
            return ToolResult(1, "", f"ESCLI: wallet {key} is {wallet[key] or 'unset'}\n")
    lines = [f"wallet: {wallet['dir']}"]
    lines += [f"{key}: {wallet[key] or ''}" for key in WALLET_ATTRS]
    lines.append(f"trustedCerts: {len(wallet['trusted_certs'])}")
    return ToolResult(0, "\n".join(lines) + "\n")


def _mkkey(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli mkkey", args, valued=["--name"])
    name = opts.values.get("--name", "node")
    fingerprint = f"{ctx.random.getrandbits(128):032x}"
    exa = exa_state.edit(ctx.state)
    exa["keys"][name] = fingerprint  # a new key pair each time: not idempotent
    ctx.log(f"key {name} generated")
    return ToolResult(0, f"Key {name} generated: {fingerprint}\n")


def _mkuser(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli mkuser", args, valued=["--id", "--key"])
    ids = opts.positional + ([opts.values["--id"]] if "--id" in opts.values else [])
    if len(ids) != 1:
        raise ToolFailure("usage: escli mkuser ID [--key KEY]", exit_code=2)
    user = ids[0]
    exa = exa_state.edit(ctx.state)
    if user in exa["users"]:
        raise ToolFailure(f"ESCLI: user {user} already exists")
    key = opts.values.get("--key")
    if key is not None and key not in exa["keys"]:
        raise ToolFailure(f"ESCLI: key {key} does not exist")
    exa["users"][user] = {"key": key}
    ctx.log(f"user {user} created")
    return ToolResult(0, f"User {user} created\n")


def _lsuser(ctx: ToolContext, args: list[str]) -> ToolResult:
    opts = parse("escli lsuser", args, valued=["--id"])
    users = exa_state.read(ctx.state)["users"]
    if "--id" in opts.values:
        wanted = opts.values["--id"]
        if wanted not in users:
            return ToolResult(1, "", f"ESCLI: user {wanted} does not exist\n")
        users = {wanted: users[wanted]}
    return ToolResult(0, "".join(f"{u}\n" for u in sorted(users)))


_COMMANDS = {
    **CLUSTER_COMMANDS,
    "lsservice": _lsservice,
    "chservice": _chservice,
    "mkwallet": _mkwallet,
    "chwallet": _chwallet,
    "lswallet": _lswallet,
    "mkkey": _mkkey,
    "mkuser": _mkuser,
    "lsuser": _lsuser,
}
