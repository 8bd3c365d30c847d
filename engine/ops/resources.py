"""Creating resources: validated params, then one ``resource.created`` event.

Validation happens before anything is written (Ironic's order of effects): a bad
parameter leaves the journal exactly as it was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleetlog import limits
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.params import resolve
from fleetlog.engine.model.records import Resource, split_id
from fleetlog.engine.model.replay import apply
from fleetlog.errors import UsageError
from fleetlog.journal.base import ConcurrencyConflict, Journal, NewEvent


class ResourceExists(UsageError):
    msg_fmt = "%(resource)s already exists (version %(version)s)"


# Characters ClusterShell's NodeSet reads as operators, and fnmatch's wildcards: a name
# holding one could be created but never addressed by a pattern again.
_PATTERN_CHARS = frozenset("[],!&^@*?")


def name_problem(name: str) -> str | None:
    """Why a resource could not have this name, or None if it could: control characters
    and length (``fleetlog.limits``), or a character a pattern could not address it by."""
    problem = limits.name_problem(name)
    if problem is not None:
        return problem
    # The usual name (printable, no space, no pattern character) is told in C: an
    # inventory checks every one of 100,000 names.
    plain = name.isprintable() and " " not in name and _PATTERN_CHARS.isdisjoint(name)
    bad = [] if plain else sorted({c for c in name if _bad_in_name(c)})
    if bad:
        return f"{', '.join(repr(c) for c in bad)} cannot be in a name"
    if name.startswith("-"):
        return "a name cannot start with '-'"
    return None


def first_bad_name(names: Sequence[str]) -> tuple[str, str] | None:
    """The first of ``names`` a resource could not have, with ``name_problem``'s reason;
    None when every one could. The usual names (printable ASCII, none a pattern
    character, space or leading '-', none too long) are told by a few checks in C over
    all of them: an inventory of 100,000 names otherwise paid two calls per name."""
    text = "\n".join(names)  # no name holds a line break unless a check below fails
    if (
        text.isascii()
        and "".join(names).isprintable()
        and " " not in text
        and _PATTERN_CHARS.isdisjoint(text)
        and not text.startswith("-")
        and "\n-" not in text
        and max(map(len, names), default=0) <= limits.MAX_NAME_BYTES
    ):
        return None
    for name in names:
        problem = name_problem(name)
        if problem is not None:
            return name, problem
    return None


def _bad_in_name(c: str) -> bool:
    return c in _PATTERN_CHARS or c.isspace() or not c.isprintable()


def check_new_name(resource_id: str) -> None:
    """Refuse, before anything is written, a name that a pattern could not address."""
    kind, name = split_id(resource_id)
    problem = limits.name_problem(name) or limits.name_problem(kind)
    if problem is not None:
        raise limits.InputError(f"bad resource name {limits.shown(resource_id)}: {problem}")
    problem = name_problem(name)
    if problem is not None:
        raise UsageError(
            f"bad resource name {resource_id!r}: {problem}, since patterns read it as an "
            "operator (KIND/NODESET such as vm/g[1-3] names several resources: create "
            "those with `fleetlog inventory load`)"
        )


def created_event(registry: KindRegistry, resource_id: str, given: Mapping[str, Any]) -> NewEvent:
    check_new_name(resource_id)
    kind_name, _name = split_id(resource_id)
    kind = registry.get(kind_name)
    return _created(registry, kind_name, resolve(kind.spec.params, given, resource_id))


def _created(
    registry: KindRegistry,
    kind_name: str,
    params: dict[str, Any],
    shapes: dict[str, tuple[str, str]] | None = None,
) -> NewEvent:
    """The ``resource.created`` event. ``shapes``: each kind's (initial state,
    definition hash), filled as kinds are met, for a caller creating many resources
    (``spec.initial`` searches the states on every call)."""
    shape = None if shapes is None else shapes.get(kind_name)
    if shape is None:
        spec = registry.get(kind_name).spec
        shape = (spec.initial, spec.definition_hash)
        if shapes is not None:
            shapes[kind_name] = shape
    return ev.new_event(
        ev.ResourceCreated(kind=kind_name, params=params, state=shape[0], definition_hash=shape[1])
    )


class MissingReference(UsageError):
    msg_fmt = (
        "%(resource)s: %(param)s names %(target)r: no such resource in the journal (add "
        "it first, or load both from one inventory)"
    )


def _exists(journal: Journal, resource_id: str) -> bool:
    return any(e.type == ev.RESOURCE_CREATED for e in journal.read_stream(resource_id))


def _check_refs(
    journal: Journal,
    registry: KindRegistry,
    resource_id: str,
    event: NewEvent,
    known: dict[str, bool],
) -> None:
    """Every ``ref`` param of ``event`` names a resource in the journal (``known``
    remembers the answers: a thousand guests on one host ask once)."""
    spec = registry.get(split_id(resource_id)[0]).spec
    for p in spec.params:
        if p.type not in ("ref", "refs"):
            continue
        value = event.payload["params"].get(p.name)
        for target in value if isinstance(value, list) else [value]:
            if not isinstance(target, str):
                continue
            if target not in known:
                known[target] = _exists(journal, target)
            if not known[target]:
                raise MissingReference(resource=resource_id, param=p.name, target=target)


def create_resource(
    journal: Journal,
    registry: KindRegistry,
    resource_id: str,
    given: Mapping[str, Any],
    *,
    refs_must_exist: bool = False,
) -> Resource:
    """Journal ``resource.created``. ``refs_must_exist``: every ``ref`` param must name a
    resource already in the journal (``fleetlog add``, where a typo would otherwise
    surface only when a transition runs); an inventory checks its refs against the file
    and the journal itself, since it may create a host after the guests that name it."""
    event = created_event(registry, resource_id, given)
    if refs_must_exist:
        _check_refs(journal, registry, resource_id, event, {})
    # A stream may hold history without a resource: drift findings about an orphan the
    # backend reported. Adopting the orphan continues that stream.
    expected = 0
    prior = journal.read_stream(resource_id)
    if prior and not any(e.type == ev.RESOURCE_CREATED for e in prior):
        expected = prior[-1].version
    try:
        recorded = journal.append(resource_id, [event], expected_version=expected)
    except ConcurrencyConflict as exc:
        raise ResourceExists(resource=resource_id, version=exc.fields.get("actual")) from None
    return apply(None, recorded[0], registry)


#: Appends per ``append_many`` call of ``create_resources``: SQLite writes each call in
#: one transaction (``SQLiteJournal._write_many``), PostgreSQL in transactions of its
#: group commit's batch size; and this bounds what is held in memory at once.
CREATE_CHUNK = 2_048


def create_resources(
    journal: Journal,
    registry: KindRegistry,
    wanted: Sequence[tuple[str, Mapping[str, Any]]],
    *,
    refs_must_exist: bool = False,
    resolved: bool = False,
) -> list[str]:
    """``create_resource`` for many resources at once (``inventory load``, ``add`` of a
    node set): every event is built and checked first, so a bad one writes nothing; then
    they are appended in a few large transactions (``Journal.append_many``), each
    ``resource.created`` with the expected version its stream must still be at (0, or
    an orphan's last version), as one by one. Returns the ids created, in order.

    ``resolved``: the caller has checked every name and resolved every parameter set
    (``model.params.resolve``) itself, as an inventory does in its one validation pass;
    they are journaled as given.

    ``ResourceExists`` names one that exists already, before anything is written; or
    one another writer created meanwhile, after the rest were written (each append is
    all-or-nothing and independent, as is a run killed part-way: what was committed
    stays, and loading again creates only what is missing).
    """
    known: dict[str, bool] = {}
    shapes: dict[str, tuple[str, str]] = {}
    events: list[tuple[str, NewEvent]] = []
    for resource_id, given in wanted:
        if resolved:
            event = _created(registry, split_id(resource_id)[0], dict(given), shapes)
        else:
            event = created_event(registry, resource_id, given)
        if refs_must_exist:
            _check_refs(journal, registry, resource_id, event, known)
        events.append((resource_id, event))
    expected = _expected_versions(journal, [rid for rid, _ in events])
    for start in range(0, len(events), CREATE_CHUNK):
        chunk = events[start : start + CREATE_CHUNK]
        try:
            journal.append_many(
                [(rid, [event]) for rid, event in chunk],
                expected_versions=[expected[rid] for rid, _ in chunk],
                returning=False,
            )
        except ConcurrencyConflict as exc:
            raise ResourceExists(
                resource=exc.fields.get("stream"), version=exc.fields.get("actual")
            ) from None
    return [rid for rid, _ in events]


def _expected_versions(journal: Journal, ids: Sequence[str]) -> dict[str, int]:
    """The version each new resource's stream is at: 0 when there is none (the journal
    is asked which exist in a few batched queries), else the last version of an
    orphan's history; a stream holding a ``resource.created`` already is
    ``ResourceExists``."""
    present = journal.streams_present(ids)
    expected = dict.fromkeys(ids, 0)
    for rid in ids:
        if rid in present:
            prior = journal.read_stream(rid)
            if any(e.type == ev.RESOURCE_CREATED for e in prior):
                raise ResourceExists(resource=rid, version=prior[-1].version)
            expected[rid] = prior[-1].version if prior else 0
    return expected


def current_params(journal: Journal, kinds: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The parameters of every resource of ``kinds``, by id, in one pass over the only
    events that set them (``resource.created``, ``attributes.set``), folded as replay
    folds them. For comparing many resources' parameters at once (an inventory loaded
    again): one read per resource would cost a query and a fold each."""
    from fleetlog.journal.appender import loads_payload  # json.loads, faster on stored text

    prefixes = tuple(f"{k}/" for k in kinds)
    held: dict[str, dict[str, Any]] = {}
    rows = journal.read_all_rows(
        types=(ev.RESOURCE_CREATED, ev.ATTRIBUTES_SET),
        columns=("seq", "stream", "type", "payload"),
    )
    for _seq, stream, type_, text in rows:
        if not stream.startswith(prefixes):
            continue
        payload = loads_payload(text)
        if type_ == ev.RESOURCE_CREATED:
            held.setdefault(stream, dict(payload.get("params") or {}))
        elif stream in held and isinstance(payload.get("values"), dict):
            held[stream].update(payload["values"])
    return held
