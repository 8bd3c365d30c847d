"""Creating resources, including adopting an orphan the reconciler reported."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlog.engine.cli import main
from fleetlog.engine.model import load_registry, replay_all
from fleetlog.engine.ops import ResourceExists, create_resource
from fleetlog.engine.ops.resources import first_bad_name, name_problem
from fleetlog.journal import NewEvent, open_journal


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


@pytest.mark.parametrize(
    ("rid", "shown"),
    [
        ("kvm_host/n@x", "'@'"),
        ("kvm_host/n?", "'?'"),
        ("kvm_host/n*", "'*'"),
        ("kvm_host/two words", "' '"),
        ("kvm_host/-n1", "a name cannot start with '-'"),
    ],
)
def test_a_name_a_pattern_could_not_address_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], rid: str, shown: str
) -> None:
    db = str(tmp_path / "j.db")
    assert main(["--journal", db, "add", "kvm_host/n0", "-p", "host=n0"]) == 0
    capsys.readouterr()
    assert main(["--journal", db, "add", rid, "-p", "host=n1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"bad resource name {rid!r}: {shown}" in err
    j = open_journal(db)
    assert j.head() == 1  # nothing written
    j.close()


def test_names_operators_use_are_accepted(tmp_path: Path) -> None:
    j = open_journal(str(tmp_path / "j.db"))
    reg = load_registry()
    for rid in ("kvm_host/node-01.dc1.example.com", "kvm_host/rack3:u12", "kvm_host/n_1"):
        assert create_resource(j, reg, rid, {"host": "h"}).id == rid


def test_add_refuses_a_reference_to_a_resource_not_in_the_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "j.db")
    assert main(["--journal", db, "add", "kvm_host/node1", "-p", "host=node1"]) == 0
    capsys.readouterr()
    assert main(["--journal", db, "add", "vm/g1", "-p", "host=node2"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "fleetlog: error: vm/g1: host names 'kvm_host/node2': no such resource in the "
        "journal (add it first, or load both from one inventory)\n"
    )
    j = open_journal(db)
    assert j.streams() == ["kvm_host/node1"]
    j.close()
    assert main(["--journal", db, "add", "vm/g1", "-p", "host=node1"]) == 0


NAME = st.text(alphabet=st.sampled_from("ab1-_. @[*\n\t\x7f\u00e9\u202e"), max_size=8) | st.just(
    "x" * 254
)


@settings(max_examples=1500, deadline=None, derandomize=True, database=None)
@given(st.lists(NAME, max_size=6))
def test_first_bad_name_is_the_first_name_problem_finds(names: list[str]) -> None:
    """The check of many names at once (an inventory's node sets) tells the same names
    apart as ``name_problem`` one by one, and names the first bad one with its reason."""
    expected = next(((n, p) for n in names if (p := name_problem(n)) is not None), None)
    assert first_bad_name(names) == expected
