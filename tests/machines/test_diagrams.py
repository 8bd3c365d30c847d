"""The diagrams in docs/machines/ are those of the live machines: each checked-in SVG is
regenerated from the machine and compared byte for byte (graphviz is deterministic).

Regenerate after changing a machine:
    for k in cell exascale_cluster kvm_host vm; do
        fleetlog graph $k --format svg -o docs/machines/$k.svg; done
"""

from __future__ import annotations

import shutil

import pytest

from engine.graph import render
from engine.loader import load_registry
from tests.machines.conftest import REPO

KINDS = ["cell", "exascale_cluster", "kvm_host", "vm"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_checked_in_svg_is_up_to_date(kind: str) -> None:
    if shutil.which("dot") is None:
        pytest.skip("graphviz's dot is not installed (apt-get install graphviz)")
    spec = load_registry().get(kind).spec
    path = REPO / "docs" / "machines" / f"{kind}.svg"
    live = render(spec, "svg")
    assert isinstance(live, bytes)
    assert path.read_bytes() == live, (
        f"{path} is stale: fleetlog graph {kind} --format svg -o docs/machines/{kind}.svg"
    )


@pytest.mark.parametrize("kind", KINDS)
def test_docs_describe_every_state_and_trigger(kind: str) -> None:
    spec = load_registry().get(kind).spec
    doc = (REPO / "docs" / "machines.md").read_text()
    section = doc.split(f"### `{kind}`", 1)[1].split("\n### ", 1)[0]
    assert f"machines/{kind}.svg" in section
    for t in spec.transitions:
        assert f"`{t.trigger}`" in section, (kind, t.trigger)
    for s in spec.states:
        assert f"`{s.name}`" in section, (kind, s.name)
