"""Workers: claim runnable work from a shared journal and run it, on as many hosts as like.

Two kinds of work are runnable:

* a *submitted command*: ``fleetlog fire --submit`` journals only ``command.accepted``
  (validated, idempotent by command id, and naming the transition id to come); a worker
  starts its transition by appending ``transition.started`` after it;
* an *interrupted transition*: in progress, not waiting for an operator, and with no
  live lease: released, expired, or held by a process of this host that is gone.

Claiming is the resource's lease (``runtime.leases``), nothing else: whoever takes it
runs the work, everyone else gets ``LeaseHeld`` and moves on, and a lease that outlives
its owner is broken by the next claimant with ``lock.broken`` journaled before it
resumes. Under the lease the worker looks again (was the command started meanwhile? is
the transition still the one it saw?) and every append checks the stream version, so
two workers never both start or both resume one transition.

What is runnable is folded incrementally from the journal (``WorkIndex``): the few event
types that start, end, reject or park work, read from the last seq seen. When idle a
worker waits for the next append, through ``LISTEN/NOTIFY`` on PostgreSQL and polling
on SQLite, and rechecks foreign leases now and then (their owner may have died on
another host, which nothing announces).

Stopping (SIGTERM): no new work is claimed; every transition in flight finishes the step
it is in, stops before its next side effect, releases its leases and stays in progress
for another worker; then ``run`` returns.
"""

from __future__ import annotations

import functools
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import TriggerNotAllowed, UnknownKind
from fleetlog.engine.runtime import (
    AlreadyStarted,
    Busy,
    NotInProgress,
    Outcome,
    Runner,
    Stopping,
    owner_is_dead,
)
from fleetlog.errors import UsageError
from fleetlog.journal.base import ConcurrencyConflict, Event, Journal, LeaseHeld
from fleetlog.journal.ids import uuid7

#: Threads validating a submission's resources at once (``submit_many``).
_VALIDATORS = 8

#: Validation failures that make a submitted command impossible, not just early.
_REJECTED = (UsageError, TriggerNotAllowed, UnknownKind)


def submit_many(
    runner: Runner,
    ids: list[str],
    trigger: str,
    given: dict[str, Any],
    *,
    command_id: str | None = None,
    run: str | None = None,
) -> list[Event]:
    """Journal ``trigger`` on each of ``ids`` as accepted, for a worker to run
    (``fire --submit``).

    Every resource is validated first, as ``fire`` would (one usage error journals
    nothing at all); a resource busy with another transition is fine, the command waits
    its turn. Then the submissions are appended together, in as few transactions as the
    journal allows: a thousand resources no longer queue a thousand commits ahead of the
    workers' own appends. Submitting a command id again returns the first submission's
    event and journals nothing; submitting it with another request is refused
    (``CommandReused``)."""

    def validate(rid: str) -> None:
        if command_id is not None:
            runner.prior_command(command_id, rid, trigger, given)
        try:
            runner.validate(rid, trigger, given)
        except Busy:
            pass  # queued behind the transition in progress; the worker validates again

    # A few at a time: on a shared journal each one is round trips to the database, and
    # a thousand in a row made the fleet wait for its own submission. ``map`` raises the
    # first refusal in the order given.
    with ThreadPoolExecutor(min(_VALIDATORS, max(1, len(ids)))) as pool:
        for _ in pool.map(validate, ids):
            pass
    appends = [
        (
            rid,
            [
                ev.new_event(
                    ev.CommandAccepted(
                        trigger=trigger, params=dict(given), resource=rid, run=run, submitted=True
                    ),
                    command_id=command_id or uuid7(),
                    correlation_id=uuid7(),  # the transition's id, so audit joins the two
                )
            ],
        )
        for rid in ids
    ]
    return [recorded[0] for recorded in runner.journal.append_many(appends)]


