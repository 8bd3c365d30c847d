"""The engine's layers import one way: cli → ops → runtime → model, with backends used
by runtime and above; nothing imports a machine pack; no circle anywhere in the engine,
not even one hidden by an import inside a function."""

from __future__ import annotations

import pytest

from tests.imports import Import, cycles, imports, layer_of

ENGINE = "fleetlog.engine"
#: What each layer may import, besides itself (the namespace root is always allowed).
ALLOWED = {
    "fleetlog.engine.model": {"fleetlog.dsl", "fleetlog.journal"},
    "fleetlog.engine.backends": {"fleetlog.journal"},
    "fleetlog.engine.runtime": {
        "fleetlog.dsl",
        "fleetlog.journal",
        "fleetlog.engine.model",
        "fleetlog.engine.backends",
    },
    "fleetlog.engine.ops": {
        "fleetlog.dsl",
        "fleetlog.journal",
        "fleetlog.engine.model",
        "fleetlog.engine.backends",
        "fleetlog.engine.runtime",
    },
    "fleetlog.engine.cli": {
        "fleetlog.dsl",
        "fleetlog.journal",
        "fleetlog.engine.model",
        "fleetlog.engine.backends",
        "fleetlog.engine.runtime",
        "fleetlog.engine.ops",
    },
}
PARTS = [
    *ALLOWED,
    "fleetlog.dsl",
    "fleetlog.journal",
    "fleetlog.machines",
    "fleetlog.engine",
    "fleetlog",
]


def _violations() -> list[str]:
    bad = []
    for imp in imports():
        layer = layer_of(imp.module, list(ALLOWED))
        if layer is None:
            continue
        target = layer_of(imp.target, PARTS)
        if target in (layer, "fleetlog") or target in ALLOWED[layer]:
            continue
        bad.append(f"{imp}: {layer} may not import {target}")
    return bad


def test_layers_import_downward_only() -> None:
    assert _violations() == []


def test_the_engine_package_itself_imports_nothing_eagerly() -> None:
    """``fleetlog.engine``'s face is lazy: every ``fleetlog.engine.*`` import runs it,
    and a fake tool on an SSH lab host runs with only the standard library."""
    assert [str(i) for i in imports() if i.module == ENGINE] == []


def test_no_circle_in_the_engine() -> None:
    assert cycles(ENGINE) == []


def test_nothing_outside_the_pack_imports_the_pack() -> None:
    bad = [
        str(i)
        for i in imports()
        if i.target.startswith("fleetlog.machines") and not i.module.startswith("fleetlog.machines")
    ]
    assert bad == []


@pytest.mark.parametrize(
    ("module", "target"),
    [
        ("fleetlog.engine.model.replay", "fleetlog.engine.runtime.runner"),
        ("fleetlog.engine.runtime.steps", "fleetlog.engine.ops.fanout"),
        ("fleetlog.engine.ops.worker", "fleetlog.engine.cli.session"),
        ("fleetlog.engine.backends.sim.world", "fleetlog.engine.model.kinds"),
    ],
)
def test_the_check_sees_an_upward_import(module: str, target: str) -> None:
    """The rule itself: each of these would be refused (so the test above can fail)."""
    layer = layer_of(module, list(ALLOWED))
    assert layer is not None
    assert layer_of(target, PARTS) not in ALLOWED[layer] | {layer}


def test_the_check_sees_a_circle_through_a_function_body() -> None:
    edges = [
        Import("fleetlog.engine.runtime.runner", "fleetlog.engine.runtime.ensure", 3),
        Import("fleetlog.engine.runtime.ensure", "fleetlog.engine.runtime.undo", 5),
        Import("fleetlog.engine.runtime.undo", "fleetlog.engine.runtime.runner", 40),
        Import("fleetlog.engine.runtime.runner", "fleetlog.engine.runtime.task", 4),
    ]
    assert cycles(ENGINE, edges) == [
        [
            "fleetlog.engine.runtime.ensure",
            "fleetlog.engine.runtime.runner",
            "fleetlog.engine.runtime.undo",
        ]
    ]
