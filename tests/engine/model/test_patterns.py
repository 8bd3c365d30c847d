from __future__ import annotations

import pytest

from fleetlog.engine.model import expand, fold_names, select
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
