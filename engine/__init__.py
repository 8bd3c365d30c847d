"""The engine: kinds and records (``model``), running transitions (``runtime``), fleet
operations (``ops``), where steps run (``backends``) and the command line (``cli``).

Imports go one way, cli → ops → runtime → model, each layer through the public face of
the one below (its ``__init__``). This face names what a program embedding fleetlog
needs most; each is imported on first use, so ``import fleetlog.engine`` (which every
``fleetlog.engine.*`` import runs) costs nothing: a fake tool of the simulated datacenter
runs with only the standard library.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fleetlog.engine.backends import Backend, open_backend
    from fleetlog.engine.model import KindRegistry, load_registry, load_resource, replay_all
    from fleetlog.engine.ops import create_resource
    from fleetlog.engine.runtime import Outcome, Runner

_FACES = {
    "Backend": "fleetlog.engine.backends",
    "open_backend": "fleetlog.engine.backends",
    "KindRegistry": "fleetlog.engine.model",
    "load_registry": "fleetlog.engine.model",
    "load_resource": "fleetlog.engine.model",
    "replay_all": "fleetlog.engine.model",
    "create_resource": "fleetlog.engine.ops",
    "Outcome": "fleetlog.engine.runtime",
    "Runner": "fleetlog.engine.runtime",
}

__all__ = [
    "Backend",
    "KindRegistry",
    "Outcome",
    "Runner",
    "create_resource",
    "load_registry",
    "load_resource",
    "open_backend",
    "replay_all",
]


def __getattr__(name: str) -> Any:
    module = _FACES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
