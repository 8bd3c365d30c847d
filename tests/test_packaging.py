"""The distribution installs one import name, ``fleetlog``, laid out from the
repository's folders; its root imports none of its parts; no circle anywhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.imports import FOLDERS, ROOT, cycles, imports

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _packages_in_tree() -> set[str]:
    found = set()
    for prefix, folder in FOLDERS.items():
        for init in folder.rglob("__init__.py"):
            rel = init.parent.relative_to(folder)
            found.add(".".join([prefix, *rel.parts]))
    return found


def test_pyproject_lists_every_package_of_the_tree() -> None:
    tool = PYPROJECT["tool"]["setuptools"]
    assert set(tool["packages"]) == _packages_in_tree()
    mapped = {name: ROOT / folder for name, folder in tool["package-dir"].items()}
    assert mapped == FOLDERS


def test_the_root_imports_none_of_its_parts() -> None:
    bad = [
        str(i)
        for i in imports()
        if i.module in ("fleetlog", "fleetlog.errors", "fleetlog.packs")
        and i.target not in ("fleetlog", "fleetlog.errors", "fleetlog.packs")
    ]
    assert bad == []


def test_no_circle_anywhere_in_the_namespace() -> None:
    assert cycles("fleetlog") == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel, built from a copy of the sources (setuptools writes ``build/`` and
    ``*.egg-info`` beside the sources it builds, and the checkout must stay clean)."""
    out = tmp_path_factory.mktemp("wheel")
    source = tmp_path_factory.mktemp("source") / "fleetlog"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "__pycache__", ".*_cache", "*.db*"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(source)],
        check=True,
        capture_output=True,
        timeout=600,
    )
    [built] = list(out.glob("fleetlog-*.whl"))
    return built


def test_the_wheel_holds_one_top_level_name(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/", 1)[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"fleetlog"}
    assert "fleetlog/dsl/grammar.lark" in names
    assert "fleetlog/machines/vm.fsm" in names


def test_the_wheel_works_outside_the_repository(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel alone (no editable finder, cwd outside the repo):
    ``fleetlog.engine`` imports, ``engine`` does not, and the built-in pack is found
    through its entry point with its machine files."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    deps = [p for p in sys.path if p.endswith("site-packages")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *deps])}
    env.pop("FLEETLOG_MACHINES", None)

    def python(code: str) -> subprocess.CompletedProcess[str]:
        # -S: no site.py, so no .pth file installs the editable finder of this checkout
        return subprocess.run(
            [sys.executable, "-S", "-c", code],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert python("import engine").returncode != 0
    assert python("import journal").returncode != 0
    where = python("import fleetlog.engine.cli as c; print(c.__file__)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.strip().startswith(str(site))
    kinds = python("from fleetlog.engine.cli import main; main(['machines', 'list', '--json'])")
    assert kinds.returncode == 0, kinds.stderr
    assert '"kvm_host"' in kinds.stdout and '"vm"' in kinds.stdout
