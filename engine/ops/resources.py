"""Creating resources: validated params, then one ``resource.created`` event.

Validation happens before anything is written (Ironic's order of effects): a bad
parameter leaves the journal exactly as it was.
"""

from __future__ import annotations

from collections.abc import Mapping
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
    bad = sorted({c for c in name if c in _PATTERN_CHARS or c.isspace() or not c.isprintable()})
    if bad:
        return f"{', '.join(repr(c) for c in bad)} cannot be in a name"
    if name.startswith("-"):
        return "a name cannot start with '-'"
    return None


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
    params = resolve(kind.spec.params, given, resource_id)
    return ev.new_event(
        ev.ResourceCreated(
            kind=kind_name,
            params=params,
            state=kind.spec.initial,
            definition_hash=kind.spec.definition_hash,
        )
    )


class MissingReference(UsageError):
    msg_fmt = (
        "%(resource)s: %(param)s names %(target)r: no such resource in the journal (add "
        "it first, or load both from one inventory)"
    )


def _exists(journal: Journal, resource_id: str) -> bool:
    return any(e.type == ev.RESOURCE_CREATED for e in journal.read_stream(resource_id))


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
        spec = registry.get(split_id(resource_id)[0]).spec
        for p in spec.params:
            value = event.payload["params"].get(p.name)
            if p.type not in ("ref", "refs"):
                continue
            for target in value if isinstance(value, list) else [value]:
                if isinstance(target, str) and not _exists(journal, target):
                    raise MissingReference(resource=resource_id, param=p.name, target=target)
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
