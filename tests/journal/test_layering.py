"""``journal`` stands alone: it imports only the namespace root (``fleetlog.errors``,
the input bounds of ``fleetlog.limits``, the immutable records of ``fleetlog.frozen``),
never ``dsl``,
``engine`` or a machine pack, and has no import circle. It knows nothing of machines or
states: folding events into resource state is the engine's job."""

from __future__ import annotations

from tests.imports import cycles, imports


def test_journal_imports_only_itself_and_the_root() -> None:
    bad = [
        str(i)
        for i in imports()
        if i.module.startswith("fleetlog.journal")
        and not i.target.startswith("fleetlog.journal")
        and i.target not in ("fleetlog", "fleetlog.errors", "fleetlog.limits", "fleetlog.frozen")
    ]
    assert bad == []


def test_no_circle_in_the_journal() -> None:
    assert cycles("fleetlog.journal") == []
