"""Inventories: many resources declared in one TOML file (docs/inventory.md).

Loading is two-phase. First everything is validated — TOML syntax, kinds, node sets,
parameters, references, duplicates, conflicts with what the journal already holds — and
every problem is a one-line ``InventoryError`` (exit 2) naming the file and the TOML
table (``examples/exascale.toml: [vm."exa[1-4]_vm1"]: ...``). Only then is anything
appended: an invalid inventory leaves the journal exactly as it was.

Loading twice is idempotent: a resource that already exists with identical parameters
is skipped and reported; one that exists with different parameters is an error (change
it through its machine, not by reloading).

Format (one table per resource or node set of one kind)::

    [defaults.kvm_host]          # params for every kvm_host of this file
    cellinit_ip = "192.168.10.1/22"

    [kvm_host."node[1-8]"]       # a ClusterShell node set: eight resources
    host = "{name}"              # {name}: the resource's name; {index}: 1-based position

    [exascale_cluster.exa]       # kind-specific sugar a machine pack declares (cells, hosts)
    cells = "cell[1-3]"
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetlog import limits, packs
from fleetlog.dsl.spec import ParamSpec
from fleetlog.engine.model.gcpause import no_cycle_collection
from fleetlog.engine.model.kinds import KindRegistry, UnknownKind, did_you_mean
from fleetlog.engine.model.params import ParamError, coerce, resolve
from fleetlog.errors import UsageError
from fleetlog.journal.base import Journal

DEFAULTS_TABLE = "defaults"
_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")

Hook = Callable[..., tuple[dict[str, Any], dict[str, dict[str, Any]]]]


class InventoryError(UsageError):
    """A bad inventory: one line, with the file and the TOML table it is about."""

    exit_code = 2


@dataclass
class Entry:
    """One resource the inventory declares."""

    id: str
    kind: str
    name: str
    table: str  # where it was declared, as TOML: [kind."key"]
    raw: dict[str, Any]
    explicit: set[str] = field(default_factory=set)
    params: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadPlan:
    """What loading would do: create these, skip those (already present, identical)."""

    source: str
    create: list[Entry] = field(default_factory=list)
    skip: list[Entry] = field(default_factory=list)


@dataclass
class LoadResult:
    created: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def table_name(kind: str, key: str | None = None) -> str:
    """``[kind."key"]`` as TOML writes it (quoted, escaped), for messages."""
    if key is None:
        return f"[{_key(kind)}]"
    return f"[{_key(kind)}.{_key(key)}]"


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _quote(key)


def _quote(key: str) -> str:
    """A TOML basic string: control characters as TOML's own escapes (never raw in a
    message), over-long keys cut short."""
    if len(key) > 80:
        key = key[:77] + "..."
    body = key.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _toml_escape(body) + '"'


def _toml_escape(text: str) -> str:
    if not limits.unsafe_chars(text):
        return text
    return "".join(
        (f"\\u{ord(c):04X}" if ord(c) < 0x10000 else f"\\U{ord(c):08X}")
        if limits.unsafe_chars(c)
        else c
        for c in text
    )


def inventory_hooks() -> dict[str, Hook]:
    """Kind-specific expanders the machine packs declare (``Pack.inventory_hooks``), e.g.
    ``exascale_cluster``'s ``cells``/``hosts`` and the EGS rule."""
    hooks: dict[str, Hook] = {}
    for ref in packs.discover().named("inventory_hooks"):
        hooks.update(packs.resolve(ref))
    return hooks


