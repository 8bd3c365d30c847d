"""The runner's intake: validate a command, start its transition, resume or resolve one.

The order of effects is fixed: validate (table, guards, params) before anything is
written; journal ``transition.started`` under the resource's lease; then hand the task
(``Task``) to the step loop (``steps.drive``), which journals ``step.started`` before each
side effect and its outcome after. So at any instant the journal says exactly which side
effects may have happened. Fresh runs and resumed runs share the step loop, which reads
where the transition stands from the journal (``progress.reconstruct``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from fleetlog.dsl import explain, to_text
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import Kind, KindRegistry, TriggerNotAllowed, did_you_mean
from fleetlog.engine.model.params import resolve
from fleetlog.engine.model.progress import Progress, reconstruct
from fleetlog.engine.model.records import Resource, split_id
from fleetlog.engine.model.replay import load_resource
from fleetlog.engine.model.values import Scope, host_of
from fleetlog.engine.runtime import actions, dryrun, preflight, steps
from fleetlog.engine.runtime.leases import DEFAULT_TTL, LeaseSet, new_owner
from fleetlog.engine.runtime.outcome import (
    AlreadyStarted,
    Busy,
    CommandReused,
    GuardRefused,
    NoSuchResource,
    NotInProgress,
    Outcome,
    WrongBackend,
)
from fleetlog.engine.runtime.task import Task
from fleetlog.engine.runtime.writer import JournalWriter
from fleetlog.errors import FleetlogError, UsageError
from fleetlog.journal import ConcurrencyConflict, Event, Journal
from fleetlog.journal.base import LeaseChanged
from fleetlog.journal.ids import uuid7

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend


class Runner:
    """Fires, resumes and resolves transitions on one journal and one backend."""

    def __init__(
        self,
        journal: Journal,
        registry: KindRegistry,
        backend: Backend,
        *,
        lease_ttl: float = DEFAULT_TTL,
        lock_wait: float = 300.0,
        sleep: Callable[[float], None] = time.sleep,
        before_first_start: Callable[[], object] | None = None,
        notice: Callable[[str], object] | None = None,
    ) -> None:
        """``before_first_start`` is called once, before the first transition this
        runner starts or resumes is journaled (the CLI binds the journal to its backend
        there, so a command refused by validation journals nothing). ``notice`` gets a
        one-line warning the operator should see (the CLI prints it on stderr)."""
        self.journal = journal
        self.registry = registry
        self.backend = backend
        self.lease_ttl = lease_ttl
        self.lock_wait = lock_wait
        self.sleep = sleep
        self.writer = JournalWriter(journal)
        self._before_first_start = before_first_start
        self._first_start_lock = threading.Lock()
        self.notice = notice
        self._told: set[object] = set()
        #: Set to stop every transition this runner drives before its next step.
        self.stopping = threading.Event()

    def load(self, rid: str) -> Resource:
        kind_name, _ = split_id(rid)
        self.registry.get(kind_name)
        rec = load_resource(self.journal, self.registry, rid)
        if rec is None:
            raise NoSuchResource(
                resource=rid, hint=did_you_mean(rid, self.journal.streams(kind_name + "/"))
            )
        return rec

    def scope(self, rec: Resource, params: Mapping[str, Any], trigger: str) -> Scope:
        kind = self.registry.get(rec.kind)
        return Scope(
            record=rec,
            params={**rec.params, **params},
            secret_names=tuple(s.name for s in kind.spec.secrets),
            load_ref=lambda ref_id: load_resource(self.journal, self.registry, ref_id),
            trigger=trigger,
        )

    # ------------------------------------------------------------------ validation
    def validate(
        self, rid: str, trigger: str, given: Mapping[str, Any]
    ) -> tuple[Resource, Kind, dict[str, Any], str]:
        """Everything that can refuse a command, before anything is written."""
        rec = self.load(rid)
        kind = self.registry.get(rec.kind)
        try:
            t = kind.transition(trigger)
        except KeyError:
            raise UsageError(
                f"{rid}: kind {kind.name} has no trigger {trigger!r}"
                + did_you_mean(trigger, [x.trigger for x in kind.spec.transitions])
            ) from None
        if rec.in_progress is not None:
            raise Busy(resource=rid, trigger=rec.in_progress.trigger, step=rec.in_progress.step)
        dest = kind.allowed(rec.state, trigger)
        if dest is None:
            allowed = kind.triggers_from(rec.state)
            raise TriggerNotAllowed(
                resource=rid,
                trigger=trigger,
                state=rec.state,
                hint=f" (allowed: {', '.join(allowed) or 'none'})",
            )
        params = resolve(t.params, given, f"{rid} {trigger}")
        scope = self.scope(rec, params, trigger)
        if t.when is not None and not actions.guard_holds(scope, t.when):
            why = explain(t.when, scope.lookup)
            raise GuardRefused(resource=rid, trigger=trigger, guard=to_text(t.when), why=why)
        preflight.check(kind, t, scope, self.backend, self._lookups)
        return rec, kind, params, dest

    @property
    def _lookups(self) -> preflight.Lookups:
        """What the preflight reads about the resources an ``ensure`` would act on."""

        def ensured_scope(rec: Resource, trigger: str) -> Scope:
            try:
                t = self.registry.get(rec.kind).transition(trigger)
                params = resolve(t.params, {}, f"{rec.id} {trigger}")
            except (KeyError, FleetlogError):
                params = {}  # refused when the ensure fires it; nothing to read ahead
            return self.scope(rec, params, trigger)

        return preflight.Lookups(
            load=lambda ref_id: load_resource(self.journal, self.registry, ref_id),
            kind=self.registry.get,
            scope=ensured_scope,
        )

    def check_trigger(self, rid: str, trigger: str, given: Mapping[str, Any]) -> None:
        """What refuses ``trigger`` for every resource of ``rid``'s kind alike (no such
        trigger, bad params), before a fan-out journals its plan; and what ``rid`` itself
        would need before its first step (a secret not set), when it could start now:
        every member is checked again when it starts."""
        kind = self.registry.get(split_id(rid)[0])
        try:
            t = kind.transition(trigger)
        except KeyError:
            raise UsageError(
                f"{rid}: kind {kind.name} has no trigger {trigger!r}"
                + did_you_mean(trigger, [x.trigger for x in kind.spec.transitions])
            ) from None
        params = resolve(t.params, given, f"{kind.name} {trigger}")
        rec = load_resource(self.journal, self.registry, rid)
        if rec is not None and rec.in_progress is None and kind.allowed(rec.state, trigger):
            scope = self.scope(rec, params, trigger)
            preflight.check(kind, t, scope, self.backend, self._lookups)

    def dry_run(
        self, rid: str, trigger: str, given: Mapping[str, Any] | None = None
    ) -> list[dryrun.PlannedStep]:
        """``fire --dry-run``: validated as ``fire`` would, then judged by read-only
        probes; nothing is journaled."""
        return self.dry_run_plan(rid, trigger, given).steps

    def dry_run_plan(
        self, rid: str, trigger: str, given: Mapping[str, Any] | None = None
    ) -> dryrun.DryRun:
        """``dry_run`` with where the resource would go (for the text form's header)."""
        rec, kind, params, dest = self.validate(rid, trigger, dict(given or {}))
        steps = dryrun.plan(
            self.backend, self.scope(rec, params, trigger), kind.transition(trigger)
        )
        return dryrun.DryRun(rid, trigger, rec.state, dest, steps)

    def _starting(self) -> None:
        if self._before_first_start is not None:
            with self._first_start_lock:
                hook, self._before_first_start = self._before_first_start, None
                if hook is not None:
                    hook()

    # ------------------------------------------------------------------ firing
    def fire(
        self,
        rid: str,
        trigger: str,
        given: Mapping[str, Any] | None = None,
        *,
        command_id: str | None = None,
        causation_id: str | None = None,
        correlation_id: str | None = None,
        inherited: LeaseSet | None = None,
        submitted: Event | None = None,
    ) -> Outcome:
        """Run ``trigger`` on ``rid``. ``submitted`` is the ``command.accepted`` event a
        ``fire --submit`` journaled for a worker (``ops.worker``): its transition is
        started after it, unless another worker already did (``AlreadyStarted``)."""
        given = dict(given or {})
        if command_id is not None and submitted is None:
            prior = self.prior_command(command_id, rid, trigger, given)
            if prior:
                return self._prior_outcome(prior, inherited)
        rec, kind, params, _dest = self.validate(rid, trigger, given)
        t = kind.transition(trigger)
        scope = self.scope(rec, params, trigger)
        lock_ids = {rid}
        for name in t.locks:
            if name != "self":
                ref = scope.params.get(name)
                if isinstance(ref, str):
                    lock_ids.add(ref)
        # A submitted command named its transition when it was accepted (audit joins
        # the two by that id).
        transition_id = (submitted.correlation_id if submitted else None) or uuid7()
        held_by_parent = set(inherited.held) if inherited is not None else set()
        leases = LeaseSet(
            self.journal,
            new_owner(),
            lock_ids - held_by_parent,
            ttl=self.lease_ttl,
            correlation_id=transition_id,
            fences=self.writer.fences,
            parent=inherited,
        )
        if self.writer.lease_appends is not None and leases.resources == [rid]:
            pass  # the resource's own lease is taken by the start's append (_start)
        else:
            leases.acquire(wait=self.lock_wait, wait_for=lock_ids - {rid}, defer={rid})
        try:
            return self._start(
                rid,
                trigger,
                given,
                transition_id,
                leases,
                sorted(lock_ids),
                command_id or uuid7(),
                causation_id,
                correlation_id,
                submitted,
                validated=(rec, kind, params, _dest),
            )
        finally:
            leases.release()

    def _start(
        self,
        rid: str,
        trigger: str,
        given: Mapping[str, Any],
        transition_id: str,
        leases: LeaseSet,
        lock_ids: list[str],
        command_id: str,
        causation_id: str | None,
        correlation_id: str | None,
        submitted: Event | None = None,
        validated: tuple[Resource, Kind, dict[str, Any], str] | None = None,
    ) -> Outcome:
        """Journal the start of the transition under its lease, then drive it.

        ``validated`` is what ``validate`` said before the lease was taken. It need not be
        asked again: the start is appended with the version it was read at as the
        expected version, so if the resource moved meanwhile the append is refused and
        the loop validates afresh. (The lease's own ``lock.acquired`` is held back for
        this append precisely so that taking the lease does not move the resource.)
        """
        for _ in range(20):
            if submitted is not None and any(
                e.type != ev.COMMAND_ACCEPTED for e in self.journal.events_for_command(command_id)
            ):
                raise AlreadyStarted(resource=rid, command_id=command_id)
            if validated is not None:
                (rec, kind, params, dest), validated = validated, None
            else:
                rec, kind, params, dest = self.validate(rid, trigger, given)
            t = kind.transition(trigger)
            scope = self.scope(rec, params, trigger)
            # The lease this append takes, when the journal can take it in the same
            # transaction (one round trip through the writer instead of two).
            claim = None
            lease_appends = self.writer.lease_appends
            if lease_appends is not None and rid in leases.resources:
                if rid not in leases.held:
                    claim = leases.plan_claim(rid, lease_appends)
            token = claim.lease.token if claim is not None else leases.token(rid)
            skip_output = None
            if t.skip_if is not None:
                holds, out = actions.probe(self.backend, scope, t.skip_if)
                if holds:
                    skip_output = out
            meta = {
                "command_id": command_id,
                "causation_id": causation_id,
                "correlation_id": transition_id,
            }
            failure = None
            if t.on_failure is not None:
                failure = {"state": t.on_failure.state, "undo": list(t.on_failure.undo)}
            events = [
                ev.new_event(
                    ev.CommandAccepted(
                        trigger=trigger, params=dict(given), resource=rid, run=correlation_id
                    ),
                    **meta,
                ),
                ev.new_event(
                    ev.TransitionStarted(
                        trigger=trigger,
                        source=rec.state,
                        target=dest,
                        params=params,
                        plan=kind.plan_data(trigger),
                        failure=failure,
                        definition_hash=kind.spec.definition_hash,
                        locks=lock_ids,
                        owner=leases.owner,
                        token=token,
                        backend=self.backend.name,
                        host=host_of(rec),
                    ),
                    **meta,
                ),
            ]
            if skip_output is not None:
                live = replace(rec)
                kind.fire(live, trigger)
                skipped = ev.TransitionCompleted(
                    trigger=trigger,
                    source=rec.state,
                    target=live.state,
                    skipped=f"probe holds: {t.skip_if.command if t.skip_if else ''}",
                    output=scope.redact(skip_output)[-500:],
                )
                events.append(
                    ev.new_event(skipped, correlation_id=transition_id, causation_id=causation_id)
                )
            # The first step's start rides with the transition's: nothing is decided
            # between them (no guard, no probe), and it is still durable before the
            # step's side effect. One durable commit fewer per transition.
            first = t.steps[0] if t.steps and skip_output is None else None
            if (
                first is not None
                and first.when is None
                and first.check is None
                and not self.stopping.is_set()
            ):
                opening = ev.StepStarted(step=first.name, attempt=1, token=token)
                events.append(ev.new_event(opening, correlation_id=transition_id))
            if submitted is not None:
                events = events[1:]  # its command.accepted is in the journal already
            # command.accepted, then the lease (lock.broken?, lock.acquired), then the rest
            at = 0 if submitted is not None else 1
            events[at:at] = claim.events if claim is not None else leases.deferred.get(rid, [])
            self._starting()
            try:
                recorded = self.writer.append(rid, events, expected=rec.version, take=claim)
            except (ConcurrencyConflict, LeaseChanged):
                continue  # someone appended, or took or renewed the lease: look again
            if claim is not None:
                leases.claimed(rid, claim.lease)
            leases.journaled(rid)
            if skip_output is not None:
                return Outcome(rid, trigger, "skipped", dest, output=skip_output)
            # We just wrote the whole story so far: no need to read it back.
            started = next(e for e in recorded if e.type == ev.TRANSITION_STARTED)
            opened = [e for e in recorded if e.type == ev.STEP_STARTED]
            prog = reconstruct(started, opened, plan=t.steps)
            return self._drive(rid, leases, rec, prog, opened=opened[0] if opened else None)
        raise FleetlogError(f"{rid}: gave up after 20 concurrent modifications")

    def prior_command(
        self, command_id: str, rid: str, trigger: str, given: Mapping[str, Any]
    ) -> list[Event]:
        """The events of ``command_id`` if it was given before (idempotent submit), or
        ``[]``; ``CommandReused`` if it was given for another resource, trigger or
        params."""
        prior = self.journal.events_for_command(command_id)
        accepted = next((e for e in prior if e.type == ev.COMMAND_ACCEPTED), None)
        if accepted is None:
            return prior
        was = ev.CommandAccepted.from_payload(accepted.payload)
        before = (accepted.stream, was.trigger, _canonical(was.params or {}))
        if before != (rid, trigger, _canonical(given)):
            raise CommandReused(
                command_id=command_id,
                seq=accepted.seq,
                actor=accepted.actor,
                original=_request(accepted.stream, str(was.trigger), was.params or {}),
                given=_request(rid, trigger, given),
            )
        return prior

    def _prior_outcome(self, prior: list[Event], inherited: LeaseSet | None) -> Outcome:
        """A command submitted again (same command id): report, or continue, the original."""
        started = next((e for e in prior if e.type == ev.TRANSITION_STARTED), prior[0])
        rid = started.stream
        rec = self.load(rid)
        trigger = str(started.payload.get("trigger"))
        if rec.in_progress is not None and rec.in_progress.started_seq == started.seq:
            return self.resume(rid, inherited=inherited)
        for later in self.journal.read_stream(rid):
            if later.seq <= started.seq or later.correlation_id != started.correlation_id:
                continue
            p = ev.read(later)
            if isinstance(p, ev.TransitionCompleted):
                status = "skipped" if p.skipped else "completed"
                return Outcome(rid, trigger, status, p.target)
            if isinstance(p, ev.TransitionFailed):
                return Outcome(rid, trigger, "failed", p.target, p.step, p.error)
        return Outcome(
            rid,
            trigger,
            "rejected",
            rec.state,
            error="command was accepted but its transition cannot be found",
        )

    # ------------------------------------------------------------------ resume
    def progress(self, rid: str, rec: Resource | None = None) -> Progress:
        """Where the transition in progress stands, from its own events only."""
        rec = rec or self.load(rid)
        ip = rec.in_progress
        if ip is None:
            raise NotInProgress(resource=rid)
        events = self.journal.read_stream(rid, from_version=max(1, ip.started_version))
        started = next(e for e in events if e.seq == ip.started_seq)
        return reconstruct(started, (e for e in events if e.seq > started.seq))

    def resume(self, rid: str, *, inherited: LeaseSet | None = None) -> Outcome:
        """Continue an interrupted transition from where its journal says it stopped, on
        the backend it started on (and nowhere else)."""
        prog = self.progress(rid)
        if prog.backend is not None and prog.backend != self.backend.name:
            raise WrongBackend(
                resource=rid,
                trigger=prog.trigger,
                started_on=prog.backend,
                where=f" ({prog.host})" if prog.host else "",
                backend=self.backend.name,
            )
        locks = set(prog.locks or [rid])
        held_by_parent = set(inherited.held) if inherited is not None else set()
        leases = LeaseSet(
            self.journal,
            new_owner(),
            locks - held_by_parent,
            ttl=self.lease_ttl,
            correlation_id=prog.transition_id,
            fences=self.writer.fences,
            parent=inherited,
        )
        leases.acquire(wait=self.lock_wait, wait_for=locks - {rid})
        try:
            # Read again under the lease: whoever held it may have moved the transition on.
            rec = self.load(rid)
            if rec.in_progress is None or rec.in_progress.started_seq != prog.started_seq:
                raise NotInProgress(resource=rid)
            self._starting()
            prog = self.progress(rid, rec)
            self._say_if_edited(prog)
            return self._drive(rid, leases, rec, prog)
        finally:
            leases.release()

    def tell(self, line: str, *, key: object = None) -> None:
        """Give ``notice`` a line for the operator, once per ``key`` when one is given
        (a fan-out failing a thousand resources the same way says it once)."""
        if self.notice is None:
            return
        if key is not None:
            with self._first_start_lock:
                if key in self._told:
                    return
                self._told.add(key)
        self.notice(line)

    def _say_if_edited(self, prog: Progress) -> None:
        """A transition started under another definition of its kind resumes the plan
        recorded when it started, never the file's: say so, in one line."""
        spec = self.registry.get(prog.resource.split("/", 1)[0]).spec
        if prog.definition_hash and prog.definition_hash != spec.definition_hash:
            self.tell(
                f"{prog.resource}: {spec.filename or spec.name} changed since its "
                f"{prog.trigger} started (definition {prog.definition_hash[:12]}, now "
                f"{spec.definition_hash[:12]}): resuming the plan recorded then "
                f"({len(prog.plan)} steps, to {prog.target}), not the file's"
            )

    def resolve(self, rid: str, step: str, how: str, reason: str) -> Event:
        """Journal an operator's decision about a step that needs attention."""
        if how not in ("done", "retry", "abort"):
            raise UsageError(f"--as {how!r}: choose done, retry or abort")
        if not reason.strip():
            raise UsageError("--reason is required: say why, it is journaled")
        prog = self.progress(rid)
        if step not in prog.steps:
            raise UsageError(
                f"{rid}: the transition in progress has no step {step!r}"
                + did_you_mean(step, prog.steps)
            )
        if prog.attention is None or prog.attention.get("step") != step:
            raise UsageError(f"{rid}: step {step!r} does not need attention")
        decision = ev.StepResolved(step=step, how=how, reason=reason)
        return self.writer.record(rid, decision, prog.transition_id)

    # ------------------------------------------------------------------ the plan
    def _drive(
        self,
        rid: str,
        leases: LeaseSet,
        rec: Resource,
        prog: Progress,
        *,
        opened: Event | None = None,
    ) -> Outcome:
        task = Task(
            rid=rid,
            record=rec,
            kind=self.registry.get(rec.kind),
            progress=prog,
            scope=self.scope(rec, prog.params, prog.trigger),
            leases=leases,
            backend=self.backend,
            writer=self.writer,
            plugins=self.registry.plugins,
            intake=self,
            sleep=self.sleep,
            stopping=self.stopping,
            opened=opened,
        )
        return steps.drive(task)


def _canonical(params: Mapping[str, Any]) -> str:
    """Params as journaled (JSON), so a request compares equal to its own record."""
    import json

    return json.dumps(dict(params), sort_keys=True, default=str)


def _request(rid: str, trigger: str, params: Mapping[str, Any]) -> str:
    shown = " ".join(f"--param {k}={v}" for k, v in sorted(params.items()))
    return f"`{trigger}` on {rid}" + (f" with {shown}" if shown else "")