@dataclass
class WorkIndex:
    """What is runnable, folded from the vocabulary's ``WORK_TYPES`` events; ``refresh``
    reads only the events appended since the last call."""

    last_seq: int = 0
    pending: dict[str, Event] = field(default_factory=dict)  # command id -> accepted
    in_progress: dict[str, int] = field(default_factory=dict)  # resource -> started seq
    attention: set[str] = field(default_factory=set)

    def refresh(self, journal: Journal) -> bool:
        """Fold new events; True when there were any."""
        before = self.last_seq
        for event in journal.read_all(from_seq=self.last_seq, types=ev.WORK_TYPES):
            self.apply(event)
            self.last_seq = event.seq
        return self.last_seq != before

    def apply(self, event: Event) -> None:
        t, rid, cid = event.type, event.stream, event.command_id
        if t == ev.COMMAND_ACCEPTED:
            if cid is not None and ev.CommandAccepted.from_payload(event.payload).submitted:
                self.pending[cid] = event
        elif t == ev.COMMAND_REJECTED:
            self.pending.pop(cid or "", None)
        elif t == ev.TRANSITION_STARTED:
            self.pending.pop(cid or "", None)
            self.in_progress[rid] = event.seq
            self.attention.discard(rid)
        elif t in ev.TRANSITION_ENDS:
            self.in_progress.pop(rid, None)
            self.attention.discard(rid)
        elif t == ev.ATTENTION_REQUIRED:
            self.attention.add(rid)
        elif t == ev.STEP_RESOLVED:
            self.attention.discard(rid)

    def waiting_commands(self) -> Iterator[Event]:
        """The oldest submitted command of each resource that has nothing in progress."""
        seen: set[str] = set()
        for event in sorted(self.pending.values(), key=lambda e: e.seq):
            if event.stream in seen or event.stream in self.in_progress:
                continue
            seen.add(event.stream)
            yield event


@dataclass(frozen=True)
class Job:
    """One claim attempt: resume ``rid``, or start the submitted ``command``."""

    rid: str
    command: Event | None = None

    @property
    def label(self) -> str:
        if self.command is None:
            return f"{self.rid} (resume)"
        return f"{self.rid} {ev.CommandAccepted.from_payload(self.command.payload).trigger}"


@dataclass
class WorkerResult:
    outcomes: list[Outcome] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    #: ``label: error`` of each job that raised instead of ending in an outcome.
    errors: list[str] = field(default_factory=list)


