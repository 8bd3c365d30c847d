"""Choosing a backend by name; each is imported only when chosen (paramiko is slow to
import and only the ssh backend needs it)."""

from __future__ import annotations

import os
from collections.abc import Callable

from fleetlog.engine.backends.base import Backend
from fleetlog.errors import UsageError

#: Every backend by name; ``sim`` is the in-process simulated datacenter.
BACKENDS = ("sim", "local", "ssh")


def sim_world_path(journal_url: str) -> str | None:
    """The sim's world lives beside an SQLite journal (``fleetlog.db`` -> ``fleetlog.db.sim``)
    so a resumed run sees the world the interrupted one left; ``FLEETLOG_SIM_WORLD``
    overrides, and a PostgreSQL journal keeps the world in memory unless told."""
    explicit = os.environ.get("FLEETLOG_SIM_WORLD")
    if explicit:
        return explicit
    if journal_url.startswith(("postgresql://", "postgres://")):
        return None
    path = journal_url.removeprefix("sqlite:///")
    return f"{path}.sim"


def open_backend(
    name: str,
    journal_url: str,
    *,
    accept_new_host_keys: bool = False,
    on_new_host_key: Callable[[str, str, str], None] | None = None,
) -> Backend:
    if name == "sim":
        from fleetlog.engine.backends.sim import SimBackend

        seed = int(os.environ.get("FLEETLOG_SIM_SEED", "0"))
        return SimBackend(sim_world_path(journal_url), seed=seed)
    if name == "local":
        from fleetlog.engine.backends.local import LocalBackend

        return LocalBackend()
    if name == "ssh":
        from fleetlog.engine.backends.ssh import SSHBackend

        return SSHBackend(
            accept_new_host_keys=accept_new_host_keys, on_new_host_key=on_new_host_key
        )
    raise UsageError(f"backend {name!r} is not available")
