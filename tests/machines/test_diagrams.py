"""docs/machines.md documents every shipped kind with its live diagram: each checked-in
SVG is regenerated from the machine and compared byte for byte (graphviz output is
deterministic), and every trigger is named in the kind's section.

Regenerate after changing a machine:
    for k in $(fleetlog machines list --json | jq -r '.[].kind'); do
        fleetlog graph $k --format svg -o docs/machines/$k.svg; done
"""

from __future__ import annotations

import os
import shutil

import pytest

from fleetlog.engine.model import load_registry
from fleetlog.engine.model.graph import render
from tests.machines.conftest import REPO

KINDS = sorted(p.stem for p in (REPO / "machines").glob("*.fsm"))


def _section(kind: str) -> str:
    doc = (REPO / "docs" / "machines.md").read_text()
    assert f"### `{kind}`" in doc, f"docs/machines.md has no section for {kind}"
    return doc.split(f"### `{kind}`", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_is_documented_with_its_triggers(kind: str) -> None:
    spec = load_registry().get(kind).spec
    section = _section(kind)
    assert f"machines/{kind}.svg" in section
    for t in spec.transitions:
        assert f"`{t.trigger}`" in section, t.trigger


@pytest.mark.parametrize("kind", KINDS)
def test_the_checked_in_svg_is_up_to_date(kind: str) -> None:
    if shutil.which("dot") is None and os.environ.get("CI") != "true":
        pytest.skip("graphviz's dot is not installed (apt-get install graphviz; CI has it)")
    spec = load_registry().get(kind).spec
    assert (REPO / "docs" / "machines" / f"{kind}.svg").read_bytes() == render(spec, "svg")
