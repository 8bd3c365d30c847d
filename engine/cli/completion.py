"""``fleetlog completion SHELL``: the shell's completion script, on stdout.

As ``kubectl completion bash`` does: the script is printed, never written into the
operator's rc files, so it can be sourced (``source <(fleetlog completion bash)``) or
installed where the system looks (``/etc/bash_completion.d/fleetlog``). The script calls
``fleetlog`` back with ``_FLEETLOG_COMPLETE`` set, and click answers with the commands,
options and kinds' names the command line allows at that point.
"""

from __future__ import annotations

import os
from enum import StrEnum

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_commands

#: The variable the script sets when it asks ``fleetlog`` for completions.
COMPLETE_VAR = "_FLEETLOG_COMPLETE"


class Shell(StrEnum):
    bash = "bash"
    zsh = "zsh"
    fish = "fish"


def script(shell: str, prog_name: str = "fleetlog") -> str:
    """The completion script for ``shell`` (typer's, whose answers know typer's types).
    typer keeps it in a module of its own without re-exporting it; pinned by
    tests/engine/cli/test_output.py, which sources the script and completes with it."""
    from typer._completion_shared import get_completion_script

    return get_completion_script(prog_name=prog_name, complete_var=COMPLETE_VAR, shell=shell)


def answering() -> bool:
    """When the script asks for completions (``COMPLETE_VAR`` set): typer's completion
    classes are registered to answer it (the app is built with ``add_completion=False``,
    which would otherwise leave click's, which read another request format)."""
    if not os.environ.get(COMPLETE_VAR):
        return False
    from typer._completion_classes import completion_init

    completion_init()
    return True


def completion(
    shell: Shell = typer.Argument(..., help="bash, zsh or fish.", show_default=False),
) -> None:
    """Print the shell completion script. bash: `source <(fleetlog completion bash)` in
    ~/.bashrc; zsh: `fleetlog completion zsh > "${fpath[1]}/_fleetlog"`; fish:
    `fleetlog completion fish > ~/.config/fish/completions/fleetlog.fish`."""
    output.say(script(shell.value))


COMMANDS = {"completion": completion}


def register(app: typer.Typer) -> None:
    add_commands(app, COMMANDS)
