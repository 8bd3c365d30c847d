"""``dsl`` stands alone: it imports only the namespace root (``fleetlog.errors``, the
input bounds of ``fleetlog.limits``, the immutable records of ``fleetlog.frozen``), never
``journal``, ``engine`` or a machine pack, and has no import circle."""

from __future__ import annotations

import subprocess
import sys

from tests.imports import cycles, imports


def test_dsl_imports_neither_journal_nor_engine() -> None:
    code = (
        "import sys; from fleetlog import dsl; "
        "dsl.compile_source('machine m { initial state a }'); "
        "print(sorted(m for m in sys.modules if m.startswith(('fleetlog.journal', "
        "'fleetlog.engine', 'fleetlog.machines'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_dsl_imports_only_itself_and_the_root() -> None:
    bad = [
        str(i)
        for i in imports()
        if i.module.startswith("fleetlog.dsl")
        and not i.target.startswith("fleetlog.dsl")
        and i.target not in ("fleetlog", "fleetlog.errors", "fleetlog.limits", "fleetlog.frozen")
    ]
    assert bad == []


def test_no_circle_in_the_dsl() -> None:
    assert cycles("fleetlog.dsl") == []


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
