"""Helpers shared by the DSL tests: compile a snippet, find a diagnostic, locate text."""

from __future__ import annotations

import pytest

from fleetlog import dsl
from fleetlog.dsl import Diagnostic, DSLError
from fleetlog.dsl.spec import MachineSpec

PLUGINS = frozenset({"exascale.setup_wallet", "exascale.start_bsw"})


def machine(body: str, name: str = "m") -> str:
    """A machine around ``body`` (which declares its own states)."""
    return f"machine {name} {{\n{body}\n}}\n"


def compile_ok(text: str, plugins: frozenset[str] | None = None) -> MachineSpec:
    spec, _warnings = dsl.compile_source(text, "t.fsm", plugins)
    return spec


def failure(text: str, plugins: frozenset[str] | None = None) -> DSLError:
    with pytest.raises(DSLError) as info:
        dsl.compile_source(text, "t.fsm", plugins)
    return info.value


def diag(text: str, fragment: str, plugins: frozenset[str] | None = None) -> Diagnostic:
    """The one error whose message contains ``fragment``."""
    found = [d for d in failure(text, plugins).diagnostics if fragment in d.message]
    assert len(found) == 1, [d.message for d in failure(text, plugins).diagnostics]
    return found[0]


def where(text: str, needle: str, nth: int = 0) -> tuple[int, int]:
    """1-based (line, col) of the ``nth`` occurrence of ``needle``."""
    index = -1
    for _ in range(nth + 1):
        index = text.index(needle, index + 1)
    line = text.count("\n", 0, index) + 1
    col = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, col


def assert_points_at(d: Diagnostic, text: str, needle: str, nth: int = 0) -> None:
    """``d`` is at ``needle`` and its formatted caret underlines exactly ``needle``."""
    assert (d.line, d.col) == where(text, needle, nth)
    lines = d.format(text).split("\n")
    assert lines[0] == d.headline()
    assert lines[0].startswith(f"t.fsm:{d.line}:{d.col}: ")
    source_line, caret = lines[1], lines[2]
    assert source_line == "    " + text.split("\n")[d.line - 1]
    assert caret.index("^") == 4 + d.col - 1
    assert caret.strip() == "^" * len(needle)