# ---------------------------------------------------------------------------- parsing


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # a byte-order mark is not content
    except FileNotFoundError:
        raise InventoryError(f"{p}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InventoryError(f"{p}: cannot read: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InventoryError(f"{p}: invalid TOML: {exc}") from None


def _expand_names(key: str, where: str) -> list[str]:
    from ClusterShell.NodeSet import NodeSetParseError

    shown = limits.shown(key)
    if not key or "/" in key:
        raise InventoryError(f"{where}: bad resource name {shown} (a name or a node set)")
    unsafe = limits.unsafe_chars(key)
    if unsafe:
        raise InventoryError(
            f"{where}: bad resource name {shown}: {limits.describe(unsafe)} cannot be in a name"
        )
    try:
        names = limits.expand_nodeset(key)
    except limits.InputError as exc:
        raise InventoryError(f"{where}: {exc}") from None
    except (NodeSetParseError, ValueError) as exc:
        raise InventoryError(f"{where}: bad node set {shown}: {exc}") from None
    if not names:
        raise InventoryError(f"{where}: node set {shown} names no resource")
    from fleetlog.engine.ops.resources import first_bad_name

    bad = first_bad_name(names)
    if bad is not None:
        name, problem = bad
        raise InventoryError(f"{where}: bad resource name {limits.shown(name)}: {problem}")
    return names


def _has_braces(value: Any) -> bool:
    return isinstance(value, str) and ("{" in value or "}" in value)


def _fill(value: Any, name: str, index: int, where: str, param: str) -> Any:
    """``{name}`` and ``{index}`` in string values (``{{``/``}}`` for braces)."""
    if isinstance(value, list):
        return [_fill(v, name, index, where, param) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        if m.group(1) == "name":
            return name
        if m.group(1) == "index":
            return str(index)
        raise InventoryError(
            f"{where}: {limits.escape(param)}: unknown placeholder "
            f"{{{limits.escape(m.group(1)[:40])}}} (use {{name}} or {{index}})"
        )

    return _PLACEHOLDER.sub(sub, value)


def entries(doc: Mapping[str, Any], registry: KindRegistry, source: str) -> list[Entry]:
    """Every resource the document declares, with raw (uncoerced) params."""
    defaults: dict[str, dict[str, Any]] = {}
    raw_defaults = doc.get(DEFAULTS_TABLE, {})
    if not isinstance(raw_defaults, dict):
        raise InventoryError(f"{source}: [{DEFAULTS_TABLE}] must be a table of kinds")
    for kind, table in raw_defaults.items():
        where = f"{source}: {table_name(DEFAULTS_TABLE, kind)}"
        _kind(registry, kind, where)
        if not isinstance(table, dict) or any(isinstance(v, dict) for v in table.values()):
            raise InventoryError(f"{where}: expected param = value lines")
        defaults[kind] = dict(table)
    out: list[Entry] = []
    seen: dict[str, str] = {}
    for kind, tables in doc.items():
        if kind == DEFAULTS_TABLE:
            continue
        if not isinstance(tables, dict):
            raise InventoryError(
                f"{source}: {_key(kind)} = ...: expected tables like "
                f"[{_key(kind)}.NAME], not a value"
            )
        _kind(registry, kind, f"{source}: {table_name(kind)}")
        for key, table in tables.items():
            tname = table_name(kind, key)
            where = f"{source}: {tname}"
            if not isinstance(table, dict):
                raise InventoryError(f"{where}: expected a table of parameters")
            nested = [k for k, v in table.items() if isinstance(v, dict)]
            if nested:
                raise InventoryError(
                    f"{where}: {limits.shown(nested[0])} is a table; resource names with "
                    f"dots must be quoted: {table_name(kind, key + '.' + nested[0])}"
                )
            given = {**defaults.get(kind, {}), **table}
            # Only strings with braces and lists can differ from one name to the next
            # (``_fill``); the rest are taken as they are for each of a node set's names.
            varies = {k: isinstance(v, list) or _has_braces(v) for k, v in given.items()}
            for index, name in enumerate(_expand_names(key, where), 1):
                rid = f"{kind}/{name}"
                if rid in seen:
                    raise InventoryError(f"{where}: duplicate resource {rid} (also in {seen[rid]})")
                seen[rid] = tname
                raw = {
                    k: _fill(v, name, index, where, k) if varies[k] else v for k, v in given.items()
                }
                out.append(Entry(rid, kind, name, tname, raw, explicit=set(table)))
    return out


def _kind(registry: KindRegistry, kind: str, where: str) -> None:
    try:
        registry.get(kind)
    except UnknownKind:
        raise InventoryError(
            f"{where}: unknown kind {limits.shown(kind)}"
            + (did_you_mean(kind, registry.names) or f" (kinds: {', '.join(registry.names)})")
        ) from None


# ---------------------------------------------------------------------------- planning


def plan(
    doc: Mapping[str, Any], registry: KindRegistry, journal: Journal | None, source: str
) -> LoadPlan:
    """Validate the whole document against the kinds and the journal; raise on the first
    problem, write nothing."""
    found = entries(doc, registry, source)
    by_id = {e.id: e for e in found}
    existing = _existing(journal, registry, found)
    looked_up: dict[str, Mapping[str, Any] | None] = {}

    def lookup(rid: str) -> Mapping[str, Any] | None:
        if rid in by_id:
            return by_id[rid].raw
        if rid in existing:
            return existing[rid]
        if rid not in looked_up:  # a thousand guests name one host: read it once
            rec = _load(journal, registry, rid)
            looked_up[rid] = rec.params if rec is not None else None
        return looked_up[rid]

    hooks = inventory_hooks()
    derived_from: dict[tuple[str, str], tuple[Any, str]] = {}
    for e in found:
        hook = hooks.get(e.kind)
        if hook is None:
            continue
        where = f"{source}: {e.table}"
        try:
            own, derived = hook(e.name, e.raw, lookup)
        except ValueError as exc:
            raise InventoryError(f"{where}: {exc}") from None
        e.raw = own
        for rid, params in derived.items():
            target = by_id.get(rid)
            if target is None:
                if lookup(rid) is None:
                    raise InventoryError(
                        f"{where}: {rid} is not declared in this inventory nor in the journal"
                    )
                continue  # already in the journal: its params are checked below
            specs = {p.name: p for p in registry.get(target.kind).spec.params}
            for param, value in params.items():
                _derive(target, param, value, e, source, derived_from, specs.get(param))
    for e in found:
        _resolve(e, registry, source)
    refs = {kind: _ref_params(registry, kind) for kind in {e.kind for e in found}}
    for e in found:
        if refs[e.kind]:
            _check_refs(e, refs[e.kind], source, lookup)
    result = LoadPlan(source)
    for e in found:
        held = existing.get(e.id)
        if held is None:
            result.create.append(e)
            continue
        if held != e.params:
            diff = sorted(k for k in set(held) | set(e.params) if held.get(k) != e.params.get(k))
            shown = ", ".join(
                f"{k}={held.get(k)!r} in the journal, {e.params.get(k)!r} here" for k in diff[:3]
            )
            raise InventoryError(
                f"{source}: {e.table}: {e.id} already exists with other parameters ({shown})"
            )
        result.skip.append(e)
    return result


def _derive(
    target: Entry,
    param: str,
    value: Any,
    origin: Entry,
    source: str,
    derived_from: dict[tuple[str, str], tuple[Any, str]],
    spec: ParamSpec | None,
) -> None:
    def same(a: Any, b: Any) -> bool:
        if spec is None:
            return bool(a == b)
        try:
            return bool(coerce(spec, a, target.id) == coerce(spec, b, target.id))
        except ParamError:
            return False  # the mistyped value is reported by _resolve, in its table

    key = (target.id, param)
    if key in derived_from and derived_from[key][0] != value:
        raise InventoryError(
            f"{source}: {origin.table}: {target.id} {param} would be {value!r}, but "
            f"{derived_from[key][1]} makes it {derived_from[key][0]!r}"
        )
    derived_from[key] = (value, origin.table)
    if param in target.explicit and not same(target.raw.get(param), value):
        given = target.raw.get(param)
        raise InventoryError(
            f"{source}: {target.table}: {target.id}: {param} = {given!r} contradicts "
            f"{origin.table}, which sets it to {value!r}; remove {param} or make it agree"
        )
    target.raw[param] = value


def _resolve(e: Entry, registry: KindRegistry, source: str) -> None:
    spec = registry.get(e.kind).spec
    where = f"{source}: {e.table} {e.id}"
    try:
        e.params = resolve(spec.params, e.raw, where)
    except ParamError as exc:
        raise InventoryError(str(exc)) from None


def _ref_params(registry: KindRegistry, kind: str) -> list[ParamSpec]:
    """The params of ``kind`` that name other resources (worked out once per kind)."""
    return [p for p in registry.get(kind).spec.params if p.type in ("ref", "refs")]


def _check_refs(
    e: Entry,
    refs: list[ParamSpec],
    source: str,
    lookup: Callable[[str], Mapping[str, Any] | None],
) -> None:
    for p in refs:
        value = e.params.get(p.name)
        for rid in value if isinstance(value, list) else [value]:
            if isinstance(rid, str) and lookup(rid) is None:
                raise InventoryError(
                    f"{source}: {e.table} {e.id}: {p.name} names {rid!r}: no such resource "
                    "in this inventory or the journal"
                )


#: Above this many of the file's resources in the journal already, their parameters
#: are read in one pass over the journal's ``resource.created`` and ``attributes.set``
#: events rather than one stream each (a reload of 100,000: ~1 s instead of ~25 s).
BULK_READ = 1_000


def _existing(
    journal: Journal | None, registry: KindRegistry, found: list[Entry]
) -> dict[str, dict[str, Any]]:
    """The parameters of the file's resources the journal holds already, by id."""
    if journal is None:
        return {}
    kinds = sorted({e.kind for e in found})
    present = journal.streams_present(e.id for e in found)
    ids = [e.id for e in found if e.id in present]
    if len(ids) > BULK_READ:
        from fleetlog.engine.ops.resources import current_params

        held = current_params(journal, kinds)
        return {rid: held[rid] for rid in ids if rid in held}
    out = {}
    for rid in ids:
        rec = _load(journal, registry, rid)
        if rec is not None:
            out[rid] = rec.params
    return out


def _load(journal: Journal | None, registry: KindRegistry, rid: str) -> Any:
    if journal is None:
        return None
    from fleetlog.engine.model.replay import load_resource

    kind = rid.partition("/")[0]
    if kind not in registry:
        return None
    return load_resource(journal, registry, rid)


# ---------------------------------------------------------------------------- loading


def load(path: str | Path, journal: Journal, registry: KindRegistry) -> LoadResult:
    """Validate ``path`` completely, then create its new resources in file order, in a
    few large transactions (``create_resources``). A load killed part-way leaves whole
    resources only; loading the file again skips them and creates the rest."""
    from fleetlog.engine.ops.resources import create_resources

    source = str(path)
    with no_cycle_collection():
        p = plan(read_toml(path), registry, journal, source)
        created = create_resources(
            journal, registry, [(e.id, e.params) for e in p.create], resolved=True
        )
        return LoadResult(created=created, skipped=[e.id for e in p.skip])
