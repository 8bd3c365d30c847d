"""``fleetlog inventory load FILE``."""

from __future__ import annotations

from pathlib import Path

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_group
from fleetlog.engine.cli.session import Session

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
    from fleetlog.engine.model.patterns import fold_names
    from fleetlog.engine.ops.inventory import load as load_inventory

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


def register(app: typer.Typer) -> None:
    """Add ``inventory`` to ``app`` (idempotent)."""
    add_group(app, "inventory", inventory_app)
