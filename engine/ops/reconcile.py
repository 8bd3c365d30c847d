"""Reconciliation: what the backend reports against what the journal says.

Level-triggered, as Synnefo's ``reconcile-servers`` (``logic/reconciliation.py``) and
Nova's ``_sync_power_states``: each pass replays the journal, reads the backend once per
kind (``ops.observe``: seen, proven absent, or unknown), and classifies every
difference. The classes are Synnefo's rules, with its evidence and its fixes:

- ``stale``: in the journal, proven absent in the backend. A resource in a state the
  kind declares ``absent ok in`` (an ERROR build that never created anything) is stale
  only when the last action asked of it is one the rule names (``unless action
  destroy``). Fix: the final state (Synnefo simulates a successful REMOVE).
- ``orphan``: in an owned listing, unknown to the journal. Fixes: adopt it with the
  backend's attributes (``--fix orphan``) or adopt it and delete it in the backend
  through the kind's ``delete orphans via TRIGGER`` (``--fix orphan_delete``; Synnefo's
  DeleteInstance).
- ``unsynced``: seen, but the observe map gives another state (both ways: stopped or
  started behind fleetlog's back). Fix: the observed state.
- ``build_error``: a resource in a ``building`` state whose job failed, or whose job the
  backend no longer knows (lost) once the grace period is over. Fix: the state the
  kind's ``job`` rule gives a failed create (or its first error state). A build whose
  job still runs is left alone; one whose job finished but was never processed is
  ``unsynced`` (fix: the observed state) or, absent, ``stale``.
- ``unsynced_GROUP``: a ``compare GROUP:`` attribute (flavor, NICs, disks) differs from
  the backend's field. Fix: the backend's values, when the param's type (an enum is its
  catalogue) accepts them; otherwise unfixable ("unknown flavor").
- ``pending_task``: a transition still in progress, nobody holding its lease, whose
  backend job (the ``job id in`` param its steps recorded) has finished or is gone.
  Fix: resume the transition.
- ``unknown``: the backend could not say (failed listing, unreachable host, a status the
  backend marks unknown). Reported and journaled, never fixed.

Detect-only by default. ``--fix all`` never includes a fix that moves a resource into a
final state or deletes in the backend: ``stale``, ``orphan_delete`` and an ``unsynced``
whose observed state is final need their class named. A brake stops mass fixes: when a
pass would fix more than ``max_fix_share`` of the resources of a kind it checked (one
fix is always allowed), it fixes none of that kind and says why — as Kubernetes' node
lifecycle controller stops evicting when a whole zone looks down.

Every finding is a ``drift.detected`` event with its evidence (unless ``read_only``); a
fix is appended with the stream's expected version and caused by the finding, so a
resource that moved meanwhile is re-checked, never overwritten.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fleetlog.dsl.spec import MachineSpec, ObserveSpec
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import Kind, KindRegistry
from fleetlog.engine.model.listing import Job, text_of
from fleetlog.engine.model.records import Resource, split_id
from fleetlog.engine.model.replay import load_resource, replay_all
from fleetlog.engine.model.statusmap import (
    final_state,
    job_rule_state,
    map_status,
    observable_states,
)
from fleetlog.engine.ops.observe import (
    Absent,
    CommandSource,
    ListingSource,
    Override,
    PackSource,
    Seen,
    SimSource,
    Unknown,
    Verdict,
    digest,
    pack_reader,
    resource_host,
    status_is_unknown,
)
from fleetlog.errors import FleetlogError, UsageError
from fleetlog.journal.base import ConcurrencyConflict, Event, Journal

if TYPE_CHECKING:
    from fleetlog.engine.runtime.task import Intake

FINDING_CLASSES: tuple[str, ...] = (
    "stale",
    "orphan",
    "unsynced",
    "build_error",
    "pending_task",
    "unknown",
)
#: Fixes ``all`` never includes: they end a resource or delete in the backend.
FINAL_FIXES: tuple[str, ...] = ("stale", "orphan_delete")
#: ``--fix`` values: the classes (``unsynced_GROUP`` for every compare group), the
#: orphan deletion, and ``all``.
FIX_CHOICES: tuple[str, ...] = (
    "stale",
    "orphan",
    "orphan_delete",
    "unsynced",
    "build_error",
    "pending_task",
    "all",
)
#: How often one resource is re-checked when the journal moved under a finding or fix.
RECHECKS = 3
DEFAULT_MAX_FIX_SHARE = 0.10


@dataclass(frozen=True)
class FixChoice:
    """Which classes to fix, and which were named (not implied by ``all``)."""

    classes: frozenset[str] = frozenset()
    named: frozenset[str] = frozenset()
    #: ``all`` was asked for (so a final fix it leaves out is explained, not silent).
    everything: bool = False

    def wants(self, cls: str) -> bool:
        return cls in self.classes or (cls.startswith("unsynced_") and "unsynced_*" in self.classes)

    def named_explicitly(self, cls: str) -> bool:
        return cls in self.named

    def __bool__(self) -> bool:
        return bool(self.classes)


def parse_fix(values: Iterable[str], groups: Iterable[str] = ()) -> FixChoice:
    """``--fix`` values (repeatable, comma-separated allowed). ``groups``: the compare
    groups of the loaded kinds (``--fix unsynced_flavor``)."""
    known = {f"unsynced_{g}" for g in groups}
    classes: set[str] = set()
    named: set[str] = set()
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            item = item.replace("-", "_")
            if item == "orphans":
                item = "orphan"
            if item not in FIX_CHOICES and item not in known:
                choices = ", ".join([*FIX_CHOICES[:-1], *sorted(known), "all"])
                raise UsageError(f"--fix {item!r}: choose from {choices}")
            if item == "all":
                classes.update(c for c in FIX_CHOICES[:-1] if c not in FINAL_FIXES)
                classes.add("unsynced_*")
            else:
                classes.add(item)
                named.add(item)
    everything = any(item.strip() == "all" for value in values for item in value.split(","))
    return FixChoice(frozenset(classes), frozenset(named), everything)


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
    #: A fix that sets attributes (``unsynced_GROUP``): param -> the backend's value.
    fix_attrs: dict[str, Any] | None = None
    #: A fix that runs a transition: ``resume`` (a pending task) or the trigger that
    #: deletes an adopted orphan in the backend.
    fix_run: str | None = None
    detected_seq: int | None = None
    detected_id: str | None = None
    new: bool = True
    fixed: bool = False
    fix_seq: int | None = None
    held: str | None = None  # why a wanted fix was not applied (brake, final, ...)

    @property
    def fixable(self) -> bool:
        if self.unfixable is not None or self.cls == "unknown":
            return False
        return self.fix_to is not None or self.fix_attrs is not None or self.fix_run is not None

    def key(self) -> tuple[Any, ...]:
        """What makes two detections the same finding."""
        return (
            self.cls,
            self.observed,
            self.evidence.get("raw_sha256"),
            self.journal_state,
            repr(sorted((self.evidence.get("attributes") or {}).items())),
        )

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
            "fix_attributes": self.fix_attrs,
            "fix_run": self.fix_run,
            "unfixable": self.unfixable,
            "detected_seq": self.detected_seq,
            "new": self.new,
            "fixed": self.fixed,
            "fix_seq": self.fix_seq,
            "held": self.held,
        }


SKIP_REASONS = (
    "in_progress",
    "building",
    "not_comparable",
    "unobservable",
    "moved",
)


@dataclass
class PassReport:
    checked: int = 0
    in_sync: int = 0
    findings: list[Finding] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(default_factory=lambda: {r: [] for r in SKIP_REASONS})
    notes: list[str] = field(default_factory=list)
    universe: int = 0
    resources: list[str] = field(default_factory=list)  # checked, in order
    braked: dict[str, str] = field(default_factory=dict)  # kind -> why
    now: str = ""
    read_only: bool = False

    @property
    def drift_remaining(self) -> bool:
        return any(not f.fixed for f in self.findings)

    def counts(self) -> dict[str, int]:
        c = {cls: 0 for cls in FINDING_CLASSES}
        for f in self.findings:
            c[f.cls] = c.get(f.cls, 0) + 1
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
            "braked": self.braked,
            "now": self.now,
            "read_only": self.read_only,
        }


# ---------------------------------------------------------------------------- the journal
def _entered_at(events: list[Event], state: str) -> str | None:
    """When the resource last moved into ``state`` (or was created in it)."""
    for event in reversed(events):
        p = ev.read(event)
        if (
            isinstance(p, ev.ResourceCreated | ev.StateReconciled)
            and getattr(p, "target", getattr(p, "state", None)) == state
        ):
            return event.recorded_at
        if isinstance(p, ev.TransitionCompleted | ev.TransitionFailed | ev.TransitionAborted):
            if p.target == state:
                return event.recorded_at
    return None


def _last_action(events: list[Event]) -> str | None:
    for event in reversed(events):
        if event.type == ev.TRANSITION_STARTED:
            return str(ev.TransitionStarted.from_payload(event.payload).trigger)
    return None


def _last_transition_from(events: list[Event]) -> str | None:
    for event in reversed(events):
        if event.type == ev.TRANSITION_STARTED:
            return str(ev.TransitionStarted.from_payload(event.payload).source)
    return None


def _task_job(events: list[Event], rec: Resource, attr: str) -> str | None:
    """The job id a step of the transition in progress recorded in ``attr``."""
    assert rec.in_progress is not None
    job: str | None = None
    for event in events:
        if event.version <= rec.in_progress.started_version:
            continue
        if event.type == ev.ATTRIBUTES_SET:
            values = ev.AttributesSet.from_payload(event.payload).values
            if attr in values and values[attr] is not None:
                job = str(values[attr])
    return job


def _parse_time(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ---------------------------------------------------------------------------- the pass
Source = ListingSource | SimSource | CommandSource | PackSource


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
        fix: FixChoice | frozenset[str] = FixChoice(),
        limit: int | None = None,
        should_stop: Callable[[], bool] = lambda: False,
        max_fix_share: float = DEFAULT_MAX_FIX_SHARE,
        read_only: bool = False,
        now: datetime | None = None,
        listings: Mapping[str, Override] | None = None,
        jobs: Mapping[str, Override] | None = None,
        intake: Intake | None = None,
        lease_alive: Callable[[str], bool] | None = None,
    ) -> None:
        self.journal = journal
        self.registry = registry
        self.backend = backend
        self.pattern = pattern
        self.fix = fix if isinstance(fix, FixChoice) else FixChoice(fix, fix)
        if read_only and self.fix:
            raise UsageError("--read-only journals nothing, so it cannot --fix")
        if not 0 <= max_fix_share <= 1:
            raise UsageError(f"--max-fix-share {max_fix_share}: a share between 0 and 1")
        self.limit = limit
        self.should_stop = should_stop
        self.max_fix_share = max_fix_share
        self.read_only = read_only
        self.fixed_now = now
        self.listings = dict(listings or {})
        self.jobs_overrides = dict(jobs or {})
        self.intake = intake
        self.lease_alive = lease_alive or self._lease_alive
        self._cursor = 0
        for name in (*self.listings, *self.jobs_overrides):
            spec = registry.get(name).spec
            if spec.observe is None or spec.observe.listing is None:
                raise UsageError(f"--listing/--jobs {name}: kind {name} declares no listing")
        if pattern:
            head = pattern.split("/", 1)[0]
            if not set("*?[") & set(head):
                registry.get(head)

    def _lease_alive(self, rid: str) -> bool:
        import time

        lease = self.journal.get_lease(rid)
        return lease is not None and lease.expires_at > time.time()

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

    def _is_final(self, rec: Resource) -> bool:
        if rec.kind not in self.registry:
            return False
        return self.registry.get(rec.kind).spec.state(rec.state).final

    def _source(self, kind: Kind, records: dict[str, Resource]) -> Source | None:
        obs = kind.spec.observe
        if obs is None:
            return None
        if obs.listing is not None:
            return ListingSource(
                kind,
                self.backend,
                records,
                listing=self.listings.get(kind.name),
                jobs=self.jobs_overrides.get(kind.name),
                is_final=self._is_final,
            )
        reader = pack_reader(kind.name)
        if reader is not None:
            return PackSource(kind, self.backend, reader)
        if hasattr(self.backend, "inventory_by_host"):
            return SimSource(kind, self.backend)
        if obs.command is not None:
            return CommandSource(kind, self.backend)
        return None

    def run_pass(self) -> PassReport:
        from fleetlog.engine.model.patterns import select

        now = self.fixed_now or datetime.now(UTC)
        report = PassReport(now=now.isoformat().replace("+00:00", "Z"), read_only=self.read_only)
        records = replay_all(self.journal, self.registry)
        sources: dict[str, Source] = {}
        universe: set[str] = set()
        for kind in self._kinds():
            ids = {rid for rid, rec in records.items() if rec.kind == kind.name}
            source = self._source(kind, records)
            if source is None:
                report.skipped["unobservable"].extend(sorted(select(self.pattern, ids)))
                continue
            sources[kind.name] = source
            if isinstance(source, ListingSource):
                ids |= {f"{kind.name}/{n}" for n in source.orphans(set(records))}
                report.notes.extend(source.notes())
            elif isinstance(source, SimSource):
                ids |= {f"{kind.name}/{n}" for n in source.orphans(set(records))}
            elif ids:
                report.notes.append(
                    f"{kind.name}: orphans not checked: the {source.name} backend runs "
                    "its observe command per resource and cannot list"
                )
            universe |= ids
        chosen = self._window(select(self.pattern, universe))
        report.universe = len(universe)
        planned: list[tuple[str, Kind, list[Finding]]] = []
        for rid in chosen:
            if self.should_stop():
                report.notes.append("stopped before the end of the pass")
                break
            kind = self.registry.get(split_id(rid)[0])
            report.checked += 1
            report.resources.append(rid)
            outcome = self._classify_id(rid, kind, records, sources[kind.name], now)
            if isinstance(outcome, str):
                if outcome == "in_sync":
                    report.in_sync += 1
                else:
                    report.skipped[outcome].append(rid)
                continue
            planned.append((rid, kind, outcome))
        self._brake(planned, report)
        for rid, kind, findings in planned:
            self._record(rid, kind, findings, records, sources[kind.name], now, report)
        return report

    # -------------------------------------------------------------- the brake
    def _brake(self, planned: list[tuple[str, Kind, list[Finding]]], report: PassReport) -> None:
        checked: dict[str, int] = {}
        for rid in report.resources:
            k = split_id(rid)[0]
            checked[k] = checked.get(k, 0) + 1
        to_fix: dict[str, int] = {}
        for _rid, kind, findings in planned:
            if any(self._will_fix(f, kind) for f in findings):
                to_fix[kind.name] = to_fix.get(kind.name, 0) + 1
        for name, n in sorted(to_fix.items()):
            share = n / max(1, checked.get(name, 1))
            if n > 1 and share > self.max_fix_share:
                why = (
                    f"brake: the pass would fix {n} of the {checked[name]} {name} resources "
                    f"it checked ({share:.0%} > {self.max_fix_share:.0%}); nothing of kind "
                    f"{name} was fixed. A backend that lost that much at once is more "
                    "likely broken than drifted: check it, then fix with a larger "
                    "--max-fix-share or a narrower pattern"
                )
                report.braked[name] = why
                report.notes.append(why)

    def _will_fix(self, f: Finding, kind: Kind) -> bool:
        """Whether ``f`` is to be fixed (before the brake)."""
        if not f.fixable:
            return False
        wanted = "orphan_delete" if f.cls == "orphan" and self.fix.wants("orphan_delete") else f.cls
        if not self.fix.wants(wanted):
            if self.fix.everything and wanted in FINAL_FIXES:
                f.held = (
                    f"the fix ends {f.resource} ({f.fix_to}): name the class "
                    f"(--fix {f.cls}), 'all' never ends a resource"
                )
            return False
        ends = f.fix_to is not None and kind.spec.state(f.fix_to).final
        if ends and not self.fix.named_explicitly(f.cls):
            f.held = (
                f"the fix moves {f.resource} into final state {f.fix_to}: name the class "
                f"(--fix {f.cls}), 'all' never ends a resource"
            )
            return False
        return True

    # -------------------------------------------------------------- classification
    def _classify_id(
        self,
        rid: str,
        kind: Kind,
        records: dict[str, Resource],
        source: Source,
        now: datetime,
    ) -> list[Finding] | str:
        rec = records.get(rid)
        if rec is None:
            return self._orphan(rid, kind, source, records)
        return self._classify(rec, kind, records, source, now)

    def _verdict(self, rec: Resource, records: dict[str, Resource], source: Source) -> Verdict:
        if isinstance(source, ListingSource):
            return source.verdict(rec)
        host = resource_host(rec, records)
        if isinstance(source, SimSource):
            return source.verdict(rec, host)
        return source.verdict(rec, host, records)

    def _evidence(
        self, verdict: Verdict, mapped: str | None, rec: Resource | None
    ) -> dict[str, Any]:
        e: dict[str, Any] = {
            "journal_state": rec.state if rec else None,
            "journal_version": rec.version if rec else None,
            "source": verdict.source,
            "host": verdict.host,
        }
        if isinstance(verdict, Seen | Absent):
            if verdict.command is not None:
                e["command"] = verdict.command
            if verdict.output is not None:
                e["output"] = verdict.output
        if isinstance(verdict, Seen):
            e.update(observed=verdict.status, raw_sha256=verdict.raw_sha256, mapped_state=mapped)
            if verdict.target is not None:
                e["listing_target"] = verdict.target
        elif isinstance(verdict, Absent):
            e.update(observed=None, raw_sha256=verdict.raw_sha256, absent=verdict.proof)
        else:
            e.update(
                observed=None,
                unknown=verdict.reason,
                raw_sha256=verdict.raw_sha256 or digest(verdict.reason),
            )
        return e

    def _classify(
        self,
        rec: Resource,
        kind: Kind,
        records: dict[str, Resource],
        source: Source,
        now: datetime,
    ) -> list[Finding] | str:
        spec = kind.spec
        obs = spec.observe
        assert obs is not None
        if rec.in_progress is not None:
            return self._pending_task(rec, kind, source, now)
        verdict = self._verdict(rec, records, source)
        state = rec.state
        is_final = spec.state(state).final
        if isinstance(verdict, Seen) and status_is_unknown(obs, verdict.status):
            verdict = Unknown(
                f"the backend reports {verdict.status!r}: it cannot tell ({rec.id})",
                verdict.host,
                verdict.raw_sha256,
                verdict.source,
            )
        mapped = map_status(spec, verdict.status) if isinstance(verdict, Seen) else None
        evidence = self._evidence(verdict, mapped, rec)
        observed = verdict.status if isinstance(verdict, Seen) else None
        host = verdict.host

        def finding(cls: str, fix_to: str | None, unfixable: str | None = None) -> Finding:
            return Finding(
                rec.id, cls, state, observed, mapped, host, dict(evidence), fix_to, unfixable
            )

        if isinstance(verdict, Unknown):
            if is_final or state == spec.initial:
                # The journal claims nothing in the backend (not built yet, or gone):
                # an unknown backend cannot contradict it.
                return "in_sync"
            return [finding("unknown", None, verdict.reason)]
        if state in obs.building and not is_final:
            return self._building(rec, kind, verdict, source, now, finding)
        if isinstance(verdict, Absent):
            if state == spec.initial or is_final:
                return "in_sync"  # not built yet, or gone as the journal says
            return self._stale(rec, kind, finding)
        # Seen.
        if is_final:
            f = finding("orphan", None, f"the journal has {rec.id} in final state {state}")
            f.unfixable += "; delete it in the backend by hand"  # type: ignore[operator]
            return [f]
        found: list[Finding] = []
        comparable = True
        if mapped != state:
            if state in observable_states(spec):
                if mapped is None:
                    found.append(
                        finding("unsynced", None, f"status {observed!r} is not in the observe map")
                    )
                else:
                    found.append(finding("unsynced", mapped))
            elif mapped is not None and spec.state(mapped).error and self._in_build(rec, spec):
                found.append(finding("build_error", mapped))
            else:
                comparable = False
        found.extend(self._attributes(rec, kind, verdict, finding))
        return found or ("in_sync" if comparable else "not_comparable")

    def _in_build(self, rec: Resource, spec: MachineSpec) -> bool:
        if rec.state == spec.initial:
            return True
        return _last_transition_from(self.journal.read_stream(rec.id)) == spec.initial

    def _stale(
        self, rec: Resource, kind: Kind, finding: Callable[..., Finding]
    ) -> list[Finding] | str:
        obs = kind.spec.observe
        assert obs is not None
        for rule in obs.absent_ok:
            if rec.state in rule.states:
                action = _last_action(self.journal.read_stream(rec.id))
                if action not in rule.unless:
                    return "in_sync"  # absent, as a resource in this state may be
        final = final_state(kind.spec)
        if final is None:
            return [finding("stale", None, f"kind {kind.name} has no final state")]
        f: Finding = finding("stale", final)
        action = _last_action(self.journal.read_stream(rec.id))
        if action is not None:
            f.evidence["last_action"] = action
        return [f]

    def _building(
        self,
        rec: Resource,
        kind: Kind,
        verdict: Seen | Absent,
        source: Source,
        now: datetime,
        finding: Callable[..., Finding],
    ) -> list[Finding] | str:
        """Synnefo's ``get_build_status``: a build is judged against its job."""
        obs = kind.spec.observe
        assert obs is not None and obs.job_attr is not None
        if not isinstance(source, ListingSource):
            return "building"
        jobs, why = source.jobs_for(rec)
        job_id = rec.params.get(obs.job_attr)
        events = self.journal.read_stream(rec.id)
        since = _entered_at(events, rec.state)
        age = (now - _parse_time(since)).total_seconds() if since else None
        within_grace = age is not None and age < obs.grace
        build: dict[str, Any] = {"job": job_id, "grace_s": obs.grace, "age_s": age}
        if jobs is None:
            f = finding("unknown", None, f"the backend's jobs are unknown: {why}")
            f.evidence["build"] = build
            return [f]
        job: Job | None = jobs.get(str(job_id)) if job_id not in (None, "") else None
        if job is None:
            status = "not_enqueued" if job_id in (None, "") else "lost"
            if within_grace:
                return "building"  # the job may not be enqueued (or listed) yet
        elif job.outcome == "pending":
            return "building"
        elif job.outcome == "error":
            status = "failed"
        else:
            status = "finished"
        build["status"] = status
        if job is not None:
            build.update(job_status=job.status, ops=list(job.ops), ended=job.ended)
        if status in ("failed", "lost", "not_enqueued"):
            ops = list(job.ops) if job is not None else []
            target = job_rule_state(kind.spec, ops or _create_ops(kind.spec), "error")
            if target is None:
                target = next((s.name for s in kind.spec.states if s.error), None)
            f = finding(
                "build_error",
                target,
                None if target else f"kind {kind.name} has no error state",
            )
            f.evidence["build"] = build
            return [f]
        # The job finished: Synnefo skips a job that ended after the listing was read.
        if job is not None and job.ended is not None and _parse_time(job.ended) >= now:
            return "building"
        if isinstance(verdict, Absent):
            out = self._stale(rec, kind, finding)
            if isinstance(out, list):
                for f in out:
                    f.evidence["build"] = build
            return out
        mapped = map_status(kind.spec, verdict.status)
        if mapped == rec.state:
            return "in_sync"
        f = finding("unsynced", mapped, None if mapped else f"status {verdict.status!r} unmapped")
        f.evidence["build"] = build
        return [f, *self._attributes(rec, kind, verdict, finding)]

    def _attributes(
        self, rec: Resource, kind: Kind, verdict: Seen, finding: Callable[..., Finding]
    ) -> list[Finding]:
        """One ``unsynced_GROUP`` finding per compare group whose fields differ."""
        from fleetlog.engine.model.params import coerce

        obs = kind.spec.observe
        assert obs is not None
        out: list[Finding] = []
        for group in obs.compares:
            diffs: dict[str, dict[str, Any]] = {}
            fix: dict[str, Any] = {}
            problems: list[str] = []
            for param_name, field_name in group.pairs:
                if field_name not in verdict.fields:
                    continue  # the listing does not carry it: nothing to compare
                backend_value = verdict.fields[field_name]
                journal_value = rec.params.get(param_name)
                param = kind.spec.param(param_name)
                try:
                    typed = coerce(param, _as_param_value(param.type, backend_value), rec.id)
                except FleetlogError:
                    typed = None
                    if _same(journal_value, backend_value):
                        continue
                    problems.append(
                        f"{param_name} {text_of(backend_value)!r} is not a "
                        f"{param.type_label}"
                        + (f" of ({', '.join(param.choices)})" if param.choices else "")
                    )
                else:
                    if typed == journal_value:
                        continue
                    fix[param_name] = typed
                diffs[param_name] = {
                    "journal": journal_value,
                    "backend": backend_value,
                    "field": field_name,
                }
            if not diffs:
                continue
            f: Finding = finding(f"unsynced_{group.group}", None)
            f.evidence["attributes"] = diffs
            f.evidence["raw_sha256"] = digest(repr(sorted(diffs.items())))
            if problems:
                f.unfixable = f"unknown {group.group}: " + "; ".join(problems)
            else:
                f.fix_attrs = fix
            out.append(f)
        return out

    def _pending_task(
        self, rec: Resource, kind: Kind, source: Source, now: datetime
    ) -> list[Finding] | str:
        """Synnefo's ``reconcile_pending_task``: a task whose job has ended."""
        obs = kind.spec.observe
        assert obs is not None and rec.in_progress is not None
        if obs.job_attr is None or not isinstance(source, ListingSource):
            return "in_progress"
        events = self.journal.read_stream(rec.id)
        job_id = _task_job(events, rec, obs.job_attr)
        if job_id is None or self.lease_alive(rec.id):
            return "in_progress"
        jobs, why = source.jobs_for(rec)
        evidence: dict[str, Any] = {
            "journal_state": rec.state,
            "journal_version": rec.version,
            "task": rec.in_progress.trigger,
            "step": rec.in_progress.step,
            "job": job_id,
            "source": source.name,
            "host": None,
            "observed": None,
        }
        if jobs is None:
            evidence["raw_sha256"] = digest(str(why))
            return [
                Finding(
                    rec.id,
                    "unknown",
                    rec.state,
                    None,
                    None,
                    None,
                    evidence,
                    unfixable=f"the backend's jobs are unknown: {why}",
                )
            ]
        job = jobs.get(job_id)
        if job is not None and not job.final:
            return "in_progress"
        evidence["job_status"] = job.status if job is not None else None
        evidence["raw_sha256"] = digest(f"{job_id}:{evidence['job_status']}")
        f = Finding(rec.id, "pending_task", rec.state, None, None, None, evidence)
        if self.intake is None:
            f.unfixable = f"resume it: fleetlog resume {rec.id}"
        else:
            f.fix_run = "resume"
        return [f]

    def _orphan(
        self, rid: str, kind: Kind, source: Source, records: dict[str, Resource]
    ) -> list[Finding] | str:
        from fleetlog.engine.model.params import coerce, resolve

        name = split_id(rid)[1]
        obs = kind.spec.observe
        assert obs is not None
        fields: Mapping[str, Any] = {}
        target: str | None = None
        if isinstance(source, ListingSource):
            hit = source.orphans(set(records)).get(name)
            if hit is None:
                return "in_sync"  # gone from both since the listing
            row, tl = hit
            verdict: Verdict = source._seen(row, tl)
            fields, target = row.fields, tl.target
        elif isinstance(source, SimSource):
            found = source.found.get(name)
            if found is None:
                return "in_sync"
            host, _status = found
            verdict = source.verdict(
                Resource(id=rid, kind=kind.name, name=name, state="", params={}), host
            )
        else:
            return "in_sync"
        if isinstance(verdict, Seen) and status_is_unknown(obs, verdict.status):
            verdict = Unknown(f"status {verdict.status!r}", verdict.host, verdict.raw_sha256)
        mapped = map_status(kind.spec, verdict.status) if isinstance(verdict, Seen) else None
        evidence = self._evidence(verdict, mapped, None)
        observed = verdict.status if isinstance(verdict, Seen) else None
        f = Finding(rid, "orphan", None, observed, mapped, verdict.host, evidence, mapped)
        if not isinstance(verdict, Seen):
            f.unfixable = f"its status is unknown: {getattr(verdict, 'reason', '')}"
            return [f]
        if mapped is None:
            f.unfixable = f"status {observed!r} is not in the observe map"
            return [f]
        given: dict[str, Any] = {}
        for param_name, field_name in obs.compared().items():
            if field_name in fields:
                param = kind.spec.param(param_name)
                try:
                    given[param_name] = coerce(
                        param, _as_param_value(param.type, fields[field_name]), rid
                    )
                except FleetlogError as exc:
                    f.unfixable = f"cannot adopt it with the backend's {field_name}: {exc}"
                    return [f]
        ref_param = obs.listing.on if obs.listing is not None else None
        if ref_param is not None and target is not None:
            given[ref_param] = target
        host_param = next((p for p in kind.spec.params if p.name == "host"), None)
        if host_param is not None and "host" not in given and verdict.host is not None:
            if host_param.type == "ref" and host_param.ref_kind:
                ref = _resource_on(host_param.ref_kind, verdict.host, records)
                if ref is not None:
                    given["host"] = ref
            elif host_param.type == "str":
                given["host"] = verdict.host
        try:
            f.params = resolve(kind.spec.params, given, rid)
        except FleetlogError as exc:
            f.unfixable = f"cannot create it: {exc}"
            return [f]
        if obs.delete_orphans is not None:
            f.evidence["delete_via"] = obs.delete_orphans
        return [f]

    # -------------------------------------------------------------- journaling
    def _record(
        self,
        rid: str,
        kind: Kind,
        findings: list[Finding],
        records: dict[str, Resource],
        source: Source,
        now: datetime,
        report: PassReport,
    ) -> None:
        """Journal the findings (those not already standing), then fix what is wanted;
        a resource that moved meanwhile is re-read and classified again."""
        for attempt in range(RECHECKS):
            if attempt:
                rec = load_resource(self.journal, self.registry, rid)
                if rec is not None:
                    records[rid] = rec
                else:
                    records.pop(rid, None)
                outcome = self._classify_id(rid, kind, records, source, now)
                if isinstance(outcome, str):
                    if outcome == "in_sync":
                        report.in_sync += 1
                    else:
                        report.skipped[outcome].append(rid)
                    return
                findings = outcome
                for f in findings:
                    self._will_fix(f, kind)
            try:
                self._journal(rid, findings, records)
                for f in findings:
                    if kind.name not in report.braked and self._will_fix(f, kind):
                        self._fix(f, kind)
                    elif kind.name in report.braked and f.fixable and self.fix.wants(f.cls):
                        f.held = report.braked[kind.name]
            except ConcurrencyConflict:
                continue
            report.findings.extend(findings)
            return
        report.skipped["moved"].append(rid)

    def _journal(self, rid: str, findings: list[Finding], records: dict[str, Resource]) -> None:
        rec = records.get(rid)
        version = rec.version if rec is not None else self.journal.stream_version(rid)
        if rec is None and load_resource(self.journal, self.registry, rid) is not None:
            # Created since this pass read the journal: look at it again as a record.
            raise ConcurrencyConflict(stream=rid, expected=version, actual=version)
        standing = self._standing(rid, version)
        new: list[Finding] = []
        for f in findings:
            prior = standing.get(f.key())
            if prior is not None:
                f.new, f.detected_seq, f.detected_id = False, prior.seq, prior.event_id
            else:
                new.append(f)
        if self.read_only or not new:
            self._at = version
            return
        drafts = [
            ev.new_event(
                ev.DriftDetected(
                    cls=f.cls,
                    resource=f.resource,
                    evidence=f.evidence,
                    fix=self._fix_description(f),
                    unfixable=f.unfixable,
                )
            )
            for f in new
        ]
        recorded = self.journal.append(rid, drafts, expected_version=version)
        for f, event in zip(new, recorded, strict=True):
            f.detected_seq, f.detected_id = event.seq, event.event_id
        self._at = recorded[-1].version

    @staticmethod
    def _fix_description(f: Finding) -> dict[str, Any] | None:
        if not f.fixable:
            return None
        fix: dict[str, Any] = {}
        if f.fix_to is not None:
            fix["to"] = f.fix_to
        if f.fix_attrs is not None:
            fix["attributes"] = f.fix_attrs
        if f.fix_run is not None:
            fix["run"] = f.fix_run
        return fix

    def _standing(self, rid: str, version: int) -> dict[tuple[Any, ...], Event]:
        """The findings journaled since the stream's last other event, by key: a finding
        already standing is not journaled again."""
        if version == 0:
            return {}
        events = self.journal.read_stream(rid)
        if not events or events[-1].version != version:
            raise ConcurrencyConflict(
                stream=rid, expected=version, actual=events[-1].version if events else 0
            )
        out: dict[tuple[Any, ...], Event] = {}
        for event in reversed(events):
            p = ev.read(event)
            if not isinstance(p, ev.DriftDetected):
                break
            old = p.evidence or {}
            key = (
                p.cls,
                old.get("observed"),
                old.get("raw_sha256"),
                old.get("journal_state"),
                repr(sorted((old.get("attributes") or {}).items())),
            )
            out.setdefault(key, event)
        return out

    def _fix(self, f: Finding, kind: Kind) -> None:
        assert f.detected_id is not None or self.read_only
        finding = {"id": f.detected_id, "class": f.cls, "observed": f.observed}
        version = self._at
        if f.cls == "orphan":
            created = ev.ResourceCreated(
                kind=kind.name,
                params=f.params or {},
                state=f.fix_to,
                definition_hash=kind.spec.definition_hash,
                finding=finding,
            )
            recorded = self._append(f, created, version)
            f.fixed, f.fix_seq = True, recorded.seq
            if self.fix.wants("orphan_delete"):
                self._delete_orphan(f, kind)
            return
        if f.fix_run == "resume":
            assert self.intake is not None
            outcome = self.intake.resume(f.resource)
            f.fixed = outcome.ok
            f.evidence["resumed"] = outcome.status
            if not f.fixed:
                f.held = f"resumed, and the transition ended {outcome.status}"
            return
        if f.fix_attrs is not None:
            previous = {k: f.evidence["attributes"][k]["journal"] for k in f.fix_attrs}
            payload: ev.Payload = ev.AttributesSet(
                values=f.fix_attrs, previous=previous, finding={"id": f.detected_id, "class": f.cls}
            )
        else:
            payload = ev.StateReconciled(source=f.journal_state, target=f.fix_to, finding=finding)
        recorded = self._append(f, payload, version)
        f.fixed, f.fix_seq = True, recorded.seq

    def _append(self, f: Finding, payload: ev.Payload, version: int) -> Event:
        # A ConcurrencyConflict here leaves the finding standing (it was true when seen)
        # and the fix unapplied: the resource moved, and the caller re-checks it.
        event = ev.new_event(payload, causation_id=f.detected_id)
        recorded = self.journal.append(f.resource, [event], expected_version=version)[0]
        self._at = recorded.version
        return recorded

    def _delete_orphan(self, f: Finding, kind: Kind) -> None:
        obs = kind.spec.observe
        trigger = obs.delete_orphans if obs is not None else None
        if trigger is None or self.intake is None:
            f.held = (
                f"adopted; kind {kind.name} declares no 'delete orphans via', so it is left "
                "in the backend"
                if trigger is None
                else "adopted; no runner to delete it"
            )
            return
        try:
            outcome = self.intake.fire(f.resource, trigger, causation_id=f.detected_id)
        except FleetlogError as exc:
            f.held = f"adopted; deleting it via {trigger} was refused: {exc}"
            return
        f.fix_run = trigger
        f.evidence["deleted_via"] = {"trigger": trigger, "outcome": outcome.status}
        if not outcome.ok:
            f.held = f"adopted; {trigger} ended {outcome.status}"


