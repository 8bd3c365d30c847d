"""Machine packs: the one seam through which kinds and everything around them come in.

A pack declares, in one ``Pack`` value registered under the entry-point group
``fleetlog.machines``, everything it contributes: directories of ``.fsm`` files, step
plugin modules, inventory hooks, fake tools for the simulated datacenter, CLI commands
and ingest sources. fleetlog's own kinds arrive the same way (``fleetlog.machines.pack``);
the engine never imports a pack by path.

The declaration names modules as strings (``"package.module"`` or
``"package.module:attribute"``) so that reading every pack's declaration costs no more
than the entry-point scan: a module is imported only when what it holds is needed (the
sim's tools when the sim runs a command, a pack's commands when the CLI starts).

A pack whose entry point cannot be loaded is a ``PackFailure`` naming it: commands on the
kinds of other packs keep working, and the failure is reported instead of hidden. For
compatibility an entry point may also name a plain package: its directory is then the
pack's only machine directory.

This module sits at the namespace root so every layer can read declarations (the
loader, the inventory, the simulator's tool registry, the CLI) without importing one
another.
"""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

#: The entry-point group a pack registers its declaration under.
GROUP = "fleetlog.machines"


@dataclass(frozen=True)
class Pack:
    """What one machine pack contributes.

    ``machines``: directories holding ``*.fsm`` files.
    ``steps``: modules of step plugins; every name in a module's ``__all__`` is the plugin
    ``<last part of the module name>.<name>``, called ``fn(ctx, **args)``.
    ``inventory_hooks``: ``"module:ATTR"`` naming a mapping of kind name to inventory hook.
    ``sim_tools``: modules that register fake tools (``@sim_tool``) when imported.
    ``commands``: ``"module:function"`` called with the typer app to add commands.
    ``ingest_sources``: ``"module:ATTR"`` naming an ingest source (a message format).
    ``listing_formats``: ``"module:ATTR"`` naming a listing format (resources or jobs)
    that ``observe { list … format NAME }`` may use.
    ``observe_sources``: ``"module:ATTR"`` naming a status reader for some kinds
    (``kinds``, ``name``, ``status(record, scope, backend) -> str``) that reconcile asks
    instead of the backend's observe command: a node's power state from its BMC.
    """

    name: str
    machines: tuple[Path, ...] = ()
    steps: tuple[str, ...] = ()
    inventory_hooks: tuple[str, ...] = ()
    sim_tools: tuple[str, ...] = ()
    commands: tuple[str, ...] = ()
    ingest_sources: tuple[str, ...] = ()
    listing_formats: tuple[str, ...] = ()
    observe_sources: tuple[str, ...] = ()
    #: Where it came from: ``name = value`` of its entry point.
    origin: str = field(default="", compare=False)


@dataclass(frozen=True)
class PackFailure:
    """A pack that could not be loaded: named, with why, so its absence is explained."""

    name: str
    origin: str
    error: str

    def __str__(self) -> str:
        return f"machine pack {self.name!r} ({self.origin}) cannot be loaded: {self.error}"


@dataclass(frozen=True)
class Packs:
    """Every pack found, in entry-point order, and the ones that failed."""

    loaded: tuple[Pack, ...]
    failed: tuple[PackFailure, ...]

    def machine_dirs(self) -> list[Path]:
        return [d for p in self.loaded for d in p.machines]

    def named(self, kind: str) -> Iterable[str]:
        """Every ``kind`` reference of every pack (``"steps"``, ``"sim_tools"``, …)."""
        for pack in self.loaded:
            yield from getattr(pack, kind)


_cache: tuple[tuple[str, ...], Packs] | None = None
_lock = threading.Lock()


def discover(*, refresh: bool = False) -> Packs:
    """Every pack registered under ``fleetlog.machines``, read once per import path: the
    distributions a process can see change only when ``sys.path`` does (a test that puts
    a pack on it), and reading entry points costs milliseconds a command need not pay
    twice. ``refresh`` reads them again regardless."""
    global _cache
    key = tuple(sys.path)
    with _lock:
        if _cache is None or refresh or _cache[0] != key:
            _cache = (key, _scan())
        return _cache[1]


def _scan() -> Packs:
    loaded: list[Pack] = []
    failed: list[PackFailure] = []
    for ep in metadata.entry_points(group=GROUP):
        origin = f"{ep.name} = {ep.value}"
        try:
            obj = ep.load()
        except Exception as exc:  # a broken pack must not take the other packs down
            failed.append(PackFailure(ep.name, origin, f"{type(exc).__name__}: {exc}"))
            continue
        if isinstance(obj, Pack):
            loaded.append(_with_origin(obj, origin))
        elif isinstance(obj, ModuleType):
            paths = getattr(obj, "__path__", None) or [os.path.dirname(obj.__file__ or "")]
            loaded.append(Pack(ep.name, machines=tuple(Path(p) for p in paths), origin=origin))
        else:
            failed.append(
                PackFailure(ep.name, origin, f"it names a {type(obj).__name__}, not a Pack")
            )
    return Packs(tuple(loaded), tuple(failed))


def _with_origin(pack: Pack, origin: str) -> Pack:
    from dataclasses import replace

    return replace(pack, origin=origin)


def resolve(reference: str) -> Any:
    """The object ``"module:attribute"`` names (or the module, for ``"module"``)."""
    module_name, _, attr = reference.partition(":")
    module = importlib.import_module(module_name)
    if not attr:
        return module
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj
