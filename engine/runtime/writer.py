"""Journaling a running transition: the order of effects, kept in one place.

A step's outcome is held back (``hold``) and written with the next event of its
transition: the next step's ``step.started`` (or ``transition.completed``) follows within
microseconds with no backend call in between, and one append instead of two halves the
journaling of a step. The guarantee that matters is unchanged: both are durable before
the next side effect starts. Anything that waits or asks the backend first calls
``flush``. A crash in the gap leaves the step in doubt, exactly as a crash just before its
outcome was written would.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Sequence

from fleetlog.engine.model import events as ev
from fleetlog.engine.runtime.leases import Claim, FenceBook, LeaseSet
from fleetlog.engine.runtime.reintroduce import reintroduced
from fleetlog.journal import Event, Fenced, Journal, Lease, NewEvent
from fleetlog.journal.base import LeaseAppending

#: Test hook of the crash harness (see ``JournalWriter._append``).
CRASH_AFTER_ENV = "FLEETLOG_TEST_CRASH_AFTER_EVENTS"


class JournalWriter:
    """Appends the events of the transitions one runner drives."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        #: The lease each resource's appends are made under (set by the LeaseSets).
        self.fences = FenceBook()
        #: The journal, when it can take a lease with the append that records it.
        self.lease_appends = journal if isinstance(journal, LeaseAppending) else None
        self._crash_after = int(os.environ.get(CRASH_AFTER_ENV, "0") or 0)
        self._appended = 0
        #: Outcomes waiting for the next append of their resource (``hold``). Keyed by
        #: resource: one thread drives a resource at a time (it holds its lease).
        self._held: dict[str, list[NewEvent]] = {}

    def append(
        self,
        rid: str,
        events: Sequence[NewEvent],
        expected: int | None = None,
        *,
        take: Claim | None = None,
        release: Lease | None = None,
    ) -> list[Event]:
        """Append ``events`` to ``rid``, after any outcome still held for it (``hold``),
        taking the lease of ``take`` or dropping ``release`` with them. Otherwise the
        append is fenced by the lease ``rid``'s appends are made under, if any: when
        it has been superseded the journal refuses it (``Fenced``) and what was held for
        ``rid`` is dropped, since this runner may never write for it again.

        Returns the recorded ``events`` (not the held ones written with them)."""
        held = self._held.pop(rid, [])
        batch = [*held, *events]
        try:
            if take is not None:
                assert self.lease_appends is not None  # only such journals make claims
                recorded = self.lease_appends.append_taking_lease(
                    rid, batch, take.lease, take.seen, expected
                )
            elif release is not None and not reintroduced("fencing"):
                recorded = self.journal.append_releasing_lease(rid, batch, release)
            else:
                fence = None if reintroduced("fencing") else self.fences.get(rid)
                recorded = self.journal.append(rid, batch, expected_version=expected, fence=fence)
        except Fenced:
            raise
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
                os.kill(os.getpid(), signal.SIGKILL)
        return recorded[len(held) :]

    def hold(self, rid: str, payload: ev.Payload, correlation_id: str) -> None:
        """Journal ``payload`` with the next event of ``rid`` (see the module's doc)."""
        self._held.setdefault(rid, []).append(ev.new_event(payload, correlation_id=correlation_id))

    def flush(self, rid: str) -> None:
        """Write the outcome ``hold`` kept back for ``rid``, if any."""
        if self._held.get(rid):
            self.append(rid, [])

    def record(
        self,
        rid: str,
        payload: ev.Payload,
        correlation_id: str | None,
        causation_id: str | None = None,
    ) -> Event:
        """Journal one event of a running transition."""
        event = ev.new_event(payload, correlation_id=correlation_id, causation_id=causation_id)
        return self.append(rid, [event])[0]

    def finish(
        self,
        rid: str,
        leases: LeaseSet,
        payload: ev.Payload,
        correlation_id: str,
        causation_id: str | None,
    ) -> None:
        """Journal the transition's last event with its lease's ``lock.released``."""
        event = ev.new_event(payload, correlation_id=correlation_id, causation_id=causation_id)
        released = leases.release_events(rid)
        lease = leases.held.get(rid)
        if released and lease is not None:  # free it in the same step
            self.append(rid, [event, *released], release=lease)
            leases.released(rid)
        else:
            self.append(rid, [event, *released])
            leases.release_journaled(rid)
