"""Running transitions step by step with every start and outcome journaled.

The order of effects is fixed: validate (table, guards, params) before anything is
written; journal ``step.started`` before a side effect and its outcome after (in the same
append as the next step's start, ``Runner.hold``); so at any instant the journal says
exactly which side effects may have happened. Fresh runs and resumed runs share one path
(``_drive``), which reads where the transition stands from the journal
(``progress.reconstruct``) and continues from there.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dsl import to_text
from dsl.spec import StepSpec
from engine import actions
from engine.kinds import Kind, KindRegistry, TriggerNotAllowed, did_you_mean
from engine.leases import DEFAULT_TTL, Claim, LeaseSet, new_owner
from engine.params import resolve
from engine.progress import Progress, StepState, reconstruct
from engine.records import Resource, split_id
from engine.replay import load_resource
from engine.values import Scope
from fleetlog.errors import FleetlogError, UsageError
from journal.base import (
    ConcurrencyConflict,
    Event,
    Journal,
    Lease,
    LeaseAppending,
    LeaseChanged,
    LeaseHeld,
    NewEvent,
)
from journal.ids import uuid7

if TYPE_CHECKING:
    from engine.backends.base import Backend


class NoSuchResource(UsageError):
    msg_fmt = "no resource %(resource)r in the journal%(hint)s"


class Busy(FleetlogError):
    msg_fmt = "%(resource)s is busy: %(trigger)s in progress (step %(step)s)"
    exit_code = 1


class GuardRefused(UsageError):
    msg_fmt = "%(resource)s: %(trigger)s is not allowed: its guard `when %(guard)s` is false"


class NotInProgress(UsageError):
    msg_fmt = "%(resource)s has no transition in progress"


class AlreadyStarted(FleetlogError):
    msg_fmt = "%(resource)s: command %(command_id)s was started by someone else"
    exit_code = 1


class Stopping(Exception):
    """The runner was asked to stop (a worker's SIGTERM): raised between steps, before
    the next side effect, so the transition stays in progress for someone to resume.
    Not a ``FleetlogError``: no step may catch it and journal it as the step's failure."""


@dataclass(frozen=True)
class Outcome:
    """How one command on one resource ended."""

    resource: str
    trigger: str
    status: str  # completed | skipped | failed | attention | rejected
    state: str | None = None
    step: str | None = None
    error: str | None = None
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "skipped")


