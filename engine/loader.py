"""Finding machine definitions and step plugins.

Machines come from three places, in this order: the in-tree ``machines/`` package,
directories listed in ``FLEETLOG_MACHINES`` (``os.pathsep``-separated), and machine packs
registered under the entry-point group ``fleetlog.machines`` (a pack is a package whose
directory holds ``*.fsm`` files). Step plugins come from in-tree ``machines/steps/``
modules (every name in a module's ``__all__``, called ``<module>.<function>``) and from
the entry-point group ``fleetlog.steps``.

A kind defined twice is an error naming both files: silently preferring one would run a
procedure the operator did not read.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import dsl
from dsl import Diagnostic, DSLError
from dsl.spec import MachineSpec
from engine.kinds import Kind, KindRegistry

IN_TREE = Path(__file__).resolve().parent.parent / "machines"


def machine_dirs() -> list[Path]:
    """Every directory that may hold ``*.fsm`` files, de-duplicated, in priority order."""
    dirs: list[Path] = [IN_TREE]
    for entry in os.environ.get("FLEETLOG_MACHINES", "").split(os.pathsep):
        if entry.strip():
            dirs.append(Path(entry).expanduser())
    for ep in _entry_points("fleetlog.machines"):
        try:
            module = ep.load()
        except Exception as exc:  # a broken pack must not take the CLI down
            raise DSLError(
                f"machine pack {ep.name!r} ({ep.value}) cannot be loaded: {exc}",
                diagnostics=[],
            ) from exc
        paths = getattr(module, "__path__", None) or [os.path.dirname(module.__file__ or "")]
        dirs.extend(Path(p) for p in paths)
    seen: set[Path] = set()
    unique: list[Path] = []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(d)
    return unique


def machine_files(dirs: Sequence[Path] | None = None) -> list[Path]:
    files: list[Path] = []
    for d in machine_dirs() if dirs is None else dirs:
        if d.is_dir():
            files.extend(sorted(d.glob("*.fsm")))
    return files


def discover_plugins() -> dict[str, Callable[..., Any]]:
    """Step plugins by dotted name; entry points override nothing in-tree silently."""
    plugins: dict[str, Callable[..., Any]] = {}
    try:
        steps_pkg = importlib.import_module("machines.steps")
    except ModuleNotFoundError:
        steps_pkg = None
    if steps_pkg is not None:
        for info in pkgutil.iter_modules(steps_pkg.__path__):
            mod = importlib.import_module(f"machines.steps.{info.name}")
            for fn_name in getattr(mod, "__all__", ()):
                plugins[f"{info.name}.{fn_name}"] = getattr(mod, fn_name)
    for ep in _entry_points("fleetlog.steps"):
        if ep.name in plugins:
            continue
        plugins[ep.name] = _lazy_plugin(ep)
    return plugins


def _lazy_plugin(ep: metadata.EntryPoint) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return ep.load()(*args, **kwargs)

    call.__name__ = ep.name
    return call


def _entry_points(group: str) -> Iterable[metadata.EntryPoint]:
    return [ep for ep in metadata.entry_points(group=group) if ep.value.split(":")[0] != "machines"]


def compile_files(
    files: Iterable[Path], plugins: Iterable[str]
) -> tuple[dict[str, MachineSpec], list[Diagnostic], list[DSLError]]:
    """Compile every file; collect (specs by kind, warnings, errors) instead of stopping at
    the first bad file, so ``machines check`` reports everything in one run."""
    specs: dict[str, MachineSpec] = {}
    warnings: list[Diagnostic] = []
    errors: list[DSLError] = []
    known = set(plugins)
    for path in files:
        try:
            spec, warns = dsl.compile_file(path, plugins=known)
        except DSLError as exc:
            errors.append(exc)
            continue
        warnings.extend(warns)
        if spec.name in specs:
            errors.append(
                DSLError(
                    f"{path}: kind {spec.name!r} is already defined in {specs[spec.name].filename}",
                    diagnostics=[],
                )
            )
            continue
        specs[spec.name] = spec
    return specs, warnings, errors


def load_registry(extra_files: Iterable[Path] = ()) -> KindRegistry:
    """Load every machine (plus ``extra_files``), fully checked, or raise ``DSLError``."""
    plugins = discover_plugins()
    extra = [Path(f) for f in extra_files]
    extra_resolved = {p.resolve() for p in extra}
    files = [f for f in machine_files() if f.resolve() not in extra_resolved] + extra
    specs, _warnings, errors = compile_files(files, plugins)
    if errors:
        raise errors[0] if len(errors) == 1 else DSLError.merge(errors)
    link = [d for d in dsl.link_check(specs) if d.severity == "error"]
    if link:
        raise DSLError.from_diagnostics(
            link, sources={s.filename: s.source for s in specs.values()}
        )
    return KindRegistry((Kind(s) for s in specs.values()), plugins)
