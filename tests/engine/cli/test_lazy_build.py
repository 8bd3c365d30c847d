"""Only the invoked command is built (typer inspects every command's signature to build
the whole app): the command is found past the global options, and anything unclear
builds the whole app, whose help and errors know every command."""

from __future__ import annotations

import pytest

from fleetlog.engine.cli import app, main
from fleetlog.engine.cli.inputs import _invoked, guarded


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (["status"], "status"),
        (["--journal", "x.db", "status", "--json"], "status"),
        (["--journal=x.db", "machines", "list"], "machines"),
        (["--accept-new-host-keys", "--backend", "sim", "fire", "vm/a", "go"], "fire"),
        (["--notify", "http://h/x", "--notify-secret-file", "k", "audit"], "audit"),
        (["-h"], None),
        (["--help", "status"], None),
        (["--journal", "status"], None),  # "status" is the journal's name here
        (["stauts"], None),
        ([], None),
    ],
)
def test_the_invoked_command_is_found_past_the_global_options(
    args: list[str], target: str | None
) -> None:
    assert _invoked(app, args) == target


def test_the_built_command_holds_only_what_was_invoked() -> None:
    only = guarded(app, ["status"])
    assert sorted(only.commands) == ["status"]
    everything = guarded(app, ["--help"])
    assert {"status", "fire", "machines", "sim"} <= set(everything.commands)


def test_a_typo_still_gets_the_whole_app_s_suggestion(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["stauts"]) == 2
    assert "Did you mean 'status'?" in capsys.readouterr().err
