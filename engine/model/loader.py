"""Finding machine definitions and step plugins.

Machines come from the machine packs (``fleetlog.packs``: the built-in pack and any
installed with pip), then from directories listed in ``FLEETLOG_MACHINES``
(``os.pathsep``-separated). Step plugins come from the packs' ``steps`` modules (every
name in a module's ``__all__``, called ``<module>.<function>``) and from the entry-point
group ``fleetlog.steps``.

A kind defined twice is an error naming both files: silently preferring one would run a
procedure the operator did not read. A pack that cannot be loaded, or whose files do not
compile, leaves the kinds of every other pack usable: its kinds are missing, and asking
for one says which pack failed and why (``KindRegistry.broken``). The operator's own
``FLEETLOG_MACHINES`` files are held to the strict rule: any error stops the command.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from fleetlog import dsl, packs
from fleetlog.dsl import Diagnostic, DSLError
from fleetlog.dsl import cache as spec_cache
from fleetlog.dsl.spec import MachineSpec
from fleetlog.engine.model.kinds import Kind, KindRegistry
from fleetlog.engine.model.listing import formats as listing_formats


def _env_dirs() -> list[Path]:
    return [
        Path(entry).expanduser()
        for entry in os.environ.get("FLEETLOG_MACHINES", "").split(os.pathsep)
        if entry.strip()
    ]


def _unique(dirs: Iterable[Path]) -> list[Path]:
    seen: set[Path] = set()
    unique: list[Path] = []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.add(r)
            unique.append(d)
    return unique


def machine_dirs() -> list[Path]:
    """Every directory that may hold ``*.fsm`` files, de-duplicated, in priority order."""
    return _unique([*packs.discover().machine_dirs(), *_env_dirs()])


def machine_files(dirs: Sequence[Path] | None = None) -> list[Path]:
    files: list[Path] = []
    for d in machine_dirs() if dirs is None else dirs:
        if d.is_dir():
            files.extend(sorted(d.glob("*.fsm")))
    return files


def discover_plugins() -> dict[str, Callable[..., Any]]:
    """Step plugins by dotted name; entry points override nothing a pack declared."""
    plugins: dict[str, Callable[..., Any]] = {}
    for module_name in packs.discover().named("steps"):
        mod = importlib.import_module(module_name)
        short = module_name.rpartition(".")[2]
        for fn_name in getattr(mod, "__all__", ()):
            plugins[f"{short}.{fn_name}"] = getattr(mod, fn_name)
    for ep in packs.entry_points("fleetlog.steps"):
        if ep.name in plugins:
            continue
        plugins[ep.name] = _lazy_plugin(ep)
    return plugins


def _lazy_plugin(ep: packs.EntryPoint) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        return ep.load()(*args, **kwargs)

    call.__name__ = ep.name
    return call


def compile_files(
    files: Iterable[Path], plugins: Iterable[str], formats: Iterable[str] | None = None
) -> tuple[dict[str, MachineSpec], list[Diagnostic], list[DSLError]]:
    """Compile every file; collect (specs by kind, warnings, errors) instead of stopping at
    the first bad file, so ``machines check`` reports everything in one run."""
    specs: dict[str, MachineSpec] = {}
    warnings: list[Diagnostic] = []
    errors: list[DSLError] = []
    known = set(plugins)
    listing = set(listing_formats() if formats is None else formats)
    for path in files:
        try:
            spec, warns = spec_cache.compile_file(path, plugins=known, formats=listing)
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
    """Load every machine (plus ``extra_files``), fully checked.

    Each pack's files are compiled on their own; a pack that fails to load, to compile
    or to link is left out whole and named in ``registry.broken``. An error in the
    operator's own files (``FLEETLOG_MACHINES``, ``extra_files``) raises ``DSLError``."""
    plugins = discover_plugins()
    found = packs.discover()
    broken: dict[str, str] = {f.name: str(f) for f in found.failed}
    extra = [Path(f) for f in extra_files]
    taken = {p.resolve() for p in extra}
    by_pack: dict[str, dict[str, MachineSpec]] = {}
    defined: dict[str, MachineSpec] = {}
    for pack in found.loaded:
        files = [f for f in machine_files(pack.machines) if f.resolve() not in taken]
        taken.update(f.resolve() for f in files)
        pack_specs, _warnings, errors = compile_files(files, plugins)
        clash = sorted(set(pack_specs) & set(defined))
        if errors:
            broken[pack.name] = _one_line(pack.name, errors[0].format(), len(errors))
        elif clash:
            broken[pack.name] = (
                f"machine pack {pack.name!r}: kind {clash[0]!r} is already defined in "
                f"{defined[clash[0]].filename}"
            )
        else:
            by_pack[pack.name] = pack_specs
            defined.update(pack_specs)
    own = [f for f in machine_files(_env_dirs()) if f.resolve() not in taken] + extra
    own_specs, _warnings, errors = compile_files(own, plugins)
    for name, spec in own_specs.items():
        if name in defined:
            errors.append(
                DSLError(
                    f"{spec.filename}: kind {name!r} is already defined in "
                    f"{defined[name].filename}",
                    diagnostics=[],
                )
            )
    if errors:
        raise errors[0] if len(errors) == 1 else DSLError.merge(errors)
    while True:  # link everything together; a pack with a link error is left out whole
        specs = {n: s for pack_specs in by_pack.values() for n, s in pack_specs.items()}
        specs.update(own_specs)
        link = [d for d in dsl.link_check(specs) if d.severity == "error"]
        culprit = next(
            (
                (name, d)
                for d in link
                for name, pack_specs in by_pack.items()
                if any(s.filename == d.file for s in pack_specs.values())
            ),
            None,
        )
        if culprit is None:
            break
        name, diag = culprit
        broken[name] = _one_line(name, diag.headline(), 1)
        del by_pack[name]
    if link:
        raise DSLError.from_diagnostics(
            link, sources={s.filename: s.source for s in specs.values()}
        )
    return KindRegistry((Kind(s) for s in specs.values()), plugins, broken=broken)


def _one_line(pack: str, problem: str, count: int) -> str:
    first = problem.strip().splitlines()[0] if problem.strip() else "it does not compile"
    more = f" (and {count - 1} more)" if count > 1 else ""
    return f"machine pack {pack!r} is broken: {first}{more}"
