"""Reconciliation: what the backend reports against what the journal says.

Level-triggered, as Synnefo's ``reconcile-servers`` and Nova's ``_sync_power_states``:
each pass reads the journal (replay), then the whole observed state of the matched
resources, and classifies every difference:

- ``stale``: in the journal (in a state where it should exist), absent in the backend;
- ``orphan``: reported by the backend, unknown to the journal (no ``resource.created``);
- ``unsynced``: in both, but the observe map turns the backend's status into another
  state than the journal's;
- ``build_error``: a build the backend reports failed: the journal still has the
  resource in its initial state or in the state a creating transition left it in
  (``BUILD``), and the observe map gives an error state (``ERROR_down`` -> ``ERROR``).

The journal is authoritative for intent, the backend for observed status. Resources with
a transition in progress are skipped (counted), as are those on an unreachable host and
those in a state the observe map cannot express (``defined``, ``BUILD``, ``REBOOT``: the
backend has no status that contradicts them), which are counted as ``not_comparable``.

Every finding is a ``drift.detected`` event with its evidence; a fix is a
``state.reconciled`` (or, for an orphan, a ``resource.created``) appended with the
stream's expected version, caused by the finding: a resource that moved meanwhile is
re-checked, never overwritten. The DSL has no "repair trigger" construct, so a fix is
always a recorded state change, never a transition run behind the operator's back.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fleetlog.dsl.spec import MachineSpec
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import Kind, KindRegistry
from fleetlog.engine.model.records import Resource, split_id
from fleetlog.engine.model.replay import load_resource, replay_all
from fleetlog.engine.model.values import host_of
from fleetlog.engine.ops.observe import Listing, Observation, Unobserved, resource_host, source_for
from fleetlog.errors import FleetlogError, UsageError
from fleetlog.journal.base import ConcurrencyConflict, Event, Journal

FINDING_CLASSES: tuple[str, ...] = ("stale", "orphan", "unsynced", "build_error")
#: ``--fix`` values: the classes, and ``all``.
FIX_CHOICES: tuple[str, ...] = (*FINDING_CLASSES, "all")
#: How often one resource is re-checked when the journal moved under a finding or fix.
RECHECKS = 3


def parse_fix(values: Iterable[str]) -> frozenset[str]:
    """``--fix`` values (repeatable, comma-separated allowed) as a set of classes."""
    chosen: set[str] = set()
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            item = item.replace("-", "_")
            if item == "orphans":
                item = "orphan"
            if item not in FIX_CHOICES:
                raise UsageError(f"--fix {item!r}: choose from {', '.join(FIX_CHOICES)}")
            chosen.update(FINDING_CLASSES if item == "all" else (item,))
    return frozenset(chosen)


def map_status(spec: MachineSpec, status: str | None) -> str | None:
    """The state the observe map gives ``status``: exact rules win over globs; among
    globs the first declared wins. None when nothing matches (or no observe block)."""
    if status is None or spec.observe is None:
        return None
    for rule in spec.observe.rules:
        if not rule.is_glob and rule.pattern == status:
            return rule.state
    for rule in spec.observe.rules:
        if rule.is_glob and fnmatch.fnmatchcase(status, rule.pattern):
            return rule.state
    return None


def observable_states(spec: MachineSpec) -> frozenset[str]:
    return frozenset(r.state for r in spec.observe.rules) if spec.observe else frozenset()


def final_state(spec: MachineSpec) -> str | None:
    return next((s.name for s in spec.states if s.final), None)


# ---------------------------------------------------------------------------- findings
@dataclass
class Finding:
    resource: str
    cls: str
    journal_state: str | None
    observed: str | None
    mapped: str | None
    host: str | None
    evidence: dict[str, Any]
    fix_to: str | None = None
    unfixable: str | None = None
    params: dict[str, Any] | None = None  # an orphan's params, when they can be had
    detected_seq: int | None = None
    detected_id: str | None = None
    new: bool = True
    fixed: bool = False
    fix_seq: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "resource": self.resource,
            "class": self.cls,
            "journal_state": self.journal_state,
            "observed": self.observed,
            "mapped_state": self.mapped,
            "host": self.host,
            "evidence": self.evidence,
            "fix_to": self.fix_to,
            "unfixable": self.unfixable,
            "detected_seq": self.detected_seq,
            "new": self.new,
            "fixed": self.fixed,
            "fix_seq": self.fix_seq,
        }


SKIP_REASONS = ("in_progress", "unreachable", "not_comparable", "unobservable", "moved")


@dataclass
class PassReport:
    checked: int = 0
    in_sync: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in SKIP_REASONS})
    notes: list[str] = field(default_factory=list)
    universe: int = 0
    resources: list[str] = field(default_factory=list)  # checked, in order

    @property
    def drift_remaining(self) -> bool:
        return any(not f.fixed for f in self.findings)

    def counts(self) -> dict[str, int]:
        c = {cls: 0 for cls in FINDING_CLASSES}
        for f in self.findings:
            c[f.cls] += 1
        return c

    def to_dict(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "universe": self.universe,
            "in_sync": self.in_sync,
            "counts": self.counts(),
            "fixed": sum(1 for f in self.findings if f.fixed),
            "drift_remaining": self.drift_remaining,
            "findings": [f.to_dict() for f in self.findings],
            "skipped": {k: v for k, v in self.skipped.items()},
            "notes": self.notes,
            "resources": self.resources,
        }


def _last_transition_from(events: list[Event]) -> str | None:
    for event in reversed(events):
        if event.type == ev.TRANSITION_STARTED:
            return str(ev.TransitionStarted.from_payload(event.payload).source)
    return None


class Reconciler:
    """One journal, one backend, the loaded kinds; ``run_pass`` does one level-triggered
    pass over the resources ``pattern`` names (at most ``limit`` of them, rotating)."""

    def __init__(
        self,
        journal: Journal,
        registry: KindRegistry,
        backend: Any,
        *,
        pattern: str | None = None,
        fix: frozenset[str] = frozenset(),
        limit: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        self.journal = journal
        self.registry = registry
        self.source = source_for(backend)
        self.pattern = pattern
        self.fix = fix
        self.limit = limit
        self.should_stop = should_stop
        self._cursor = 0
        if pattern:
            kind = pattern.split("/", 1)[0]
            if not set("*?[") & set(kind):
                registry.get(kind)

    # -------------------------------------------------------------- choosing resources
    def _kinds(self) -> list[Kind]:
        kinds = list(self.registry)
        if self.pattern:
            head = self.pattern.split("/", 1)[0]
            kinds = [k for k in kinds if fnmatch.fnmatchcase(k.name, head)]
        return kinds

    def _window(self, ids: list[str]) -> list[str]:
        if self.limit is None or self.limit >= len(ids):
            self._cursor = 0
            return ids
        start = self._cursor % len(ids)
        chosen = (ids[start:] + ids[:start])[: self.limit]
        self._cursor = start + self.limit
        return chosen

    def run_pass(self) -> PassReport:
        from fleetlog.engine.model.patterns import select

        report = PassReport()
        records = replay_all(self.journal, self.registry)
        listings: dict[str, Listing | None] = {}
        universe: set[str] = set()
        for kind in self._kinds():
            ids = {rid for rid, rec in records.items() if rec.kind == kind.name}
            if kind.spec.observe is None:
                report.skipped["unobservable"].extend(sorted(select(self.pattern, ids)))
                continue
            listing = self.source.listing(kind.name)
            listings[kind.name] = listing
            if listing is not None:
                ids |= {f"{kind.name}/{n}" for n in listing.found}
            universe |= ids
        if not self.source.lists:
            report.notes.append(
                f"orphans not checked: the {self.source.name} backend cannot list resources"
            )
        chosen = self._window(select(self.pattern, universe))
        report.universe = len(universe)
        for rid in chosen:
            if self.should_stop():
                report.notes.append("stopped before the end of the pass")
                break
            kind = self.registry.get(split_id(rid)[0])
            self._check(rid, kind, records, listings[kind.name], report)
        return report

    # -------------------------------------------------------------- one resource
    def _check(
        self,
        rid: str,
        kind: Kind,
        records: dict[str, Resource],
        listing: Listing | None,
        report: PassReport,
    ) -> None:
        report.checked += 1
        report.resources.append(rid)
        for attempt in range(RECHECKS):
            if attempt:
                # The journal moved under us: read this resource and its status again.
                rec = load_resource(self.journal, self.registry, rid)
                if rec is not None:
                    records[rid] = rec
                else:
                    records.pop(rid, None)
                listing = self.source.listing(kind.name)
            try:
                outcome = self._check_once(rid, kind, records, listing)
            except ConcurrencyConflict:
                continue
            if isinstance(outcome, Finding):
                report.findings.append(outcome)
            elif outcome == "in_sync":
                report.in_sync += 1
            else:
                report.skipped[outcome].append(rid)
            return
        report.skipped["moved"].append(rid)

    def _check_once(
        self, rid: str, kind: Kind, records: dict[str, Resource], listing: Listing | None
    ) -> Finding | str:
        rec = records.get(rid)
        if rec is None:
            assert listing is not None
            seen = listing.found.get(split_id(rid)[1])
            if seen is None:
                return "in_sync"  # gone from both since the listing
            version = self.journal.stream_version(rid)
            if load_resource(self.journal, self.registry, rid) is not None:
                # Created since this pass read the journal: look at it again as a record.
                raise ConcurrencyConflict(stream=rid, expected=version, actual=version)
            finding = self._orphan(rid, kind, seen, records)
            return self._record(finding, version)
        if rec.in_progress is not None:
            return "in_progress"
        host = resource_host(rec, records)
        observed = self.source.observe(kind, rec, host, listing, records)
        if isinstance(observed, Unobserved):
            return "unreachable"
        finding_or_reason = self._classify(rec, kind, observed)
        if isinstance(finding_or_reason, str):
            return finding_or_reason
        return self._record(finding_or_reason, rec.version)

    def _evidence(
        self, obs: Observation, mapped: str | None, rec: Resource | None
    ) -> dict[str, Any]:
        ev: dict[str, Any] = {
            "observed": obs.status,
            "raw_sha256": obs.raw_sha256,
            "mapped_state": mapped,
            "journal_state": rec.state if rec else None,
            "journal_version": rec.version if rec else None,
            "host": obs.host,
            "source": obs.source,
        }
        if obs.command is not None:
            ev["command"] = obs.command
        if obs.output is not None:
            ev["output"] = obs.output
        return ev

    def _classify(self, rec: Resource, kind: Kind, obs: Observation) -> Finding | str:
        spec = kind.spec
        state = rec.state
        is_final = spec.state(state).final
        mapped = map_status(spec, obs.status)
        evidence = self._evidence(obs, mapped, rec)

        def finding(cls: str, fix_to: str | None, unfixable: str | None = None) -> Finding:
            return Finding(
                rec.id, cls, state, obs.status, mapped, obs.host, evidence, fix_to, unfixable
            )

        if obs.status is None:
            if state == spec.initial or is_final:
                return "in_sync"  # not built yet, or gone as the journal says
            final = final_state(spec)
            if final is None:
                return finding("stale", None, f"kind {kind.name} has no final state")
            return finding("stale", final)
        if is_final:
            return finding("unsynced", None, f"the journal has {rec.id} in final state {state}")
        if mapped == state:
            return "in_sync"
        if state in observable_states(spec):
            if mapped is None:
                return finding("unsynced", None, f"status {obs.status!r} is not in the observe map")
            return finding("unsynced", mapped)
        if mapped is not None and spec.state(mapped).error and self._in_build(rec, spec):
            return finding("build_error", mapped)
        return "not_comparable"

    def _in_build(self, rec: Resource, spec: MachineSpec) -> bool:
        if rec.state == spec.initial:
            return True
        return _last_transition_from(self.journal.read_stream(rec.id)) == spec.initial

    def _orphan(
        self, rid: str, kind: Kind, obs: Observation, records: dict[str, Resource]
    ) -> Finding:
        from fleetlog.engine.model.params import resolve

        mapped = map_status(kind.spec, obs.status)
        evidence = self._evidence(obs, mapped, None)
        f = Finding(rid, "orphan", None, obs.status, mapped, obs.host, evidence, mapped)
        if mapped is None:
            f.unfixable = f"status {obs.status!r} is not in the observe map"
            return f
        given: dict[str, Any] = {}
        host_param = next((p for p in kind.spec.params if p.name == "host"), None)
        if host_param is not None and obs.host is not None:
            if host_param.type == "ref" and host_param.ref_kind:
                ref = self._resource_on(host_param.ref_kind, obs.host, records)
                if ref is not None:
                    given["host"] = ref
            elif host_param.type == "str":
                given["host"] = obs.host
        try:
            f.params = resolve(kind.spec.params, given, rid)
        except FleetlogError as exc:
            f.unfixable = f"cannot create it: {exc}"
        return f

    @staticmethod
    def _resource_on(kind: str, host: str, records: dict[str, Resource]) -> str | None:
        direct = f"{kind}/{host}"
        if direct in records:
            return direct
        for rid, rec in sorted(records.items()):
            if rec.kind == kind and host_of(rec) == host:
                return rid
        return None

    # -------------------------------------------------------------- journaling
    def _record(self, f: Finding, version: int) -> Finding:
        """Journal the finding (unless the stream's last event already is this very
        finding), then fix it when its class was asked for."""
        drift = ev.DriftDetected(
            cls=f.cls,
            resource=f.resource,
            evidence=f.evidence,
            fix={"to": f.fix_to} if f.fix_to is not None and f.unfixable is None else None,
            unfixable=f.unfixable,
        )
        prior = self._same_finding(f, version)
        if prior is not None:
            f.new, f.detected_seq, f.detected_id = False, prior.seq, prior.event_id
            at = version
        else:
            recorded = self.journal.append(
                f.resource, [ev.new_event(drift)], expected_version=version
            )[0]
            f.detected_seq, f.detected_id, at = recorded.seq, recorded.event_id, recorded.version
        if f.cls in self.fix and f.unfixable is None and f.fix_to is not None:
            self._fix(f, at)
        return f

    def _same_finding(self, f: Finding, version: int) -> Event | None:
        if version == 0:
            return None
        last = self.journal.read_stream(f.resource, from_version=version)
        if not last or last[-1].version != version:
            raise ConcurrencyConflict(
                stream=f.resource, expected=version, actual=last[-1].version if last else 0
            )
        event = last[-1]
        p = ev.read(event)
        if not isinstance(p, ev.DriftDetected):
            return None
        old = p.evidence or {}
        same = (
            p.cls == f.cls
            and old.get("observed") == f.observed
            and old.get("raw_sha256") == f.evidence["raw_sha256"]
            and old.get("journal_state") == f.journal_state
        )
        return event if same else None

    def _fix(self, f: Finding, version: int) -> None:
        assert f.fix_to is not None and f.detected_id is not None
        finding = {"id": f.detected_id, "class": f.cls, "observed": f.observed}
        fix: ev.Payload
        if f.cls == "orphan":
            kind = self.registry.get(split_id(f.resource)[0])
            fix = ev.ResourceCreated(
                kind=kind.name,
                params=f.params or {},
                state=f.fix_to,
                definition_hash=kind.spec.definition_hash,
                finding=finding,
            )
        else:
            fix = ev.StateReconciled(source=f.journal_state, target=f.fix_to, finding=finding)
        # A ConcurrencyConflict here leaves the finding standing (it was true when seen)
        # and the fix unapplied: the resource moved, and the caller re-checks it.
        event = ev.new_event(fix, causation_id=f.detected_id)
        recorded = self.journal.append(f.resource, [event], expected_version=version)[0]
        f.fixed, f.fix_seq = True, recorded.seq


def summary_line(report: PassReport) -> str:
    c = report.counts()
    parts = [f"{report.checked} checked", f"{report.in_sync} in sync"]
    parts += [f"{n} {cls.replace('_', ' ')}" for cls, n in c.items() if n]
    fixed = sum(1 for f in report.findings if f.fixed)
    if fixed:
        parts.append(f"{fixed} fixed")
    for reason, ids in report.skipped.items():
        if ids:
            parts.append(f"{len(ids)} skipped ({reason.replace('_', ' ')})")
    tail = "drift remains" if report.drift_remaining else "no drift"
    return "reconcile: " + ", ".join(parts) + f"; {tail}"
