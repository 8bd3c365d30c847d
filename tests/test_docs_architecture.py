"""docs/architecture.md stays true: its code blocks run, and the tree it describes is
the tree there is."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from fleetlog.journal.testing import JournalContract
from fleetlog.packs import Pack
from tests.imports import FOLDERS, ROOT

DOC = ROOT / "docs" / "architecture.md"
TEXT = DOC.read_text(encoding="utf-8")


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"^```{lang}\n(.*?)^```", TEXT, flags=re.S | re.M)


def test_the_pack_example_declares_a_pack(tmp_path: Path) -> None:
    pack_block, contract_block = _blocks("python")
    scope: dict[str, object] = {"__file__": str(tmp_path / "rackpack" / "__init__.py")}
    exec(compile(pack_block, f"{DOC}:pack", "exec"), scope)
    pack = scope["PACK"]
    assert isinstance(pack, Pack) and pack.name == "racks"
    assert pack.machines == (tmp_path / "rackpack" / "fsm",)
    [entry] = _blocks("toml")
    points = tomllib.loads(entry)["project"]["entry-points"]["fleetlog.machines"]
    assert points == {"racks": "rackpack:PACK"}
    scope = {}
    exec(compile(contract_block, f"{DOC}:contract", "exec"), scope)
    test_class = scope["TestSQLite"]
    assert isinstance(test_class, type) and issubclass(test_class, JournalContract)
    journal = test_class().make_journal(tmp_path)
    try:
        assert journal.head() == 0
    finally:
        journal.close()


def test_every_folder_and_layer_named_exists() -> None:
    for folder in FOLDERS.values():
        assert f"`{folder.relative_to(ROOT)}/`" in TEXT
    for layer in ("model", "runtime", "ops", "backends", "cli"):
        assert f"fleetlog.engine.{layer}" in TEXT
        assert (ROOT / "engine" / layer / "__init__.py").exists()
    assert [p.name for p in (ROOT / "engine").glob("*.py")] == ["__init__.py"]
