"""``fleetlog inventory load FILE`` and ``fleetlog demo``."""

from __future__ import annotations

from pathlib import Path

import typer

from engine import output
from engine.session import Session

inventory_app = typer.Typer(
    help="Create many resources at once from a TOML inventory (docs/inventory.md).",
    no_args_is_help=True,
)


@inventory_app.command("load")
def load(
    ctx: typer.Context,
    file: Path = typer.Argument(..., help="The inventory, a TOML file.", show_default=False),
    json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Validate FILE completely, then create its resources. Nothing is journaled when it
    is invalid (exit 2); resources already present with identical parameters are skipped
    and reported, so loading twice is harmless."""
    from engine.inventory import load as load_inventory
    from engine.patterns import fold_names

    session: Session = ctx.obj
    result = load_inventory(file, session.journal, session.registry)
    if json:
        output.emit_json({"created": result.created, "skipped": result.skipped})
        return
    if result.created:
        output.say(f"created {len(result.created)}: {fold_names(result.created)}")
    if result.skipped:
        output.say(
            f"skipped {len(result.skipped)} already present with identical parameters: "
            f"{fold_names(result.skipped)}"
        )
    if not result.created and not result.skipped:
        output.say("the inventory declares no resource")


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
    from engine.demo import run_demo

    code = run_demo(directory)
    if code:
        raise typer.Exit(code)


COMMANDS = {"demo": demo}


def register(app: typer.Typer) -> None:
    """Add ``inventory`` and ``demo`` to the ``fleetlog`` app (idempotent: a command the
    app already has is left alone)."""
    groups = {g.name for g in app.registered_groups}
    commands = {c.name for c in app.registered_commands}
    if "inventory" not in groups:
        app.add_typer(inventory_app, name="inventory")
    for name, fn in COMMANDS.items():
        if name not in commands:
            app.command(name)(fn)
