"""The ``fleetlog`` command line: ``main`` is the console script, ``app`` the typer app.

Machine packs add their commands through ``Pack.commands`` with what this face offers:
the ``Session`` a command gets as ``ctx.obj``, ``add_commands``/``add_group``, ``output``,
``paths`` (output files checked before any work, written whole or not at all) and
``report`` (an outcome table and the contract's exit code). Those are imported before
the app, because building the app imports the packs' command modules, which import them.
A Ctrl-C while they are imported ends the console script with one line and exit 130
(``interrupt.while_starting``).
"""

try:
    from fleetlog.engine.cli import output, paths
    from fleetlog.engine.cli.registration import add_commands, add_group
    from fleetlog.engine.cli.run import report
    from fleetlog.engine.cli.session import Session

    from fleetlog.engine.cli.app import app, main  # isort: skip  (after what packs import)
except KeyboardInterrupt:
    # Ctrl-C while the console script is still starting: one line and 130, no traceback.
    from fleetlog.engine.cli.interrupt import while_starting

    while_starting()
    raise

__all__ = ["Session", "add_commands", "add_group", "app", "main", "output", "paths", "report"]
