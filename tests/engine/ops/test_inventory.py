"""Inventories: the documented TOML format, its one-line errors (file and table, exit 2),
nothing journaled when invalid, and loading twice."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.engine.model import KindRegistry, load_registry
from fleetlog.engine.ops.inventory import InventoryError, load
from fleetlog.journal import open_journal
from fleetlog.journal.base import Journal
from fleetlog.machines.demo import CLI

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "examples" / "exascale.toml"


def fleetlog(*args: str) -> subprocess.CompletedProcess[str]:
    """The real CLI in a child process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=False)


@pytest.fixture(scope="module")
def registry() -> KindRegistry:
    return load_registry()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = open_journal(str(tmp_path / "j.db"))
    yield j
    j.close()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inv.toml"
    path.write_text(text)
    return path


def _count(journal: Journal) -> int:
    return sum(len(journal.read_stream(s)) for s in journal.streams())


def test_the_example_is_the_seeds_environment(journal: Journal, registry: KindRegistry) -> None:
    result = load(EXAMPLE, journal, registry)

    kinds: dict[str, int] = {}
    for rid in result.created:
        kinds[rid.split("/")[0]] = kinds.get(rid.split("/")[0], 0) + 1
    assert kinds == {"kvm_host": 8, "cell": 3, "exascale_cluster": 1, "vm": 20}
    assert result.skipped == []
    params = {rid: journal.read_stream(rid)[0].payload["params"] for rid in result.created}
    cluster = params["exascale_cluster/exa"]
    assert cluster["cells"] == ["cell/cell1", "cell/cell2", "cell/cell3"]
    assert cluster["leader"] == "cell/cell1"
    assert cluster["hosts"] == ["kvm_host/node1", "kvm_host/node2"]
    assert cluster["egs_hosts"] == ["kvm_host/node1", "kvm_host/node2"]
    # The EGS rule: 3 cells + the first 2 KVM hosts.
    assert [params[f"cell/cell{i}"]["egs"] for i in (1, 2, 3)] == [True, True, True]
    assert [params[f"kvm_host/node{i}"]["egs"] for i in range(1, 9)] == [True, True] + [False] * 6
    assert {params[f"cell/cell{i}"]["leader"] for i in (1, 2, 3)} == {"cell/cell1"}
    assert params["kvm_host/node3"]["trust_node"] == "cell1"
    assert params["vm/exa1_vm1"]["host"] == "kvm_host/node1"
    assert params["vm/asm4_vm2"] == {
        **params["vm/asm4_vm2"],
        "host": "kvm_host/node2",
        "storage": "asm",
    }
    assert params["kvm_host/node5"]["host"] == "node5"  # {name} in [defaults.kvm_host]


def test_loading_twice_skips_identical_resources(journal: Journal, registry: KindRegistry) -> None:
    first = load(EXAMPLE, journal, registry)
    events = _count(journal)

    again = load(EXAMPLE, journal, registry)

    assert again.created == [] and sorted(again.skipped) == sorted(first.created)
    assert _count(journal) == events


