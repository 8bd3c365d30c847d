"""``dsl`` stands alone: importing it pulls in neither ``journal`` nor ``engine``."""

from __future__ import annotations

import subprocess
import sys


def test_dsl_imports_neither_journal_nor_engine() -> None:
    code = (
        "import sys, dsl; dsl.compile_source('machine m { initial state a }'); "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('journal', 'engine')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_public_surface() -> None:
    from fleetlog import dsl

    assert set(dsl.__all__) >= {
        "compile_source",
        "compile_file",
        "link_check",
        "DSLError",
        "Diagnostic",
        "evaluate",
        "render",
        "placeholders",
    }
    assert all(hasattr(dsl, name) for name in dsl.__all__)
