"""Every fenced ```fsm block in docs/dsl.md is a complete machine that compiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fleetlog import dsl
from fleetlog.dsl.spec import MachineSpec

DOC = Path(__file__).resolve().parents[2] / "docs" / "dsl.md"
BLOCKS = re.findall(r"^```fsm\n(.*?)^```", DOC.read_text(), flags=re.S | re.M)


def test_the_reference_has_examples() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_block_compiles(block: str) -> None:
    dsl.compile_source(block, "docs/dsl.md", plugins={"exascale.setup_wallet"})


def test_blocks_link_together() -> None:
    specs: dict[str, MachineSpec] = {}
    for block in BLOCKS:
        spec, _ = dsl.compile_source(block, "docs/dsl.md")
        specs.setdefault(spec.name, spec)
    assert dsl.link_check({k: specs[k] for k in ("host", "guest")}) == []