def _create_ops(spec: MachineSpec) -> list[str]:
    """The operations of the kind's job rules that lead out of a build (fallback when the
    job itself is gone): every operation with an ``error`` rule."""
    obs: ObserveSpec | None = spec.observe
    if obs is None:
        return []
    return [r.operation for r in obs.job_rules if "error" in r.statuses]


def _as_param_value(param_type: str, value: Any) -> Any:
    """A backend field as the journal's params hold it: lists comma-joined for text
    params, single-element lists unwrapped for numbers."""
    if isinstance(value, list | tuple):
        if param_type in ("int", "float") and len(value) == 1:
            return value[0]
        return text_of(value)
    return value


def _same(journal_value: Any, backend_value: Any) -> bool:
    return text_of(journal_value) == text_of(backend_value)


def _resource_on(kind: str, host: str, records: Mapping[str, Resource]) -> str | None:
    from fleetlog.engine.model.values import host_of

    direct = f"{kind}/{host}"
    if direct in records:
        return direct
    for rid, rec in sorted(records.items()):
        if rec.kind == kind and host_of(rec) == host:
            return rid
    return None


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
    if report.braked:
        parts.append(f"brake on {', '.join(sorted(report.braked))}")
    tail = "drift remains" if report.drift_remaining else "no drift"
    if report.read_only:
        tail += " (read-only: nothing journaled)"
    return "reconcile: " + ", ".join(parts) + f"; {tail}"
