"""Machine loading: in-tree kinds, FLEETLOG_MACHINES directories, entry-point packs and
step plugins."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fleetlog.dsl import DSLError
from fleetlog.engine.model import discover_plugins, load_registry, machine_dirs

EXTRA = """
machine rack "A rack" {
    param site: str = "dc1"
    initial state planned
    state racked
    transition rack_it : planned -> racked {
        step cable run "echo cabling {name}" idempotent
    }
}
"""


def test_in_tree_machines_and_plugins_load() -> None:
    reg = load_registry()
    assert {"kvm_host", "vm"} <= set(reg.names)
    assert "exascale.setup_wallet" in reg.plugins
    assert "exascale.setup_wallet" in discover_plugins()


def test_extra_directory_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rack.fsm").write_text(EXTRA)
    monkeypatch.setenv("FLEETLOG_MACHINES", str(tmp_path))
    assert tmp_path in machine_dirs()
    reg = load_registry()
    assert reg.get("rack").allowed("planned", "rack_it") == "racked"


def test_a_kind_defined_twice_names_both_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shipped = Path(__file__).resolve().parents[3] / "machines" / "vm.fsm"
    (tmp_path / "vm_copy.fsm").write_text(shipped.read_text())
    monkeypatch.setenv("FLEETLOG_MACHINES", str(tmp_path))
    with pytest.raises(DSLError, match=r"kind 'vm' is already defined in .*vm\.fsm"):
        load_registry()


def test_a_broken_extra_file_is_a_dsl_error_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "bad.fsm").write_text(EXTRA.replace("racked {", "rackd {"))
    monkeypatch.setenv("FLEETLOG_MACHINES", str(tmp_path))
    with pytest.raises(DSLError) as info:
        load_registry()
    assert "bad.fsm:" in str(info.value)
    assert "did you mean 'racked'" in info.value.format()


def test_machine_pack_from_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine pack is a package registered under ``fleetlog.machines``."""
    pkg = tmp_path / "site" / "rackpack"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "rack.fsm").write_text(EXTRA)
    dist = tmp_path / "site" / "rackpack-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: rackpack\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[fleetlog.machines]\nracks = rackpack\n")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    sys.modules.pop("rackpack", None)
    reg = load_registry()
    assert "rack" in reg
    assert reg.get("rack").spec.filename.endswith("rack.fsm")
