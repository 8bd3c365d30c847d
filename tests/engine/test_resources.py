"""Creating resources, including adopting an orphan the reconciler reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.loader import load_registry
from engine.replay import replay_all
from engine.resources import ResourceExists, create_resource
from journal import NewEvent, open_journal


def test_an_orphan_stream_is_adopted_by_add(tmp_path: Path) -> None:
    j = open_journal(str(tmp_path / "j.db"))
    reg = load_registry()
    j.append("vm/stray", [NewEvent("drift.detected", {"class": "orphan", "observed": "running"})])
    assert replay_all(j, reg) == {}
    rec = create_resource(j, reg, "vm/stray", {"host": "node1"})
    assert (rec.state, rec.version) == ("defined", 2)
    with pytest.raises(ResourceExists):
        create_resource(j, reg, "vm/stray", {"host": "node1"})
    assert j.verify().ok


def test_fire_ignores_streams_that_are_not_resources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "j.db")
    assert main(["--journal", db, "add", "kvm_host/n1", "-p", "host=n1"]) == 0
    j = open_journal(db)
    j.append("kvm_host/ghost", [NewEvent("drift.detected", {"class": "orphan"})])
    j.close()
    capsys.readouterr()
    assert main(["--journal", db, "fire", "kvm_host", "retire", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"kvm_host/n1"' in out and "ghost" not in out
