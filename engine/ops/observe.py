"""Reading what the backend reports, for reconciliation: seen, proven absent, or unknown.

Three verdicts, never more: the backend reports the resource (``Seen``: its status and
fields), the backend *proves* it absent (``Absent``: a listing that was read whole and
does not hold it, or the observe command's declared ``absent if`` outcome), or nobody
can tell (``Unknown``: a failed or empty listing, a non-zero exit that is not the
declared one, a timeout, an unreachable host, a row the backend itself marks unknown).
Only ``Absent`` may ever lead to a fix that says "gone"; ``Unknown`` is reported and
journaled, never fixed.

Where the verdict comes from, per kind:

- a kind that declares a listing (``observe { list "CMD" on REF format F }``) runs it
  once per target (each resource of the ref's kind: each Ganeti cluster) through the
  backend — the sim runs its fake tools, ssh the real ones — or reads it from a file
  or URL the operator names (``--listing KIND=FORMAT:LOCATION``); its jobs likewise.
  Only a listing finds orphans, and only those it owns (``owned "snf-"``);
- otherwise, on the simulated datacenter, the sim's observers: a host proves absence
  only for the kinds it has a view of (a storage cell says nothing about KVM guests);
- otherwise the kind's ``observe "CMD"``, run per resource on its host.

Every verdict keeps the SHA-256 of the raw output it rests on as evidence.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fleetlog.dsl.spec import ListingSpec, ObserveSpec
from fleetlog.engine.model.kinds import Kind
from fleetlog.engine.model.listing import (
    FormatOptions,
    Job,
    Listed,
    job_format,
    resource_format,
)
from fleetlog.engine.model.records import Resource
from fleetlog.engine.model.values import Scope, host_of
from fleetlog.errors import FleetlogError, UsageError

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend

OBSERVE_TIMEOUT = 60.0
EXCERPT = 200
#: Where a listing without ``on`` runs: the operator's own host.
LOCAL_TARGET = "localhost"


def digest(raw: str | bytes) -> str:
    data = raw.encode() if isinstance(raw, str) else raw
    return hashlib.sha256(data).hexdigest()


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Seen:
    """The backend reports the resource, with this status (and these fields)."""

    name: str
    status: str
    host: str | None
    raw_sha256: str
    source: str
    output: str | None = None
    command: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
    #: The listing target it was found under (a ``ref`` id), when it came from one.
    target: str | None = None


@dataclass(frozen=True)
class Absent:
    """The backend proves the resource is not there: ``proof`` says how."""

    name: str
    proof: str
    host: str | None
    raw_sha256: str
    source: str
    output: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class Unknown:
    """Nobody can tell: ``reason`` says why. Never a verdict on the resource."""

    reason: str
    host: str | None = None
    raw_sha256: str | None = None
    source: str = ""


Verdict = Seen | Absent | Unknown


def resource_host(rec: Resource, records: Mapping[str, Resource]) -> str:
    """Where ``rec`` lives: its ``host`` param, through a ref (``vm.host -> kvm_host``)."""
    host = rec.params.get("host")
    if isinstance(host, str) and "/" in host:
        ref = records.get(host)
        return host_of(ref) if ref is not None else host.split("/", 1)[1]
    return host_of(rec)


def status_is_unknown(spec: ObserveSpec, status: str) -> bool:
    """A status the kind declares as "the backend cannot tell" (``unknown "…"``)."""
    return any(fnmatch.fnmatchcase(status, pattern) for pattern in spec.unknown)


# ---------------------------------------------------------------------------- listings
@dataclass(frozen=True)
class Override:
    """``--listing KIND=FORMAT:LOCATION``: read a kind's listing (or jobs) from a file or
    an HTTP(S) URL instead of running its command."""

    kind: str
    format: str
    location: str

    @classmethod
    def parse(cls, text: str, option: str) -> Override:
        kind, sep, rest = text.partition("=")
        fmt, sep2, location = rest.partition(":")
        if not sep or not sep2 or not kind.strip() or not fmt.strip() or not location.strip():
            raise UsageError(
                f"{option} {text!r}: expected KIND=FORMAT:LOCATION (a file, or an http(s):// URL)"
            )
        return cls(kind.strip(), fmt.strip(), location.strip())


@dataclass
class TargetListing:
    """What one listing target reported: its resources (None: unknown, ``reason`` says
    why), and when asked for, its jobs (None: unknown)."""

    target: str | None
    host: str
    source: str
    items: dict[str, Listed] | None = None
    reason: str | None = None
    raw_sha256: str | None = None
    command: str | None = None
    foreign: int = 0
    jobs: dict[str, Job] | None = None
    jobs_reason: str | None = None


class Reader:
    """Runs (or fetches) listings and parses them with their formats."""

    def __init__(self, backend: Backend | None) -> None:
        self.backend = backend

    def text(
        self,
        spec: ListingSpec,
        host: str,
        override: Override | None,
        scope: Scope | None,
    ) -> tuple[str, str]:
        """(text, what was read: the command as shown, a path or a URL)."""
        from fleetlog.dsl import render
        from fleetlog.engine.backends.base import BackendError

        if override is not None:
            return _fetch(override.location), override.location
        if self.backend is None:
            raise _Unreadable("no backend to run the listing command")
        lookup = scope.lookup if scope is not None else _no_values
        try:
            command = render(spec.command, lookup, ())
        except FleetlogError as exc:
            raise _Unreadable(f"cannot render the listing command: {exc}") from None
        try:
            result = self.backend.run(host, command, timeout=OBSERVE_TIMEOUT)
        except BackendError as exc:
            raise _Unreadable(str(exc)) from None
        if not result.ok:
            tail = (result.stderr or result.stdout).strip().splitlines()
            why = f": {tail[-1][:160]}" if tail else ""
            raise _Unreadable(f"{command!r} on {host} exited {result.exit_code}{why}")
        return result.stdout, command

    def resources(
        self, spec: ListingSpec, host: str, override: Override | None, scope: Scope | None
    ) -> tuple[list[Listed], str, str]:
        """(rows, sha256 of the text, what was read); ``_Unreadable`` otherwise."""
        fmt_name = override.format if override is not None else spec.format
        try:
            fmt = resource_format(fmt_name)
        except KeyError:
            raise _Unreadable(f"unknown listing format {fmt_name!r}") from None
        text, what = self.text(spec, host, override, scope)
        options = FormatOptions(spec.columns, spec.separator)
        try:
            rows = fmt.resources(text, options)
        except ValueError as exc:
            raise _Unreadable(f"{what}: cannot read it as {fmt_name}: {exc}") from None
        if not rows:
            raise _Unreadable(f"{what}: the listing is empty")
        return rows, digest(text), what

    def jobs(
        self, spec: ListingSpec, host: str, override: Override | None, scope: Scope | None
    ) -> dict[str, Job]:
        fmt_name = override.format if override is not None else spec.format
        try:
            fmt = job_format(fmt_name)
        except KeyError:
            raise _Unreadable(f"unknown job listing format {fmt_name!r}") from None
        text, what = self.text(spec, host, override, scope)
        try:
            found = fmt.jobs(text, FormatOptions(spec.columns, spec.separator))
        except ValueError as exc:
            raise _Unreadable(f"{what}: cannot read it as {fmt_name}: {exc}") from None
        return {job.id: job for job in found}


class _Unreadable(Exception):
    """A listing that cannot be had: its whole content is unknown."""


def _no_values(name: str, attr: str | None = None) -> Any:
    raise FleetlogError(f"a listing command cannot read {name!r}")


def _fetch(location: str) -> str:
    if location.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(location, timeout=OBSERVE_TIMEOUT) as resp:
                data: bytes = resp.read()
        except urllib.error.HTTPError as exc:
            raise _Unreadable(f"{location}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise _Unreadable(f"{location}: {reason}") from None
    else:
        try:
            data = Path(location).read_bytes()
        except OSError as exc:
            raise _Unreadable(f"{location}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Unreadable(f"{location}: not UTF-8 text") from None


class ListingSource:
    """A kind observed through its listing: one read per target per pass."""

    lists = True

    def __init__(
        self,
        kind: Kind,
        backend: Backend | None,
        records: Mapping[str, Resource],
        *,
        listing: Override | None = None,
        jobs: Override | None = None,
        is_final: Callable[[Resource], bool] = lambda rec: False,
    ) -> None:
        obs = kind.spec.observe
        self.is_final = is_final
        assert obs is not None and obs.listing is not None
        self.kind = kind
        self.spec = obs
        self.name = f"listing:{listing.format if listing else obs.listing.format}"
        self.reader = Reader(backend)
        self.override = listing
        self.jobs_override = jobs
        self.ref_param = obs.listing.on
        self.targets: dict[str | None, TargetListing] = {}
        self._read(records)

    # -------------------------------------------------------------- reading
    def _target_ids(self, records: Mapping[str, Resource]) -> list[str | None]:
        if self.ref_param is None:
            return [None]
        ref_kind = self.kind.spec.param(self.ref_param).ref_kind
        ids: set[str] = set()
        for rid, rec in records.items():
            if rec.kind == ref_kind:
                if not self.is_final(rec):
                    ids.add(rid)
            elif rec.kind == self.kind.name and not self.is_final(rec):
                value = rec.params.get(self.ref_param)
                if isinstance(value, str) and "/" in value:
                    ids.add(value)
        return list(sorted(ids))

    def _read(self, records: Mapping[str, Resource]) -> None:
        targets = self._target_ids(records)
        if (self.override or self.jobs_override) and len(targets) > 1:
            raise UsageError(
                f"--listing/--jobs for {self.kind.name}: its listing runs on "
                f"{len(targets)} targets ({', '.join(str(t) for t in targets[:3])}…); "
                "a file or URL can stand for one only"
            )
        for target in targets:
            self.targets[target] = self._read_one(target, records)

    def _read_one(self, target: str | None, records: Mapping[str, Resource]) -> TargetListing:
        assert self.spec.listing is not None
        if target is None:
            host = LOCAL_TARGET
        else:
            ref = records.get(target)
            host = host_of(ref) if ref is not None else target.split("/", 1)[1]
        tl = TargetListing(target, host, self.name)
        try:
            rows, sha, what = self.reader.resources(self.spec.listing, host, self.override, None)
        except _Unreadable as exc:
            tl.reason = str(exc)
            tl.raw_sha256 = digest(tl.reason)
        else:
            tl.raw_sha256, tl.command = sha, what
            tl.items = {}
            for row in rows:
                if self.spec.owned is not None and not row.name.startswith(self.spec.owned):
                    tl.foreign += 1
                    continue
                tl.items[row.name] = row
        if self.spec.jobs is not None:
            try:
                tl.jobs = self.reader.jobs(self.spec.jobs, host, self.jobs_override, None)
            except _Unreadable as exc:
                tl.jobs_reason = str(exc)
        return tl

    # -------------------------------------------------------------- verdicts
    def target_of(self, rec: Resource) -> str | None:
        if self.ref_param is None:
            return None
        value = rec.params.get(self.ref_param)
        return value if isinstance(value, str) else None

    def verdict(self, rec: Resource) -> Verdict:
        target = self.target_of(rec)
        # Found anywhere it is listed (a guest moved between clusters is still there).
        for tl in self.targets.values():
            if tl.items is not None and rec.name in tl.items:
                return self._seen(tl.items[rec.name], tl)
        tl_or_none = self.targets.get(target)
        if tl_or_none is None:
            return Unknown(
                f"no listing covers {rec.id} (its {self.ref_param} is {target!r})",
                source=self.name,
            )
        tl = tl_or_none
        if tl.items is None:
            return Unknown(
                f"the listing of {target or tl.host} failed: {tl.reason}",
                tl.host,
                tl.raw_sha256,
                self.name,
            )
        if self.spec.owned is not None and not rec.name.startswith(self.spec.owned):
            return Unknown(
                f"{rec.name} does not start with {self.spec.owned!r}: the listing ignores it",
                tl.host,
                tl.raw_sha256,
                self.name,
            )
        return Absent(
            rec.name,
            f"not among the {len(tl.items)} resource(s) the listing of {target or tl.host} reports",
            tl.host,
            tl.raw_sha256 or "",
            self.name,
            command=tl.command,
        )

    def _seen(self, row: Listed, tl: TargetListing) -> Seen | Unknown:
        raw = _canonical({"name": row.name, "status": row.status, "fields": dict(row.fields)})
        if row.status is None:
            return Unknown(
                f"the backend lists {row.name} but cannot tell its status ({row.unknown})",
                tl.host,
                digest(raw),
                self.name,
            )
        return Seen(
            row.name,
            row.status,
            row.host or tl.host,
            digest(raw),
            self.name,
            command=tl.command,
            fields=dict(row.fields),
            target=tl.target,
        )

    def orphans(self, known: set[str]) -> dict[str, tuple[Listed, TargetListing]]:
        """Owned rows no journal resource of the kind names."""
        out: dict[str, tuple[Listed, TargetListing]] = {}
        for tl in self.targets.values():
            for name, row in (tl.items or {}).items():
                if f"{self.kind.name}/{name}" not in known:
                    out.setdefault(name, (row, tl))
        return out

    def jobs_for(self, rec: Resource) -> tuple[dict[str, Job] | None, str | None]:
        """The jobs of the target ``rec`` belongs to (None, why: unknown)."""
        tl = self.targets.get(self.target_of(rec))
        if tl is None:
            return None, "no listing target"
        if self.spec.jobs is None:
            return None, "the kind declares no jobs listing"
        return tl.jobs, tl.jobs_reason

    def notes(self) -> list[str]:
        out: list[str] = []
        for tl in self.targets.values():
            where = tl.target or tl.host
            if tl.items is None:
                out.append(f"{self.kind.name}: the listing of {where} is unknown: {tl.reason}")
            if tl.foreign:
                out.append(
                    f"{self.kind.name}: {tl.foreign} resource(s) on {where} are not "
                    f"fleetlog's (not {self.spec.owned!r}…): ignored"
                )
            if self.spec.jobs is not None and tl.jobs is None:
                out.append(f"{self.kind.name}: the jobs of {where} are unknown: {tl.jobs_reason}")
        return out


# ---------------------------------------------------------------------------- the sim
class SimSource:
    """The simulated datacenter's observers: everything of a kind, per host. A host
    proves a resource absent only if it has a view of the kind."""

    name = "sim"
    lists = True

    def __init__(self, kind: Kind, backend: Any) -> None:
        self.kind = kind
        reports, blind = backend.inventory_by_host(kind.name)
        self.reports: dict[str, dict[str, str]] = reports
        self.blind: set[str] = set(blind)
        self.found: dict[str, tuple[str, str]] = {}
        for host in sorted(reports):
            for name, status in sorted(reports[host].items()):
                self.found.setdefault(name, (host, status))

    def verdict(self, rec: Resource, host: str) -> Verdict:
        hit = self.found.get(rec.name)
        if hit is not None:
            seen_host, status = hit
            raw = _canonical(
                {"host": seen_host, "kind": self.kind.name, "name": rec.name, "status": status}
            )
            return Seen(rec.name, status, seen_host, digest(raw), self.name)
        if host in self.blind:
            return Unknown(f"host {host} is unreachable", host, source=self.name)
        if host not in self.reports:
            return Unknown(
                f"the simulated datacenter has no view of {self.kind.name} on {host}",
                host,
                source=self.name,
            )
        raw = _canonical({"kind": self.kind.name, "name": rec.name, "host": host, "status": None})
        return Absent(
            rec.name, f"{host} reports no {self.kind.name} {rec.name}", host, digest(raw), self.name
        )

    def orphans(self, known: set[str]) -> dict[str, tuple[str, str]]:
        return {
            name: hit for name, hit in self.found.items() if f"{self.kind.name}/{name}" not in known
        }


# ---------------------------------------------------------------------------- commands
class CommandSource:
    """Any command backend (ssh, local): the kind's ``observe "CMD"`` run on each
    resource's host. Exit 0: the first line of stdout is the status; the declared
    ``absent if`` outcome: absent; anything else (another exit status, a backend error,
    a timeout): unknown. It cannot list, so it finds no orphans."""

    lists = False

    def __init__(self, kind: Kind, backend: Backend) -> None:
        self.kind = kind
        self.backend = backend
        self.name = getattr(backend, "name", "backend")

    def verdict(self, rec: Resource, host: str, records: Mapping[str, Resource]) -> Verdict:
        from fleetlog.dsl import render
        from fleetlog.engine.backends.base import BackendError

        spec = self.kind.spec
        obs = spec.observe
        assert obs is not None and obs.command is not None
        scope = Scope(
            record=rec,
            params=rec.params,
            secret_names=tuple(s.name for s in spec.secrets),
            load_ref=records.get,
        )
        if obs.on is not None:
            ref = scope.ref(obs.on)
            host = host_of(ref) if ref is not None else host
        try:
            real = render(obs.command, scope.lookup, scope.secret_names)
            shown = render(obs.command, scope.lookup, scope.secret_names, redact=True)
        except FleetlogError as exc:
            return Unknown(f"cannot render the observe command: {exc}", host, source=self.name)
        try:
            result = self.backend.run(host, real, timeout=OBSERVE_TIMEOUT)
        except BackendError as exc:
            return Unknown(scope.redact(str(exc)), host, source=self.name)
        out = scope.redact(result.stdout)
        both = scope.redact(result.stdout + result.stderr)
        sha = digest(result.stdout + "\0" + result.stderr + f"\0{result.exit_code}")
        if result.ok:
            lines = out.strip().splitlines()
            status = lines[0].strip() if lines else ""
            if status:
                sha_out = digest(result.stdout)
                return Seen(rec.name, status, host, sha_out, self.name, out[:EXCERPT], shown)
        if obs.absent is not None and _declares_absent(obs, result.exit_code, both):
            return Absent(
                rec.name,
                f"{shown!r} on {host} gave the declared absent outcome",
                host,
                sha,
                self.name,
                both[:EXCERPT],
                shown,
            )
        tail = both.strip().splitlines()
        why = f": {tail[-1][:160]}" if tail else ""
        return Unknown(
            f"{shown!r} on {host} exited {result.exit_code}{why}"
            + ("" if obs.absent else " (the kind declares no 'absent if')"),
            host,
            sha,
            self.name,
        )


# ---------------------------------------------------------------------------- packs
def pack_reader(kind: str) -> Any | None:
    """The status reader a machine pack declares for ``kind`` (``Pack.observe_sources``),
    if any: it is asked instead of the backend (a node's power state from its BMC)."""
    from fleetlog import packs

    for ref in packs.discover().named("observe_sources"):
        reader = packs.resolve(ref)
        if kind in getattr(reader, "kinds", ()):
            return reader
    return None


class PackSource:
    """A kind whose pack reads the status itself, per resource, in Python (Redfish power
    state over HTTP, or the sim's BMC). A status is seen; a reader that fails (the BMC
    refuses, does not answer) is unknown. It cannot list, so it finds no orphans."""

    lists = False

    def __init__(self, kind: Kind, backend: Backend | None, reader: Any) -> None:
        self.kind = kind
        self.backend = backend
        self.reader = reader
        self.name = str(getattr(reader, "name", "pack"))

    def verdict(self, rec: Resource, host: str, records: Mapping[str, Resource]) -> Verdict:
        scope = Scope(
            record=rec,
            params=rec.params,
            secret_names=tuple(s.name for s in self.kind.spec.secrets),
            load_ref=records.get,
        )
        try:
            status = str(self.reader.status(rec, scope, self.backend))
        except Exception as exc:  # a pack's reader: any failure means "cannot tell"
            why = str(exc) if isinstance(exc, FleetlogError) else f"{type(exc).__name__}: {exc}"
            return Unknown(scope.redact(why), host, source=self.name)
        raw = _canonical({"kind": self.kind.name, "name": rec.name, "status": status})
        return Seen(rec.name, status, host, digest(raw), self.name)


def _declares_absent(obs: ObserveSpec, exit_code: int | None, text: str) -> bool:
    rule = obs.absent
    assert rule is not None
    if rule.exit is not None and exit_code != rule.exit:
        return False
    if rule.op == "contains":
        return (rule.expected or "") in text
    if rule.op == "equals":
        return text.strip() == (rule.expected or "")
    return True
