"""README's set-up commands are the contract with a new user: keep them true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Set up", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```console\n(.+?)\n```", section, re.S)


def test_readme_has_exactly_two_setup_commands() -> None:
    cmds = _setup_commands()
    assert len(cmds) == 2
    assert "fleetlog" in cmds[0]
    assert "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_cmd = _setup_commands()[1]
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    assert test_cmd in ci


def test_the_first_session_in_the_readme_runs(tmp_path: Path) -> None:
    """Every command of README's walk-through succeeds, in order, on a fresh journal."""
    import os
    import shlex
    import subprocess
    import sys

    text = (ROOT / "README.md").read_text()
    block = text.split("## A first session", 1)[1]
    lines = re.findall(r"```console\n(.+?)\n```", block, re.S)[0].splitlines()
    exe = Path(sys.executable).with_name("fleetlog")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    for line in lines:
        argv = shlex.split(line.split("  #", 1)[0])
        assert argv[0] == "fleetlog", line
        done = subprocess.run(
            [str(exe), *argv[1:]],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert done.returncode == 0, (line, done.stderr)
        assert "Traceback" not in done.stderr
    assert (tmp_path / "journal.jsonl").read_text().count("\n") >= 5