def test_a_changed_resource_is_an_error_and_nothing_is_appended(
    tmp_path: Path, journal: Journal, registry: KindRegistry
) -> None:
    load(_write(tmp_path, '[kvm_host."node[1-2]"]\nhost = "{name}"\n'), journal, registry)
    events = _count(journal)
    path = _write(tmp_path, '[kvm_host."node[1-3]"]\nhost = "{name}"\ncloud = true\n')

    with pytest.raises(InventoryError) as err:
        load(path, journal, registry)

    assert str(err.value) == (
        f'{path}: [kvm_host."node[1-3]"]: kvm_host/node1 already exists with other parameters '
        "(cloud=False in the journal, True here)"
    )
    assert _count(journal) == events and "kvm_host/node3" not in journal.streams()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[kvm_hots.node1]\nhost = "x"\n',
            "[kvm_hots]: unknown kind 'kvm_hots'; did you mean 'kvm_host'?",
        ),
        ('[kvm_host."node[1-8"]\nhost = "x"\n', "[kvm_host.\"node[1-8\"]: bad node set 'node[1-8'"),
        (
            "[kvm_host.node1]\ncloud = true\n",
            "[kvm_host.node1] kvm_host/node1: parameter 'host': is required and has no default",
        ),
        (
            '[kvm_host.node1]\nhost = "n"\nclod = true\n',
            "parameter 'clod': no such parameter; did you mean 'cloud'?",
        ),
        (
            '[kvm_host.node1]\nhost = "n"\negs = "maybe"\n',
            "parameter 'egs': expected true or false, got 'maybe'",
        ),
        (
            '[kvm_host."node[1-2]"]\nhost = "{name}"\n[kvm_host.node2]\nhost = "x"\n',
            '[kvm_host.node2]: duplicate resource kvm_host/node2 (also in [kvm_host."node[1-2]"])',
        ),
        (
            '[vm.g1]\nhost = "node9"\n',
            "[vm.g1] vm/g1: host names 'kvm_host/node9': no such resource in this inventory "
            "or the journal",
        ),
        (
            '[kvm_host.node1]\nhost = "{nam}"\n',
            "[kvm_host.node1]: host: unknown placeholder {nam} (use {name} or {index})",
        ),
        (
            '[kvm_host."node1"]\nhost = "n"\n[kvm_host."rack 2"]\nhost = "n"\n',
            "[kvm_host.\"rack 2\"]: bad resource name 'rack 2': ' ' cannot be in a name",
        ),
        (
            '[kvm_host."-n1"]\nhost = "n"\n',
            "[kvm_host.-n1]: bad resource name '-n1': a name cannot start with '-'",
        ),
        ("kvm_host = 3\n", "kvm_host = ...: expected tables like [kvm_host.NAME], not a value"),
        (
            '[kvm_host.node1]\nhost = "a"\n[kvm_host.node1.x]\n',
            "[kvm_host.node1]: 'x' is a table; resource names with dots must be quoted",
        ),
        ("[kvm_host.node1\n", "invalid TOML: "),
        ('[defaults.cel]\nhost = "x"\n', "[defaults.cel]: unknown kind 'cel'; did you mean "),
        # The Exascale cluster's hook: slots, the EGS rule, contradictions.
        (
            '[cell.c1]\nhost = "c1"\nleader = "c1"\n[exascale_cluster.e]\ncells = "c1"\n'
            "hosts = []\n",
            "[exascale_cluster.e]: 1 cells and 0 KVM hosts cannot hold the 5 EGS instances",
        ),
        (
            '[cell."c[1-5]"]\nhost = "{name}"\negs = false\n[exascale_cluster.e]\n'
            'cells = "c[1-5]"\n',
            '[cell."c[1-5]"]: cell/c1: egs = False contradicts [exascale_cluster.e], which sets '
            "it to True",
        ),
        (
            '[cell."c[1-5]"]\nhost = "{name}"\n[exascale_cluster.e]\ncells = "c[1-5]"\n'
            'leader = "c2"\n',
            "[exascale_cluster.e]: leader = 'c2' contradicts the EGS rule: it must be the first "
            "of `cells` (c1)",
        ),
        (
            '[cell."c[1-3]"]\nhost = "{name}"\n[kvm_host."n[1-3]"]\nhost = "{name}"\n'
            '[exascale_cluster.e]\ncells = "c[1-3]"\nhosts = "n[1-3]"\negs_hosts = "n3"\n',
            "egs_hosts = 'n3' contradicts the EGS rule: it must be the hosts the EGS rule picks "
            "(n1, n2)",
        ),
        (
            '[exascale_cluster.e]\ncells = "c1"\nhosts = "n[1-4]"\n',
            "[exascale_cluster.e]: cell/c1 is not declared in this inventory nor in the journal",
        ),
        (
            '[cell."c[1-5]"]\nhost = "{name}"\n[exascale_cluster.e]\ncells = "c[1-5],c2"\n',
            "cells: 'c2' is listed twice",
        ),
        (
            '[exascale_cluster.e]\nhosts = "n[1-5]"\n',
            "[exascale_cluster.e]: an Exascale cluster needs its cells (`cells`)",
        ),
    ],
)
def test_invalid_inventories_get_one_line_errors_and_journal_nothing(
    tmp_path: Path, journal: Journal, registry: KindRegistry, text: str, message: str
) -> None:
    path = _write(tmp_path, text)

    with pytest.raises(InventoryError) as err:
        load(path, journal, registry)

    line = str(err.value)
    assert "\n" not in line and line.startswith(f"{path}: "), line
    assert message in line
    assert journal.streams() == []


def test_a_missing_file(tmp_path: Path, journal: Journal, registry: KindRegistry) -> None:
    with pytest.raises(InventoryError, match="no such file"):
        load(tmp_path / "nope.toml", journal, registry)


def test_the_cli_exits_2_with_the_location_and_journals_nothing(tmp_path: Path) -> None:
    bad = _write(tmp_path, '[vm."exa[1-2]_vm1"]\nhost = "node1"\nstorage = "exascal"\n')
    db = str(tmp_path / "cli.db")

    proc = fleetlog("--journal", db, "inventory", "load", str(bad))

    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"fleetlog: error: {bad}: [vm.\"exa[1-2]_vm1\"] vm/exa1_vm1: parameter 'storage': "
        "'exascal' is not one of exascale, asm; did you mean 'exascale'?\n"
    )
    j = open_journal(db)
    try:
        assert j.streams() == []
    finally:
        j.close()


def test_the_cli_loads_and_reports(tmp_path: Path) -> None:
    db = str(tmp_path / "cli.db")
    first = fleetlog("--journal", db, "inventory", "load", str(EXAMPLE))
    assert first.returncode == 0, first.stderr
    assert first.stdout.startswith(
        "created 32: cell/cell[1-3],exascale_cluster/exa,kvm_host/node[1-8],"
    )
    again = fleetlog("--journal", db, "inventory", "load", str(EXAMPLE), "--json")
    assert again.returncode == 0 and '"created": []' in again.stdout
    assert '"kvm_host/node8"' in again.stdout  # reported as skipped


def test_an_explicit_member_value_that_agrees_is_accepted_in_any_spelling(
    tmp_path: Path, journal: Journal, registry: KindRegistry
) -> None:
    path = _write(
        tmp_path,
        '[cell."c[1-3]"]\nhost = "{name}"\nleader = "cell/c1"\negs = true\n'
        '[kvm_host."n[1-2]"]\nhost = "{name}"\negs = "yes"\n'
        '[exascale_cluster.e]\ncells = "c[1-3]"\nhosts = "n[1-2]"\n',
    )

    result = load(path, journal, registry)

    assert len(result.created) == 6
    assert journal.read_stream("cell/c2")[0].payload["params"]["leader"] == "cell/c1"
