"""The ``fleetlog`` command line: ``main`` is the console script, ``app`` the typer app
(machine packs add their commands to it through ``Pack.commands``)."""

from fleetlog.engine.cli.app import app, main

__all__ = ["app", "main"]
