"""How a module adds its commands to the ``fleetlog`` app: one style for every module,
the engine's own and a machine pack's (``Pack.commands``). Adding is idempotent, so a
test or a pack may register again without duplicating a command."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import typer


def add_commands(app: typer.Typer, commands: Mapping[str, Callable[..., Any]]) -> None:
    """Add each ``name: function`` as a command unless ``app`` already has that name."""
    have = {c.name for c in app.registered_commands}
    for name, fn in commands.items():
        if name not in have:
            app.command(name)(fn)


def add_group(app: typer.Typer, name: str, group: typer.Typer) -> None:
    """Add ``group`` as the sub-command ``name`` unless ``app`` already has it."""
    if name not in {g.name for g in app.registered_groups}:
        app.add_typer(group, name=name)
