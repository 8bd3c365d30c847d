from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlog.engine.model import expand, fold_names, fold_nodes, natural_key, select
from fleetlog.engine.model.patterns import natural_sorted
from fleetlog.errors import UsageError


def test_nodeset_expansion_uses_clustershell_ranges() -> None:
    ids = expand("node/ocean[1-1000]")
    assert len(ids) == 1000
    assert ids[0] == "node/ocean1" and ids[-1] == "node/ocean1000"
    assert expand("vm/guest[1-3,7]") == ["vm/guest1", "vm/guest2", "vm/guest3", "vm/guest7"]


def test_select_by_kind_nodeset_and_glob() -> None:
    existing = ["vm/a1", "vm/a2", "vm/b1", "kvm_host/node3"]
    assert select(None, existing) == sorted(existing)
    assert select("vm", existing) == ["vm/a1", "vm/a2", "vm/b1"]
    assert select("vm/a[1-5]", existing) == ["vm/a1", "vm/a2"]
    assert select("vm/a*", existing) == ["vm/a1", "vm/a2"]


def test_bad_patterns_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="expected KIND/NAME"):
        expand("justaname")
    with pytest.raises(UsageError, match="bad node set"):
        expand("vm/guest[1-")


def test_fold_names_groups_by_kind() -> None:
    assert fold_names(["vm/g1", "vm/g2", "vm/g3", "kvm_host/n1"]) == "kvm_host/n1,vm/g[1-3]"


def test_selection_is_in_natural_order() -> None:
    existing = ["node/n10", "node/n2", "node/n1", "node/n1a"]
    assert select("node", existing) == ["node/n1", "node/n1a", "node/n2", "node/n10"]
    assert select("node/n[1-10]", existing) == ["node/n1", "node/n2", "node/n10"]


# -- folding (fold_nodes): ClusterShell's notation, computed without it -----------------

_NUMBER = st.one_of(
    st.integers(0, 30).map(str),
    st.integers(0, 30).map(lambda n: str(n).zfill(2)),
    st.integers(0, 120).map(lambda n: str(n).zfill(3)),
)
_ONE_NUMBER = st.builds(
    lambda prefix, n: prefix + n, st.sampled_from(["n", "r", "x-", "gw.", ""]), _NUMBER
)
_ANY_NAME = st.one_of(
    _ONE_NUMBER,
    st.builds(lambda n, s: f"r{n}{s}", _NUMBER, st.sampled_from(["a", "-b", ".dc1"])),
    st.builds(lambda p, n, m: f"{p}{n}-n{m}", st.sampled_from(["rack", "r"]), _NUMBER, _NUMBER),
    st.sampled_from(["alpha", "beta", "gw", "0", "00"]),
)

# -- natural order (natural_sorted): natural_key's, without a Python call per id ---------

_ID = st.builds(
    lambda kind, name: f"{kind}/{name}",
    st.sampled_from(["vm", "node", "a1"]),
    st.one_of(
        st.builds(lambda p, n: p + n, st.sampled_from(["r", "n", ""]), _NUMBER),
        st.text(alphabet="rn0123456789٣-", max_size=5),
    ),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(_ID, max_size=40))
def test_natural_sorted_is_sorting_by_the_natural_key(ids: list[str]) -> None:
    """The fast path (``kind/name123``) and the fallback give ``natural_key``'s order:
    leading zeros (``r01``), digits before the number (``a1/r2``, ``r1-2``), an Arabic
    digit, a name without a number, duplicates."""
    assert natural_sorted(ids) == sorted(ids, key=natural_key)


def test_natural_sorted_orders_the_usual_ids_by_number() -> None:
    ids = ["vm/g10", "node/n2", "vm/g", "node/n10", "vm/g9", "node/n1", "vm/g0"]
    assert natural_sorted(ids) == [
        "node/n1",
        "node/n2",
        "node/n10",
        "vm/g",
        "vm/g0",
        "vm/g9",
        "vm/g10",
    ]
    # with a leading zero, the number decides (ties keep their order), not the length
    assert natural_sorted(["node/n2", "node/n01", "node/n1", "node/n002"]) == [
        "node/n01",
        "node/n1",
        "node/n2",
        "node/n002",
    ]


def _clustershell(text: str) -> list[str]:
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet

    return sorted(NodeSet(text, resolver=RESOLVER_NOGROUP))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ANY_NAME, min_size=1, max_size=40))
def test_a_fold_reads_back_as_the_same_names(names: list[str]) -> None:
    assert _clustershell(fold_nodes(names)) == sorted(set(names))


@settings(max_examples=300, deadline=None)
@given(st.lists(_ONE_NUMBER, min_size=1, max_size=40))
def test_names_of_one_number_fold_as_clustershell_writes_them(names: list[str]) -> None:
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet

    assert fold_nodes(names) == str(NodeSet.fromlist(names, resolver=RESOLVER_NOGROUP))


def test_folds_keep_padding_and_fold_two_dimensions() -> None:
    assert fold_nodes([f"n{i:03d}" for i in range(1, 13)]) == "n[001-012]"
    assert fold_nodes(["n1", "n01", "n2"]) == "n[1-2,01]"
    racks = [f"rack{r}-n{n:02d}" for r in range(1, 5) for n in range(1, 33)]
    assert fold_nodes(racks) == "rack[1-4]-n[01-32]"
    assert fold_names([f"node/ocean{i}" for i in range(1, 100_001)]) == "node/ocean[1-100000]"
