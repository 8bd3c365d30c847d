"""The commands the built-in pack adds to ``fleetlog``: ``demo`` and ``provisioner``."""

from __future__ import annotations

from pathlib import Path

import typer

from fleetlog.engine.cli import add_commands, add_group
from fleetlog.machines.provisioner_cli import provisioner_app


def demo(
    directory: Path = typer.Option(
        None,
        "--dir",
        help="Run in this directory (must be empty or absent) instead of a new temporary one.",
    ),
) -> None:
    """The seeds' scenario on the simulated datacenter, end to end, in about 20 s: load
    examples/exascale.toml, deploy, clone onto an unconfigured host, crash and resume,
    and show the audit trail. Leaves its journal behind for you to explore."""
    from fleetlog.machines.demo import run_demo

    code = run_demo(directory)
    if code:
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    """Add ``demo`` and ``provisioner`` to ``app`` (idempotent)."""
    add_group(app, "provisioner", provisioner_app)
    add_commands(app, {"demo": demo})
