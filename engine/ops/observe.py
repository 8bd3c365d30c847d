"""Reading what the backend reports, for reconciliation.

The sim lists everything it knows per kind (so orphans can be found); ssh and local run
the kind's ``observe "COMMAND"`` on each resource's host (they cannot list, so they find
stale and unsynced resources only). Every observation keeps the SHA-256 of the raw
output as evidence, and an unreachable host yields ``Unobserved`` — no verdict — never
"absent".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetlog.engine.model.kinds import Kind
from fleetlog.engine.model.records import Resource
from fleetlog.engine.model.values import host_of
from fleetlog.errors import FleetlogError

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend

OBSERVE_TIMEOUT = 60.0
EXCERPT = 200


def digest(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Observation:
    """What the backend said about one resource; ``status`` None means absent."""

    name: str
    status: str | None
    host: str | None
    raw_sha256: str
    source: str
    output: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class Unobserved:
    """The backend could not be asked (unreachable host, failed probe): no verdict."""

    reason: str


@dataclass
class Listing:
    """Every resource of one kind a listing backend reports, with the hosts it could not
    reach. Only a listing finds orphans."""

    found: dict[str, Observation]
    blind: set[str]


def resource_host(rec: Resource, records: dict[str, Resource]) -> str:
    """Where ``rec`` lives: its ``host`` param, through a ref (``vm.host -> kvm_host``)."""
    host = rec.params.get("host")
    if isinstance(host, str) and "/" in host:
        ref = records.get(host)
        return host_of(ref) if ref is not None else host.split("/", 1)[1]
    return host_of(rec)


class SimSource:
    """The simulated datacenter: one inventory per kind per pass (it lists everything)."""

    name = "sim"
    lists = True

    def __init__(self, backend: Any) -> None:
        self.backend = backend

    def listing(self, kind: str) -> Listing:
        reports, blind = self.backend.inventory_by_host(kind)
        found: dict[str, Observation] = {}
        for host in sorted(reports):
            for name, status in sorted(reports[host].items()):
                raw = _canonical({"host": host, "kind": kind, "name": name, "status": status})
                found.setdefault(name, Observation(name, status, host, digest(raw), self.name))
        self._hosts = sorted(reports)
        return Listing(found, set(blind))

    def observe(
        self,
        kind: Kind,
        rec: Resource,
        host: str,
        listing: Listing | None,
        records: dict[str, Resource],
    ) -> Observation | Unobserved:
        assert listing is not None
        obs = listing.found.get(rec.name)
        if obs is not None:
            return obs
        if host in listing.blind:
            return Unobserved(f"host {host} is unreachable")
        raw = _canonical(
            {"kind": kind.name, "name": rec.name, "status": None, "hosts": self._hosts}
        )
        return Observation(rec.name, None, None, digest(raw), self.name)


class CommandSource:
    """Any command backend (ssh, local): the kind's ``observe "COMMAND"`` run on the
    resource's host. Exit 0: the first line of stdout is the status; any other exit:
    the resource is absent (``vm_maker --status`` exits 1 for an unknown guest); a
    backend error (unreachable, timeout): unobserved. It cannot list, so it finds no
    orphans."""

    lists = False

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.name = getattr(backend, "name", "backend")

    def listing(self, kind: str) -> Listing | None:
        return None

    def observe(
        self,
        kind: Kind,
        rec: Resource,
        host: str,
        listing: Listing | None,
        records: dict[str, Resource],
    ) -> Observation | Unobserved:
        from fleetlog.dsl import render
        from fleetlog.engine.backends.base import BackendError
        from fleetlog.engine.model.values import Scope

        spec = kind.spec
        if spec.observe is None or spec.observe.command is None:
            return Unobserved(f"kind {kind.name} declares no observe command")
        scope = Scope(
            record=rec,
            params=rec.params,
            secret_names=tuple(s.name for s in spec.secrets),
            load_ref=records.get,
        )
        try:
            real = render(spec.observe.command, scope.lookup, scope.secret_names)
            shown = render(spec.observe.command, scope.lookup, scope.secret_names, redact=True)
            result = self.backend.run(host, real, timeout=OBSERVE_TIMEOUT)
        except BackendError as exc:
            return Unobserved(scope.redact(str(exc)))
        except FleetlogError as exc:
            return Unobserved(f"cannot render the observe command: {exc}")
        out = scope.redact(result.stdout)
        lines = out.strip().splitlines()
        status = lines[0].strip() if result.ok and lines else None
        if result.ok and status is None:
            status = ""
        return Observation(
            rec.name, status, host, digest(result.stdout), self.name, out[:EXCERPT], shown
        )


def source_for(backend: Any) -> SimSource | CommandSource:
    if hasattr(backend, "inventory_by_host"):
        return SimSource(backend)
    return CommandSource(backend)
