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
import importlib.machinery
import os
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
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
_points: tuple[tuple[str, ...], tuple[EntryPoint, ...] | None] | None = None
_points_lock = threading.Lock()


def discover(*, refresh: bool = False) -> Packs:
    """Every pack registered under ``fleetlog.machines``, read once per import path: the
    distributions a process can see change only when ``sys.path`` does (a test that puts
    a pack on it), and reading entry points costs milliseconds a command need not pay
    twice. ``refresh`` reads them again regardless."""
    global _cache
    key = tuple(sys.path)
    with _lock:
        if _cache is None or refresh or _cache[0] != key:
            _cache = (key, _scan(refresh))
        return _cache[1]


class EntryPoint:
    """One entry point, ``name = value`` in ``group``, as ``importlib.metadata`` has it."""

    __slots__ = ("group", "name", "value")

    def __init__(self, name: str, value: str, group: str) -> None:
        self.name = name
        self.value = value
        self.group = group

    def __repr__(self) -> str:
        return f"EntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r})"

    def load(self) -> Any:
        """What ``value`` names: the module, or an attribute of it (``module:attr``)."""
        module, colon, attr = self.value.partition(":")
        if not module or (colon and not attr) or not _PLAIN.issuperset(module + attr):
            # Spaces, extras, other letters, or a value it refuses: importlib.metadata
            # reads those (and raises its own error for what it cannot read).
            from importlib import metadata

            return metadata.EntryPoint(self.name, self.value, self.group).load()
        obj: Any = importlib.import_module(module)
        for part in filter(None, attr.split(".")):
            obj = getattr(obj, part)
        return obj


#: The characters of a plain ``module:attr``, which ``importlib.metadata`` reads the same.
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")


def entry_points(group: str, *, refresh: bool = False) -> tuple[EntryPoint, ...]:
    """The entry points of ``group``, as ``importlib.metadata.entry_points(group=...)``
    finds them. Every group comes from one reading of the installed distributions, kept
    as ``discover`` keeps the packs (per import path): loading the kinds asks for two
    groups (the packs and the step plugins), and each reading costs milliseconds."""
    global _points
    key = tuple(sys.path)
    with _points_lock:
        if _points is None or refresh or _points[0] != key:
            _points = (key, _read_entry_points())
        found = _points[1]
    if found is None:
        from importlib import metadata

        chosen = metadata.entry_points(group=group)
        return tuple(EntryPoint(ep.name, ep.value, ep.group) for ep in chosen)
    return tuple(ep for ep in found if ep.group == group)


_METADATA_DIRS = (".dist-info", ".egg-info")


def _read_entry_points() -> tuple[EntryPoint, ...] | None:
    """Every entry point of every distribution on ``sys.path``, in the order and with the
    values ``importlib.metadata.entry_points()`` gives, read the way its path finder
    reads them: the ``*.dist-info`` and ``*.egg-info`` directories of each directory on
    the path, the first distribution of each normalised name, its ``entry_points.txt``.

    Read here because importing ``importlib.metadata`` (email, zipfile, csv,
    importlib.resources) costs a tenth of a short command's start-up, and every command
    reads the packs. None when the path holds something only ``importlib.metadata``
    reads (a zip or an egg, another finder of distributions, a name it would read from
    the metadata, a line it would refuse): the caller then asks it."""
    finders = [f for f in sys.meta_path if getattr(f, "find_distributions", None) is not None]
    if finders != [importlib.machinery.PathFinder]:
        return None
    seen: set[str] = set()
    found: list[EntryPoint] = []
    for entry in sys.path:
        if not isinstance(entry, str) or entry.lower().endswith(".egg"):
            return None
        root = entry or "."
        try:
            children = os.listdir(root)
        except OSError:
            if os.path.exists(root):  # a zip, or a file importlib.metadata would try as one
                return None
            continue
        # Grouped by normalised name within one directory, as its lookup table is.
        by_name: dict[str, list[str]] = {}
        for child in children:
            low = child.lower()
            if low.endswith(_METADATA_DIRS):
                name = _normalize(low.rpartition(".")[0].partition("-")[0])
                by_name.setdefault(name, []).append(child)
        for child in (c for same in by_name.values() for c in same):
            stem, ext = os.path.splitext(child)
            if ext not in _METADATA_DIRS:  # named by its METADATA then, not its directory
                return None
            name = _normalize(stem.partition("-")[0])
            if name in seen:
                continue
            seen.add(name)
            points = _parse_entry_points(os.path.join(root, child, "entry_points.txt"))
            if points is None:
                return None
            found.extend(points)
    return tuple(found)


def _normalize(name: str) -> str:
    """``importlib.metadata.Prepared.normalize`` (PEP 503, with underscores): each run
    of ``-_.`` becomes one ``_``."""
    name = name.translate(_SEPARATORS)
    while "__" in name:
        name = name.replace("__", "_")
    return name.lower()


_SEPARATORS = str.maketrans("-.", "__")


def _parse_entry_points(path: str) -> list[EntryPoint] | None:
    """The entry points ``path`` declares (none when it cannot be read, as
    ``importlib.metadata`` has it), or None for a line it would refuse."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError):
        return []
    points: list[EntryPoint] = []
    group: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            group = line.strip("[]")
        elif group is not None:
            name, equals, value = line.partition("=")
            if not equals:
                return None
            points.append(EntryPoint(name.strip(), value.strip(), group))
    return points


def _scan(refresh: bool = False) -> Packs:
    loaded: list[Pack] = []
    failed: list[PackFailure] = []
    for ep in entry_points(GROUP, refresh=refresh):
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
