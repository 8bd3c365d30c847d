"""The house style holds: ``ruff`` clean and formatted, ``mypy --strict`` clean for the
whole ``fleetlog`` namespace."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.imports import FOLDERS, ROOT


def _tool(name: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", name, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_ruff_check_and_format() -> None:
    checked = _tool("ruff", "check", ".")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    formatted = _tool("ruff", "format", "--check", ".")
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


def test_mypy_strict(tmp_path: Path) -> None:
    """mypy cannot follow setuptools' folder mapping, so it checks a tree of symlinks laid
    out as the namespace installs: ``fleetlog/engine`` -> ``engine/`` and so on."""
    tree = tmp_path / "fleetlog"
    tree.mkdir()
    for module in FOLDERS["fleetlog"].glob("*.py"):
        (tree / module.name).symlink_to(module)
    for name, folder in FOLDERS.items():
        if name != "fleetlog":
            (tree / name.split(".", 1)[1]).symlink_to(folder, target_is_directory=True)
    env_cache = str(tmp_path / "mypy_cache")
    result = _tool(
        "mypy",
        "--config-file",
        str(ROOT / "pyproject.toml"),
        "--cache-dir",
        env_cache,
        "-p",
        "fleetlog",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success" in result.stdout
    assert os.path.isdir(env_cache)
