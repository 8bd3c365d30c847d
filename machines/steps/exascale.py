"""Exascale step plugins (Oracle's "Setup Exascale on KVM for clone and delete guest").

``validate_cell`` is the read-only validation of the seed's configureExaScaleOnCluster
on one cell: ``what="celldisks"`` (every celldisk exists and is normal — "throw errors if
unable to get celldisk status"), ``"services"`` (isCellServersReadyForExascaleDeployment:
RS, MS and CELLSRV running) and ``"space"`` (validateSpaceOnExascaleCells: enough free
hard-disk and flash space).

``setup_wallet`` is the seed's setupWalletOnNonEgsKvmHost after its fix: clear the old
trusted certificates, then trust the cluster root — in the cloud from the local file
only, otherwise ALWAYS fetched from an existing Exascale node (never a stale local
file) — and run the wallet set-up script. It goes through ``ctx.run`` so it works the
same on the sim, local and ssh backends.
"""

from __future__ import annotations

import shlex
from typing import Any

__all__ = ["setup_wallet", "start_bsw", "validate_cell"]

CLOUD_CERT = "/etc/oracle/cell/network-config/trust.pem"


class WalletSetupFailed(RuntimeError):
    pass


def setup_wallet(
    ctx: Any, wallet: str, trust_from: str, cloud: bool = False, password: str | None = None
) -> str:
    q = shlex.quote
    steps = [f"escli chwallet --wallet {q(wallet)} --attributes clearTrust=true"]
    if cloud:
        steps.append(f"escli chwallet --wallet {q(wallet)} --attributes trustFile={q(CLOUD_CERT)}")
    else:
        steps.append(f"escli chwallet --wallet {q(wallet)} --attributes trustFrom={q(trust_from)}")
    out = []
    for cmd in steps:
        res = ctx.run(cmd)
        if not res.ok:
            raise WalletSetupFailed(
                f"{cmd.split(' --attributes ')[-1]}: {(res.stderr or res.stdout).strip()}"
            )
        out.append(res.stdout.strip())
    return "\n".join(o for o in out if o)


def start_bsw(ctx: Any, has_app_vms: bool = False) -> str:
    """Start BSW on a KVM host unless it runs application VMs: what the host reports
    (``vm_maker --list``) decides, not a setting; ``has_app_vms`` true forces the skip."""
    listed = ctx.run("vm_maker --list")
    if not listed.ok:
        raise WalletSetupFailed(f"vm_maker --list: {(listed.stderr or listed.stdout).strip()}")
    guests = [line.split()[0] for line in listed.stdout.splitlines() if line.strip()]
    if guests or has_app_vms:
        why = ", ".join(guests) if guests else "has_app_vms is set"
        return f"BSW not started: application VMs on this host ({why})"
    res = ctx.run("escli chservice --attributes name=bsw_compute --start")
    if not res.ok:
        raise WalletSetupFailed(f"bsw_compute: {(res.stderr or res.stdout).strip()}")
    return str(res.stdout).strip()


class CellNotReady(RuntimeError):
    pass


def _cellcli(ctx: Any, command: str) -> str:
    res = ctx.run(f"cellcli -e {shlex.quote(command)}")
    if not res.ok:
        raise CellNotReady(f"{command}: {(res.stderr or res.stdout).strip()}")
    return str(res.stdout)


def _gb(text: str) -> float:
    text = text.strip().upper()
    scale = {"T": 1024.0, "G": 1.0, "M": 1 / 1024}.get(text[-1:], None)
    return float(text[:-1]) * scale if scale is not None else float(text)


def validate_cell(ctx: Any, what: str, hc_gb: int = 0, ef_gb: int = 0) -> str:
    if what == "celldisks":
        rows = [
            line.split()
            for line in _cellcli(ctx, "list celldisk attributes name,status").splitlines()
            if line.strip()
        ]
        if not rows:
            raise CellNotReady("no celldisks found")
        bad = [f"{r[0]} is {' '.join(r[1:])}" for r in rows if r[1:] != ["normal"]]
        if bad:
            raise CellNotReady("celldisks not normal: " + ", ".join(bad))
        return f"{len(rows)} celldisks normal"
    if what == "services":
        states = _cellcli(ctx, "list cell attributes rsStatus,msStatus,cellsrvStatus").split()
        down = [n for n, s in zip(("RS", "MS", "CELLSRV"), states, strict=False) if s != "running"]
        if len(states) != 3 or down:
            raise CellNotReady(
                "cell not ready for Exascale: " + (", ".join(down) or "?") + " not running"
            )
        return "RS, MS and CELLSRV running"
    if what == "space":
        hc, ef = (
            _gb(v) for v in _cellcli(ctx, "list cell attributes freeSpaceHC,freeSpaceEF").split()
        )
        short = []
        if hc < hc_gb:
            short.append(f"hard disk {hc:g}G < {hc_gb}G")
        if ef < ef_gb:
            short.append(f"flash {ef:g}G < {ef_gb}G")
        if short:
            raise CellNotReady("not enough free space: " + "; ".join(short))
        return f"free space ok: hard disk {hc:g}G, flash {ef:g}G"
    if what == "exascale_services":
        res = ctx.run("escli lsservice")
        if not res.ok:
            raise CellNotReady(f"escli lsservice: {(res.stderr or res.stdout).strip()}")
        rows = [line.split() for line in res.stdout.splitlines() if line.strip()]
        down = [r[0] for r in rows if r[1:] != ["online"]]
        if not rows or down:
            raise CellNotReady(
                "Exascale services not online: " + (", ".join(down) or "none listed")
            )
        return f"{len(rows)} services online"
    raise CellNotReady(
        f"unknown validation {what!r} (celldisks, services, space, exascale_services)"
    )
