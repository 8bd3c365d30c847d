"""Only the invoked command is built (typer inspects every command's signature to build
the whole app): the command is found past the global options, and anything unclear
builds the whole app, whose help and errors know every command. And a short command
imports only what it uses: ``status`` and ``machines list`` start in a fraction of a
second, so what they leave out is guarded here by name (never by timing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fleetlog.engine.cli import app, main
from fleetlog.engine.cli.inputs import _invoked, guarded
from fleetlog.journal.sqlite import SQLiteJournal


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


#: What neither ``status`` nor ``machines list`` imports, and why it would be paid for.
NEVER_AT_START = (
    "importlib.metadata",  # packs are read from entry_points.txt (fleetlog.packs)
    "logging",  # only for transitions' logger, set when a machine is built
    "socket",  # the journal's host name is the kernel's node name (os.uname)
    "transitions",
    "fleetlog.engine.model.graph",  # the model's face imports what is asked for
    "fleetlog.engine.model.params",
    "fleetlog.engine.model.progress",
    "fleetlog.engine.model.values",
    "fleetlog.engine.runtime",
    "fleetlog.engine.ops",
    "fleetlog.engine.backends.sim",
    "fleetlog.machines.steps.redfish_client",  # imported by the plugin that runs
)
#: What ``machines list`` leaves out besides: it reads no journal.
NOT_FOR_MACHINES = (
    "fleetlog.engine.model.events",
    "fleetlog.engine.model.replay",
    "fleetlog.journal.sqlite",
)


def _imported_by(tmp_path: Path, args: list[str]) -> set[str]:
    """The modules a fresh ``fleetlog ARGS`` process has imported when it is done, on an
    empty journal, with the machine specs already cached (as after any first command)."""
    journal = tmp_path / "empty.db"
    if not journal.exists():
        SQLiteJournal(str(journal)).close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    env.update(FLEETLOG_JOURNAL=str(journal), FLEETLOG_CACHE_DIR=str(tmp_path / "cache"))
    listing = tmp_path / "modules.txt"
    code = (
        "import sys\nfrom fleetlog.engine.cli import main\n"
        f"code = main({args!r})\n"
        f"open({str(listing)!r}, 'w').write('\\n'.join(sorted(sys.modules)))\n"
        "sys.exit(code)\n"
    )
    for _ in range(2):  # the first run fills the spec cache
        subprocess.run(
            [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, check=True
        )
    return set(listing.read_text().split())


@pytest.mark.parametrize(
    ("args", "absent"),
    [
        (["status"], NEVER_AT_START),
        (["machines", "list"], NEVER_AT_START + NOT_FOR_MACHINES),
    ],
    ids=["status", "machines list"],
)
def test_a_short_command_imports_only_what_it_uses(
    tmp_path: Path, args: list[str], absent: tuple[str, ...]
) -> None:
    imported = _imported_by(tmp_path, args)
    assert "fleetlog.engine.cli" in imported  # the listing is of the command's process
    assert sorted(m for m in absent if m in imported) == []