class Worker:
    """Claims and runs work with up to ``parallel`` transitions at once.

    ``report`` is called (from worker threads, serialised) with each finished job's
    label and outcome text. ``idle_wait`` bounds one wait for new events, and
    ``lease_scan`` how often leases held by others are looked at again."""

    def __init__(
        self,
        runner: Runner,
        *,
        parallel: int = 4,
        idle_wait: float = 1.0,
        lease_scan: float = 0.5,
        report: Callable[[str, str], None] | None = None,
    ) -> None:
        self.runner = runner
        self.journal = runner.journal
        self.parallel = max(1, parallel)
        self.idle_wait = idle_wait
        self.lease_scan = lease_scan
        self.report = report or (lambda label, text: None)
        self.index = WorkIndex()
        self.result = WorkerResult()
        self._stop = threading.Event()
        self._stopping = False
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._running: dict[str, Future[None]] = {}
        self._next_scan = 0.0
        self._random = random.Random()

    # -- control -------------------------------------------------------------------------
    def stop(self) -> None:
        """Claim nothing more; in-flight transitions stop before their next step.

        Safe in a signal handler (``fleetlog worker`` calls it on SIGTERM): the handler
        runs on the main thread between two bytecodes, possibly while that thread holds
        the lock inside one of the events set here (``_wake.clear()`` in ``run``), and
        setting it there would wait on that lock forever. So the flag is a plain
        attribute, and the events are set from a thread of their own."""
        self._stopping = True
        threading.Thread(target=self._set_stopped, name="fleetlog-worker-stop").start()

    def _set_stopped(self) -> None:
        self._stop.set()
        self.runner.stopping.set()
        self._wake.set()

    @property
    def stopping(self) -> bool:
        return self._stopping or self._stop.is_set()

    # -- the loop ------------------------------------------------------------------------
    def run(self, once: bool = False) -> WorkerResult:
        """Claim and run work until stopped; with ``once``, until nothing is claimable and
        nothing is running (work held by live owners elsewhere is left to them)."""
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="fleetlog-worker") as pool:
            while not self._stop.is_set():
                self._wake.clear()
                self.index.refresh(self.journal)
                seen = self.index.last_seq
                claimed = self._dispatch(pool)
                with self._lock:
                    busy = bool(self._running)
                if claimed or busy:
                    # Something runs: look again when a job ends or a little later (new
                    # submissions, leases expiring elsewhere).
                    self._wake.wait(self.lease_scan)
                elif once:
                    break
                else:
                    self.journal.wait_for_append(seen, timeout=self._idle_timeout())
            with self._lock:
                running = list(self._running.values())
            for future in running:
                future.result()
        return self.result

    def _idle_timeout(self) -> float:
        # Transitions held by others may be orphaned by a host that died: look again
        # when their leases could have expired.
        if self.index.in_progress:
            return min(self.idle_wait, self.lease_scan)
        return self.idle_wait

    def _dispatch(self, pool: ThreadPoolExecutor) -> int:
        claimed = 0
        for job in self._jobs():
            with self._lock:
                if len(self._running) >= self.parallel:
                    break
                if job.rid in self._running:
                    continue
                future = pool.submit(self._run_job, job)
                self._running[job.rid] = future
            future.add_done_callback(functools.partial(self._done, job.rid))
            claimed += 1
        return claimed

    def _done(self, rid: str, _future: Future[None]) -> None:
        with self._lock:
            self._running.pop(rid, None)
        self._wake.set()

    def _jobs(self) -> Iterator[Job]:
        """Candidates, interrupted transitions first (they hold their resource). Leases
        are looked up for many candidates in one query, and only while slots are free:
        a worker's queries grow with the work it takes, not with the fleet."""
        with self._lock:
            mine = set(self._running)
        free = self.parallel - len(mine)
        if free <= 0:
            return
        now = time.monotonic()
        if now >= self._next_scan:
            self._next_scan = now + self.lease_scan
            held = [
                rid
                for rid in sorted(self.index.in_progress, key=self.index.in_progress.__getitem__)
                if rid not in mine and rid not in self.index.attention
            ]
            for rid in self._claimable(held):
                yield Job(rid)
        # Workers claim in different orders, so they do not all race for the same ones.
        waiting = [e for e in self.index.waiting_commands() if e.stream not in mine]
        self._random.shuffle(waiting)
        step = max(8, 2 * free)
        for start in range(0, len(waiting), step):
            chunk = waiting[start : start + step]
            claimable = set(self._claimable([e.stream for e in chunk]))
            for event in chunk:
                if event.stream in claimable:
                    yield Job(event.stream, event)

    def _claimable(self, rids: list[str]) -> list[str]:
        """Those of ``rids`` with no live lease (one query): a hint only, the lease itself
        decides."""
        if not rids:
            return []
        leases = self.journal.get_leases(rids)
        now = time.time()
        return [
            rid
            for rid in rids
            if (lease := leases.get(rid)) is None
            or lease.expires_at <= now
            or owner_is_dead(lease.owner)
        ]

    # -- one job -------------------------------------------------------------------------
    def _run_job(self, job: Job) -> None:
        try:
            outcome = self._start(job) if job.command is not None else self._resume(job.rid)
        except Stopping:
            with self._lock:
                self.result.stopped.append(job.rid)
            self.report(job.label, "stopped before its next step (shutting down)")
            return
        except (LeaseHeld, AlreadyStarted, NotInProgress, Busy, ConcurrencyConflict):
            return  # someone else has it, or it finished meanwhile
        except Exception as exc:  # one resource's failure must not stop the worker
            with self._lock:
                self.result.errors.append(f"{job.label}: {exc}")
            self.report(job.label, f"error: {exc}")
            return
        if outcome is None:
            return
        with self._lock:
            self.result.outcomes.append(outcome)
        if outcome.status == "rejected":
            text = f"rejected: {outcome.error}"
        else:
            text = f"{outcome.status} -> {outcome.state}"
            if outcome.error:
                text += f" ({outcome.step}: {outcome.error})"
        self.report(f"{outcome.resource} {outcome.trigger}", text)

    def _resume(self, rid: str) -> Outcome | None:
        rec = self.runner.load(rid)
        if rec.in_progress is None:
            return None
        if self.runner.progress(rid, rec).attention is not None:
            self.index.attention.add(rid)  # parked until an operator resolves it
            return None
        return self.runner.resume(rid)

    def _start(self, job: Job) -> Outcome | None:
        accepted = job.command
        assert accepted is not None and accepted.command_id is not None
        p = ev.CommandAccepted.from_payload(accepted.payload)
        version = self.journal.stream_version(job.rid)
        try:
            return self.runner.fire(
                job.rid,
                str(p.trigger),
                dict(p.params or {}),
                command_id=accepted.command_id,
                correlation_id=p.run,
                submitted=accepted,
            )
        except _REJECTED as exc:
            self._reject(accepted, version, str(exc))
            return Outcome(job.rid, str(p.trigger), "rejected", error=str(exc))

    def _reject(self, accepted: Event, version: int, reason: str) -> None:
        """Journal that a submitted command cannot run (its resource moved on, a guard
        is false...), at the version it was judged on: if anything was appended since,
        the conflict sends it back to be judged again."""
        if any(
            e.type != ev.COMMAND_ACCEPTED
            for e in self.journal.events_for_command(accepted.command_id or "")
        ):
            raise AlreadyStarted(resource=accepted.stream, command_id=accepted.command_id)
        trigger = ev.CommandAccepted.from_payload(accepted.payload).trigger
        rejected = ev.new_event(
            ev.CommandRejected(trigger=trigger, error=reason),
            command_id=accepted.command_id,
            correlation_id=accepted.correlation_id,
        )
        self.journal.append(accepted.stream, [rejected], expected_version=version)