CRASH_AFTER_ENV = "FLEETLOG_TEST_CRASH_AFTER_EVENTS"


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
    ) -> None:
        self.journal = journal
        self.registry = registry
        self.backend = backend
        self.lease_ttl = lease_ttl
        self.lock_wait = lock_wait
        self.sleep = sleep
        #: The journal, when it can take a lease with the append that records it.
        self._lease_appends = journal if isinstance(journal, LeaseAppending) else None
        self._crash_after = int(os.environ.get(CRASH_AFTER_ENV, "0") or 0)
        self._appended = 0
        #: Outcomes waiting for the next append of their resource (``hold``). Keyed by
        #: resource: one thread drives a resource at a time (it holds its lease).
        self._held: dict[str, list[NewEvent]] = {}
        #: Set to stop every transition this runner drives before its next step.
        self.stopping = threading.Event()

    # ------------------------------------------------------------------ journaling
    def _append(
        self,
        rid: str,
        events: list[NewEvent],
        expected: int | None = None,
        *,
        take: Claim | None = None,
        release: Lease | None = None,
    ) -> list[Event]:
        """Append ``events`` to ``rid``, after any outcome still held for it (``hold``),
        taking the lease of ``take`` or dropping ``release`` with them.

        Returns the recorded ``events`` (not the held ones written with them)."""
        held = self._held.pop(rid, [])
        journal = self.journal
        try:
            if take is not None:
                assert self._lease_appends is not None  # only such journals make claims
                recorded = self._lease_appends.append_taking_lease(
                    rid, [*held, *events], take.lease, take.seen, expected
                )
            elif release is not None:
                recorded = journal.append_releasing_lease(rid, [*held, *events], release)
            else:
                recorded = journal.append(rid, [*held, *events], expected_version=expected)
        except BaseException:
            if held:  # nothing was written: keep them for the next append
                self._held[rid] = held + self._held.get(rid, [])
            raise
        if self._crash_after:
            # Test hook of the crash harness: die (SIGKILL, no cleanup) right after the
            # append holding the k-th event this process journaled, to prove resume
            # works from any instant. lock.* events are not counted (most are journaled
            # by the lease code, and the harness numbers the transition's own events).
            self._appended += sum(1 for e in recorded if not e.type.startswith("lock."))
            if self._appended >= self._crash_after:
                import signal

                os.kill(os.getpid(), signal.SIGKILL)
        return recorded[len(held) :]

    def hold(self, rid: str, type_: str, payload: dict[str, Any], correlation_id: str) -> None:
        """Journal a step's outcome with the next event of its transition rather than on
        its own: the next step's ``step.started`` (or ``transition.completed``) follows
        within microseconds with no backend call in between, and one append instead of
        two halves the journaling of a step. The guarantee that matters is unchanged:
        both are durable before the next side effect starts. Anything that waits or
        asks the backend first calls ``flush``. A crash in the gap leaves the step in
        doubt, exactly as a crash just before its outcome was written would."""
        event = NewEvent(type_, payload, correlation_id=correlation_id)
        self._held.setdefault(rid, []).append(event)

    def flush(self, rid: str) -> None:
        """Write the outcome ``hold`` kept back for ``rid``, if any."""
        if self._held.get(rid):
            self._append(rid, [])

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
        if t.when is not None and not actions.guard_holds(self.scope(rec, params, trigger), t.when):
            raise GuardRefused(resource=rid, trigger=trigger, guard=to_text(t.when))
        return rec, kind, params, dest

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
        ``fire --submit`` journaled for a worker (``engine.worker``): its transition is
        started after it, unless another worker already did (``AlreadyStarted``)."""
        given = dict(given or {})
        if command_id is not None and submitted is None:
            prior = self.journal.events_for_command(command_id)
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
        )
        if self._lease_appends is not None and leases.resources == [rid]:
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
                e.type != "command.accepted" for e in self.journal.events_for_command(command_id)
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
            if self._lease_appends is not None and rid in leases.resources:
                if rid not in leases.held:
                    claim = leases.plan_claim(rid, self._lease_appends)
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
            events = [
                NewEvent(
                    "command.accepted",
                    {
                        "trigger": trigger,
                        "params": dict(given),
                        "resource": rid,
                        "run": correlation_id,
                    },
                    **meta,
                ),
                NewEvent(
                    "transition.started",
                    {
                        "trigger": trigger,
                        "from": rec.state,
                        "to": dest,
                        "params": params,
                        "plan": kind.plan_data(trigger),
                        "failure": None
                        if t.on_failure is None
                        else {"state": t.on_failure.state, "undo": list(t.on_failure.undo)},
                        "definition_hash": kind.spec.definition_hash,
                        "locks": lock_ids,
                        "owner": leases.owner,
                        "token": token,
                    },
                    **meta,
                ),
            ]
            if skip_output is not None:
                live = replace(rec)
                kind.fire(live, trigger)
                events.append(
                    NewEvent(
                        "transition.completed",
                        {
                            "trigger": trigger,
                            "from": rec.state,
                            "to": live.state,
                            "skipped": f"probe holds: {t.skip_if.command if t.skip_if else ''}",
                            "output": scope.redact(skip_output)[-500:],
                        },
                        correlation_id=transition_id,
                        causation_id=causation_id,
                    )
                )
            if submitted is not None:
                events = events[1:]  # its command.accepted is in the journal already
            # command.accepted, then the lease (lock.broken?, lock.acquired), then the rest
            at = 0 if submitted is not None else 1
            events[at:at] = claim.events if claim is not None else leases.deferred.get(rid, [])
            try:
                recorded = self._append(rid, events, expected=rec.version, take=claim)
            except (ConcurrencyConflict, LeaseChanged):
                continue  # someone appended, or took or renewed the lease: look again
            if claim is not None:
                leases.claimed(rid, claim.lease)
            leases.journaled(rid)
            if skip_output is not None:
                return Outcome(rid, trigger, "skipped", dest, output=skip_output)
            # We just wrote the whole story so far: no need to read it back.
            started = next(e for e in recorded if e.type == "transition.started")
            return self._drive(rid, leases, rec, reconstruct(started, (), plan=t.steps))
        raise FleetlogError(f"{rid}: gave up after 20 concurrent modifications")

    def _prior_outcome(self, prior: list[Event], inherited: LeaseSet | None) -> Outcome:
        """A command submitted again (same command id): report, or continue, the original."""
        started = next((e for e in prior if e.type == "transition.started"), prior[0])
        rid = started.stream
        rec = self.load(rid)
        trigger = str(started.payload.get("trigger"))
        if rec.in_progress is not None and rec.in_progress.started_seq == started.seq:
            return self.resume(rid, inherited=inherited)
        for ev in self.journal.read_stream(rid):
            if (
                ev.seq > started.seq
                and ev.correlation_id == started.correlation_id
                and ev.type in ("transition.completed", "transition.failed")
            ):
                p = ev.payload
                if ev.type == "transition.completed":
                    return Outcome(
                        rid, trigger, "skipped" if p.get("skipped") else "completed", p.get("to")
                    )
                return Outcome(rid, trigger, "failed", p.get("to"), p.get("step"), p.get("error"))
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
        """Continue an interrupted transition from where its journal says it stopped."""
        prog = self.progress(rid)
        locks = set(prog.locks or [rid])
        held_by_parent = set(inherited.held) if inherited is not None else set()
        leases = LeaseSet(
            self.journal,
            new_owner(),
            locks - held_by_parent,
            ttl=self.lease_ttl,
            correlation_id=prog.transition_id,
        )
        leases.acquire(wait=self.lock_wait, wait_for=locks - {rid})
        try:
            # Read again under the lease: whoever held it may have moved the transition on.
            rec = self.load(rid)
            if rec.in_progress is None or rec.in_progress.started_seq != prog.started_seq:
                raise NotInProgress(resource=rid)
            return self._drive(rid, leases, rec, self.progress(rid, rec))
        finally:
            leases.release()

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
        return self._append(
            rid,
            [
                NewEvent(
                    "step.resolved",
                    {"step": step, "as": how, "reason": reason},
                    correlation_id=prog.transition_id,
                )
            ],
        )[0]

    # ------------------------------------------------------------------ the plan
    def _drive(self, rid: str, leases: LeaseSet, rec: Resource, prog: Progress) -> Outcome:
        try:
            return self._run_plan(rid, leases, rec, prog)
        finally:
            self.flush(rid)  # stopped between steps, or an error: the outcome still counts

    def _run_plan(self, rid: str, leases: LeaseSet, rec: Resource, prog: Progress) -> Outcome:
        scope = self.scope(rec, prog.params, prog.trigger)
        if prog.phase == "run" and prog.attention is None:
            for step in prog.plan:
                st = prog.steps[step.name]
                if st.status in ("succeeded", "skipped"):
                    continue
                result = self._step(rid, prog, step, st, scope, leases)
                if result != "done":
                    break
        if prog.attention is not None:
            att = prog.attention
            return Outcome(rid, prog.trigger, "attention", rec.state, att["step"], att["reason"])
        if prog.phase == "undo":
            return self._fail(rid, prog, scope, leases)
        kind = self.registry.get(rec.kind)
        if prog.definition_hash == kind.spec.definition_hash:
            live = replace(rec, in_progress=None)
            kind.fire(live, prog.trigger)
            to = live.state
        else:
            # Started under an earlier definition: the recorded plan runs to the end,
            # destination included, even if the file now sends the trigger elsewhere.
            to = prog.target
        done = {"trigger": prog.trigger, "from": rec.state, "to": to}
        self.finish(rid, leases, "transition.completed", done, prog)
        last = prog.plan[-1].name if prog.plan else None
        output = prog.steps[last].output if last else ""
        return Outcome(rid, prog.trigger, "completed", to, last, output=output)

    def _in_doubt(
        self, rid: str, prog: Progress, step: StepSpec, st: StepState, scope: Scope
    ) -> str | None:
        """A step journaled as started with no outcome: 'done' if its check shows the
        effect, 'attention' if re-running it could repeat a side effect, else None (run
        it again)."""
        safe_to_rerun = step.idempotent or step.action.kind in ("ensure", "wait")
        lost = (
            f"step {step.name!r} started (attempt {st.attempts}) but its outcome was never recorded"
        )
        reason = None
        if step.check is not None:
            self.flush(rid)
            verdict, out = actions.probe_verdict(self.backend, scope, step.check)
            if verdict:
                found = {"step": step.name, "attempt": st.attempts, "via": "check", "output": out}
                self.record(rid, "step.succeeded", found, prog.transition_id)
                st.status = "succeeded"
                return "done"
            if verdict is None and not safe_to_rerun:
                reason = (
                    f"{lost}, and its check could not run ({out}); running it again "
                    "could repeat its side effect"
                )
        elif not safe_to_rerun:
            reason = (
                f"{lost}; it is not idempotent and has no check, so running it again "
                "could repeat its side effect"
            )
        if reason is None:
            return None
        self.record(
            rid, "attention.required", {"step": step.name, "reason": reason}, prog.transition_id
        )
        prog.attention = {"step": step.name, "reason": reason}
        return "attention"

    def _step(
        self,
        rid: str,
        prog: Progress,
        step: StepSpec,
        st: StepState,
        scope: Scope,
        leases: LeaseSet,
    ) -> str:
        """Run one step to an outcome: 'done', 'failed' or 'attention'."""
        corr = prog.transition_id
        base = {"step": step.name}
        if st.status == "in_doubt":
            decided = self._in_doubt(rid, prog, step, st, scope)
            if decided is not None:
                return decided
        if step.when is not None and not actions.guard_holds(scope, step.when):
            self.record(rid, "step.skipped", {**base, "reason": "when"}, corr)
            st.status = "skipped"
            return "done"
        retry = step.retry
        max_attempts = 1 + (retry.count if retry else 0)
        while True:
            if step.check is not None and st.status != "in_doubt":
                self.flush(rid)  # the probe asks the backend: write what we know first
                holds, out = actions.probe(self.backend, scope, step.check)
                if holds:
                    self.record(
                        rid, "step.skipped", {**base, "reason": "check", "output": out}, corr
                    )
                    st.status = "skipped"
                    return "done"
            st.attempts += 1
            self._check_fence(leases)
            started = self.record(
                rid,
                "step.started",
                {**base, "attempt": st.attempts, "token": leases.token(rid)},
                corr,
            )
            st.status = "in_doubt"
            st.started_event_id = started.event_id
            try:
                res = self._act(rid, prog, step, scope, started, leases)
            except FleetlogError as exc:  # a missing secret, a dangling ref: the step fails
                res = actions.ActionResult(False, error=scope.redact(str(exc)))
            outcome: dict[str, Any] = {
                **base,
                "attempt": st.attempts,
                "output": res.output,
                "exit_code": res.exit_code,
            }
            if res.command:
                outcome["command"] = res.command
            if res.ok:
                outcome["duration"] = round(res.duration, 6)
                self.hold(rid, "step.succeeded", outcome, corr)
                st.status = "succeeded"
                st.output = res.output
                return "done"
            will_retry = st.attempts < max_attempts
            self.record(
                rid, "step.failed", {**outcome, "error": res.error, "will_retry": will_retry}, corr
            )
            if not will_retry:
                st.status = "failed"
                prog.failed_step = step.name
                prog.error = res.error
                return "failed"
            st.status = "pending"
            assert retry is not None
            self.sleep(retry.every * (retry.backoff ** (st.attempts - 1)))

    def _check_fence(self, leases: LeaseSet) -> None:
        if self.stopping.is_set():
            raise Stopping(f"{', '.join(leases.resources)}: stopped before the next step")
        if leases.lost:
            raise LeaseHeld(f"lease lost, stopping before the next side effect: {leases.lost}")

    def _act(
        self,
        rid: str,
        prog: Progress,
        step: StepSpec,
        scope: Scope,
        started: Event,
        leases: LeaseSet,
    ) -> actions.ActionResult:
        a = step.action
        if a.kind == "run":
            return actions.run_command(self.backend, scope, a.command, a.on, step.timeout)
        if a.kind == "call":
            return actions.run_call(self.backend, scope, a, self.registry.plugins)
        if a.kind == "wait":
            return actions.run_wait(self.backend, scope, a, self.sleep)
        if a.kind == "ensure":
            from engine.ensure import ensure

            return ensure(
                self, scope, a, causation_id=started.event_id, leases=leases, timeout=step.timeout
            )
        return actions.ActionResult(False, error=f"unknown action {a.kind!r}")

    def _fail(self, rid: str, prog: Progress, scope: Scope, leases: LeaseSet) -> Outcome:
        from engine.undo import fail_transition

        return fail_transition(self, rid, prog, scope, leases)

    def finish(
        self, rid: str, leases: LeaseSet, type_: str, payload: dict[str, Any], prog: Progress
    ) -> None:
        """Journal the transition's last event with its lease's ``lock.released``."""
        event = NewEvent(
            type_, payload, correlation_id=prog.transition_id, causation_id=prog.causation_id
        )
        released = leases.release_events(rid)
        lease = leases.held.get(rid)
        if released and lease is not None:  # free it in the same step
            self._append(rid, [event, *released], release=lease)
            leases.released(rid)
        else:
            self._append(rid, [event, *released])
            leases.release_journaled(rid)

    def record(
        self,
        rid: str,
        type_: str,
        payload: dict[str, Any],
        correlation_id: str | None,
        causation_id: str | None = None,
    ) -> Event:
        """Journal one event of a running transition (with the crash-test hook)."""
        event = NewEvent(type_, payload, correlation_id=correlation_id, causation_id=causation_id)
        return self._append(rid, [event])[0]
