"""Building a twin: the world a set of resources implies, each kind's pack saying what
its resources look like there (``@sim_seeder``).

The engine knows no vendor: it hands every resource, with its parameters and its state,
to the seeders its kind's pack registered, which fill in the hosts (a KVM host and its
guests, a cell and its services, a Ganeti master and its instances). Seeders only add
to the state of a host (``seeding.host(name)`` creates it empty), so the order in which
resources are seeded does not matter. A resource whose kind has no seeder still gets its
host, so a step on it reaches a host that exists and answers.

Seeding can also be incremental (a world that follows its journal, ``ops.twin``): the
seeders then start from the hosts' current states (``existing``) and look up the
resources seeded before through ``lookup``, so only the new resources are handed over.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from fleetlog.engine.backends.sim.registry import SeedResource, seeders_for

#: A host's state as the world holds it now (None: no such host), for incremental seeding.
ExistingHost = Callable[[str], dict[str, Any] | None]


class ResourceLookup(Protocol):
    """The resources seeded before (the journal's), for seeders that read another
    resource (a guest's host, an instance's cluster, the other node of a pair)."""

    def resource(self, rid: str) -> SeedResource | None: ...

    def resources(self, kind: str) -> list[SeedResource]: ...


@dataclass
class WorldSeeding:
    """The hosts of the twin being built, in memory until ``World.declare`` writes them."""

    resources_by_id: dict[str, SeedResource]
    states: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: Pseudo-hosts (shared volumes: ``gluster:volspoms1``) the tools read but no
    #: command reaches: written like hosts.
    pseudo: set[str] = field(default_factory=set)
    #: What the twin could not reproduce (a resource seeded as shipped), for the operator.
    notes: list[str] = field(default_factory=list)
    existing: ExistingHost | None = None
    lookup: ResourceLookup | None = None

    def host(self, name: str) -> dict[str, Any]:
        """The state of host ``name`` (the world's, when it has it), else created
        empty: the host now exists."""
        if name not in self.states and self.existing is not None:
            found = self.existing(name)
            if found is not None:
                self.states[name] = found
        return self.states.setdefault(name, {})

    def has_host(self, name: str) -> bool:
        return name in self.states or (
            self.existing is not None and self.existing(name) is not None
        )

    def shared(self, name: str) -> dict[str, Any]:
        """A shared volume's pseudo-host (``nfs:HA-data``)."""
        self.pseudo.add(name)
        return self.host(name)

    def resource(self, rid: str) -> SeedResource | None:
        found = self.resources_by_id.get(rid)
        if found is None and self.lookup is not None:
            found = self.lookup.resource(rid)
        return found

    def resources(self, kind: str) -> list[SeedResource]:
        found = {r.id: r for r in self.lookup.resources(kind)} if self.lookup else {}
        found.update((r.id, r) for r in self.resources_by_id.values() if r.kind == kind)
        return sorted(found.values(), key=lambda r: r.id)

    def plain_host(self, res: SeedResource) -> str:
        """Where a resource of a kind with no seeder runs its steps, by the runner's
        rule (``runtime.actions.host_for``): a ``host`` param that is a reference
        (``kvm_host/node3``) is the referenced resource's host."""
        host = res.params.get("host")
        if isinstance(host, str) and "/" in host:
            ref = self.resource(host)
            return ref.host if ref is not None else host.partition("/")[2]
        return res.host


def seed(
    resources: Iterable[SeedResource],
    *,
    existing: ExistingHost | None = None,
    lookup: ResourceLookup | None = None,
) -> WorldSeeding:
    """The host states ``resources`` imply. With ``existing``, a host the world already
    holds starts from its state there (the result holds only the hosts touched)."""
    by_id = {r.id: r for r in resources}
    seeding = WorldSeeding(by_id, existing=existing, lookup=lookup)
    for res in sorted(by_id.values(), key=lambda r: r.id):
        fns = seeders_for(res.kind)
        if not fns:
            seeding.host(seeding.plain_host(res))
        for fn in fns:
            note = fn(res, seeding)
            if note:
                seeding.notes.append(note)
    return seeding
