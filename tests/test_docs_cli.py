"""docs/cli.md is the ``--help`` of every command, regenerated here and compared.

When a command or option changes, regenerate the reference with::

    FLEETLOG_REGEN_DOCS=1 python -m pytest tests/test_docs_cli.py

Help is rendered in-process with a fixed terminal (``COLUMNS=100``, ``TERM=dumb``,
``NO_COLOR=1``) so the text does not depend on where the tests run.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from fleetlog.engine.cli import app, main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "cli.md"
REGEN_ENV = "FLEETLOG_REGEN_DOCS"

HEADER = """\
# fleetlog command reference

<!-- Generated from `fleetlog … --help` by tests/test_docs_cli.py; do not edit by hand.
     Regenerate: FLEETLOG_REGEN_DOCS=1 python -m pytest tests/test_docs_cli.py -->

Every command, exactly as its `--help` prints it. Global options (`--journal`,
`--backend`) go before the command: `fleetlog --journal ops.db status --json`.
The journal is `./fleetlog.db` unless `--journal` or `FLEETLOG_JOURNAL` says otherwise.

Exit codes: 0 ok, 1 an operation failed, 2 usage error, 3 drift found or needs
attention, 4 journal integrity failure. Errors are one line on stderr (a bad machine
file gets every diagnostic with its source line and a caret); data goes to stdout.
Environment faults are not integrity failures: disk full, read-only media and permission
denied exit 1, a bad path (a directory, a missing directory) exits 2
([guarantees](guarantees.md#environment-faults-are-not-integrity-failures)).

Input is bounded ([limits](inventory.md#limits)): a NUL or another control character in
any argument, option or `--param` value (tabs and line breaks aside in values and
`--reason`), a name over 253 bytes, a node set naming more than 1,000,000 resources
(`FLEETLOG_MAX_NODESET` changes the cap; it is counted before it is expanded), a seq past
2^63-1 or a time outside 1970..9999 is a usage error (exit 2) naming the option.
"""


def command_paths() -> Iterator[tuple[list[str], Any]]:
    """Every command and group under ``fleetlog``, depth first, in the order the CLI
    lists them. (Typer may vendor its own click, so groups are recognised by what they
    do, not by click's classes.)"""
    root = typer.main.get_command(app)

    def walk(path: list[str], cmd: Any) -> Iterator[tuple[list[str], Any]]:
        yield path, cmd
        if hasattr(cmd, "list_commands"):
            ctx = typer.Context(cmd, info_name=path[-1] if path else "fleetlog")
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None
                yield from walk([*path, name], sub)

    yield from walk([], root)


@pytest.fixture
def fixed_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "100")
    monkeypatch.setenv("LINES", "50")
    monkeypatch.setenv("TERM", "dumb")
    monkeypatch.setenv("NO_COLOR", "1")
    for var in ("FORCE_COLOR", "FLEETLOG_JOURNAL", "FLEETLOG_BACKEND", "FLEETLOG_MACHINES"):
        monkeypatch.delenv(var, raising=False)


def help_text(path: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    code = main([*path, "--help"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    return "\n".join(line.rstrip() for line in out.strip("\n").splitlines())


def render(capsys: pytest.CaptureFixture[str]) -> str:
    sections = []
    paths = [p for p, _ in command_paths()]
    toc = "\n".join(
        f"- [`{' '.join(['fleetlog', *p])}`](#{'-'.join(['fleetlog', *p])})" for p in paths
    )
    for path in paths:
        title = " ".join(["fleetlog", *path])
        sections.append(f"## {title}\n\n```text\n{help_text(path, capsys)}\n```\n")
    return HEADER + "\n" + toc + "\n\n" + "\n".join(sections)


@pytest.mark.usefixtures("fixed_terminal")
def test_docs_cli_md_is_the_help_of_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    text = render(capsys)
    if os.environ.get(REGEN_ENV) == "1":
        DOC.write_text(text, encoding="utf-8")
    assert DOC.exists(), f"{DOC} is missing; run with {REGEN_ENV}=1 to generate it"
    assert DOC.read_text(encoding="utf-8") == text, (
        f"{DOC.relative_to(ROOT)} is out of date with the CLI's --help; regenerate it with "
        f"{REGEN_ENV}=1 python -m pytest tests/test_docs_cli.py"
    )


def test_every_contract_command_is_documented() -> None:
    """The commands DESIGN's CLI contract names that exist must appear in docs/cli.md."""
    text = DOC.read_text(encoding="utf-8")
    for path, _cmd in command_paths():
        assert f"## {' '.join(['fleetlog', *path])}\n" in text
    for name in (
        "machines list",
        "machines show",
        "machines check",
        "graph",
        "add",
        "status",
        "history",
        "replay",
        "verify",
        "export",
        "import",
    ):
        assert f"## fleetlog {name}\n" in text


@pytest.mark.parametrize(
    "path", [p for p, _ in command_paths()], ids=lambda p: " ".join(p) or "fleetlog"
)
def test_every_command_and_option_has_help(path: list[str]) -> None:
    cmd = dict((tuple(p), c) for p, c in command_paths())[tuple(path)]
    assert (cmd.help or "").strip(), f"{path}: no help text"
    assert cmd.get_short_help_str().strip()
    for param in cmd.params:
        if param.name == "help":
            continue
        text = getattr(param, "help", None)
        assert text and text.strip(), f"{' '.join(path)}: {param.name} has no help"


@pytest.mark.usefixtures("fixed_terminal")
def test_help_is_the_same_in_a_subprocess(capsys: pytest.CaptureFixture[str]) -> None:
    """What the doc shows is what an operator's terminal shows."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("fleetlog")
    argv = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]
    )
    r = subprocess.run(
        [*argv, "machines", "check", "--help"], capture_output=True, text=True, check=False
    )
    assert r.returncode == 0
    in_process = help_text(["machines", "check"], capsys)
    assert "\n".join(ln.rstrip() for ln in r.stdout.strip("\n").splitlines()) == in_process
