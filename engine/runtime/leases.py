"""Leases on resources for the duration of a transition, and the fences they give.

A lease has an owner, an expiry and a fencing token (Ironic's reservation, pcocc's etcd
key). Leases are taken in one global order (sorted resource ids) so two transitions that
lock overlapping sets cannot deadlock, renewed by a heartbeat thread while steps run, and
released at the end. A lease whose owner died is broken by the next claimant: after its
expiry, or at once when the owner is provably gone (``owners``). Every acquisition,
release and break is journaled on the locked resource's stream.

A lease is only as good as its fencing (Kleppmann, "How to do distributed locking"): a
holder paused past its expiry wakes believing it still holds it. So every append made
under a lease carries its ``Fence`` and the journal refuses it, atomically, once the
token is superseded (``FenceBook`` tells the runner's writer which fence each resource's
appends are under); and a holder whose last successful renewal is older than the TTL
less a safety margin does not start its next step (``LeaseSet.fenced``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from fleetlog.engine.model import events as ev
from fleetlog.engine.runtime.owners import new_owner, owner_is_dead
from fleetlog.journal.base import (
    Fence,
    Fenced,
    Journal,
    Lease,
    LeaseAppending,
    LeaseHeld,
    NewEvent,
    fence_of,
)
from fleetlog.journal.leases import LeaseRow, decide_acquire, iso

DEFAULT_TTL = float(os.environ.get("FLEETLOG_LEASE_TTL", "30"))
#: Of the TTL, the share a holder keeps in hand: it stops starting steps once its last
#: renewal is older than ``ttl * (1 - SAFETY)`` (renewals fall due every third of it).
SAFETY = 0.2
#: Test hook of the fault suite: with it set, holders never fence themselves (no age
#: check, no heed to a refused renewal), so the suite can show the journal's refusal
#: alone stopping a paused holder.
NO_SELF_FENCE_ENV = "FLEETLOG_TEST_NO_SELF_FENCE"
_NO_SELF_FENCE = bool(os.environ.get(NO_SELF_FENCE_ENV))

__all__ = [
    "DEFAULT_TTL",
    "Claim",
    "FenceBook",
    "LeaseSet",
    "new_owner",
    "owner_is_dead",
]


class FenceBook:
    """The lease under which each resource's appends are made, for one runner's writer.

    Set when a lease is taken, dropped when it is released. A lease lost to another
    owner keeps its (stale) fence here on purpose: the journal refuses what is appended
    under it, which is how a holder that did not notice learns it."""

    def __init__(self) -> None:
        self._fences: dict[str, Fence] = {}
        self._lock = threading.Lock()

    def hold(self, lease: Lease) -> None:
        with self._lock:
            self._fences[lease.resource] = fence_of(lease)

    def drop(self, lease: Lease) -> None:
        with self._lock:
            if self._fences.get(lease.resource) == fence_of(lease):
                del self._fences[lease.resource]

    def get(self, resource: str) -> Fence | None:
        return self._fences.get(resource)


@dataclass(frozen=True)
class Claim:
    """A lease decided on but not yet taken: taken with the append that records it."""

    lease: Lease
    seen: LeaseRow | None  # the row it was decided on; taking it fails if that changed
    events: list[NewEvent]  # lock.broken?, lock.acquired


class LeaseSet:
    """The leases one transition holds, kept alive by a heartbeat thread."""

    def __init__(
        self,
        journal: Journal,
        owner: str,
        resources: Iterable[str],
        *,
        ttl: float = DEFAULT_TTL,
        correlation_id: str | None = None,
        fences: FenceBook | None = None,
        parent: LeaseSet | None = None,
    ) -> None:
        self.journal = journal
        self.owner = owner
        self.resources = sorted(set(resources))
        self.ttl = ttl
        self.correlation_id = correlation_id
        self.fences = fences if fences is not None else FenceBook()
        #: The leases of the transition that started this one (``ensure``): held for it.
        self.parent = parent
        self.held: dict[str, Lease] = {}
        self.lost: str | None = None
        #: The tokens of leases lost to another owner (for messages and step.started).
        self._lost_tokens: dict[str, int] = {}
        self.next_renewal = 0.0
        #: When every held lease was last known good (taken or renewed), monotonic.
        self.renewed_at = 0.0
        #: ``lock.*`` events of ``acquire(defer=...)`` leases, for the caller's append.
        self.deferred: dict[str, list[NewEvent]] = {}
        #: Leases whose ``lock.released`` the caller journaled (``release_events``).
        self._release_journaled: set[str] = set()

    def acquire(
        self, wait: float = 0.0, wait_for: Iterable[str] = (), defer: Iterable[str] = ()
    ) -> None:
        """Take every lease in order. Leases in ``wait_for`` are waited for up to ``wait``
        seconds when a live owner holds them; any other held lease fails at once.

        For the resources in ``defer`` the ``lock.acquired`` (and any ``lock.broken``)
        events are not appended here but kept in ``deferred`` for the caller to journal
        in its own first append (the executor: with ``transition.started``), which saves
        an append per transition. Until ``journaled`` is called for one, its release
        journals nothing: a lease whose acquisition never reached the journal leaves no
        trace there."""
        patient = set(wait_for)
        postponed = set(defer)
        try:
            for rid in self.resources:
                deadline = time.monotonic() + (wait if rid in patient else 0.0)
                while True:
                    try:
                        self._take(rid, defer=rid in postponed)
                        break
                    except LeaseHeld:
                        if time.monotonic() >= deadline:
                            raise
                        time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        except BaseException:
            self.release()
            raise
        if self.held:
            self.next_renewal = time.monotonic() + self.interval
            HEARTBEAT.add(self)

    def _take(self, rid: str, defer: bool = False) -> None:
        steal = None
        try:
            lease, broken = self.journal.acquire_lease(rid, self.owner, self.ttl)
        except LeaseHeld:
            # Held and unexpired: break it only if its owner is a dead process here.
            current = self.journal.get_lease(rid)
            if current is not None:  # (None: released meanwhile; just ask again)
                if current.owner == self.owner or not owner_is_dead(current.owner):
                    raise
                steal = current.owner
            lease, broken = self.journal.acquire_lease(rid, self.owner, self.ttl, steal_from=steal)
        self._holding(rid, lease)
        events = self._lock_events(lease, broken, stolen=steal is not None)
        if defer:
            self.deferred[rid] = events
        else:
            self.journal.append(rid, events, fence=fence_of(lease))

    def _holding(self, rid: str, lease: Lease) -> None:
        self.held[rid] = lease
        self.fences.hold(lease)
        if len(self.held) == 1:
            self.renewed_at = time.monotonic()

    def _lock_events(self, lease: Lease, broken: Lease | None, stolen: bool) -> list[NewEvent]:
        events = []
        if broken is not None:
            events.append(
                ev.new_event(
                    ev.LockBroken(
                        previous_owner=broken.owner,
                        previous_token=broken.token,
                        reason="owner process is gone" if stolen else "lease expired",
                        owner=self.owner,
                        token=lease.token,
                    ),
                    correlation_id=self.correlation_id,
                )
            )
        events.append(
            ev.new_event(
                ev.LockAcquired(owner=self.owner, token=lease.token, ttl=self.ttl),
                correlation_id=self.correlation_id,
            )
        )
        return events

    def plan_claim(self, rid: str, rows: LeaseAppending) -> Claim:
        """The lease on ``rid`` that its first append will take with
        ``rows.append_taking_lease``, decided from the lease row as stored, with the
        ``lock.*`` events that record it. ``LeaseHeld`` if a live owner holds it; a dead
        owner's lease is broken, as ``acquire`` does."""
        seen = rows.lease_row(rid)
        now = time.time()
        steal = None
        if seen is not None and seen[0] not in (None, self.owner) and seen[2] > now:
            if not owner_is_dead(seen[0]):
                raise LeaseHeld(resource=rid, owner=seen[0], expires_at=iso(seen[2]))
            steal = seen[0]
        lease, broken = decide_acquire(rid, seen, self.owner, self.ttl, now, steal_from=steal)
        return Claim(lease, seen, self._lock_events(lease, broken, stolen=steal is not None))

    def claimed(self, rid: str, lease: Lease) -> None:
        """The append holding ``plan_claim``'s lease and events is written."""
        self._holding(rid, lease)
        if self.next_renewal == 0.0:
            self.next_renewal = time.monotonic() + self.interval
            HEARTBEAT.add(self)

    def released(self, rid: str) -> None:
        """The caller freed ``rid``'s lease and journaled its ``lock.released``."""
        self._release_journaled.add(rid)
        lease = self.held.pop(rid, None)
        if lease is not None:
            self.fences.drop(lease)

    def journaled(self, rid: str) -> None:
        """The caller appended ``deferred[rid]``: the lease is on the record now."""
        self.deferred.pop(rid, None)

    def release_events(self, rid: str) -> list[NewEvent]:
        """``lock.released`` for ``rid``, for the caller to journal with its last event
        (the executor: with ``transition.completed``); once it says so
        (``release_journaled``), ``release`` only frees the lease. Empty if ``rid`` is not
        held or its acquisition was never journaled."""
        lease = self.held.get(rid)
        if lease is None or rid in self.deferred or rid in self._release_journaled:
            return []
        return [self._released(lease)]

    def release_journaled(self, rid: str) -> None:
        self._release_journaled.add(rid)

    def _released(self, lease: Lease) -> NewEvent:
        return ev.new_event(
            ev.LockReleased(owner=self.owner, token=lease.token),
            correlation_id=self.correlation_id,
        )

    def token(self, rid: str) -> int | None:
        lease = self.held.get(rid)
        if lease is not None:
            return lease.token
        if rid in self._lost_tokens:
            return self._lost_tokens[rid]
        return None if self.parent is None else self.parent.token(rid)

    def fenced(self, rid: str) -> Fenced | None:
        """Why this transition must not start another step on ``rid``, or None: a lease
        of its own (or its parent's) was lost, or was last renewed so long ago that it
        may have expired and been taken (a process paused past its TTL)."""
        if _NO_SELF_FENCE:
            return None
        leases: LeaseSet | None = self
        while leases is not None:
            if leases.lost is not None:
                return Fenced(
                    resource=rid, owner=leases.owner, token=self.token(rid), reason=leases.lost
                )
            if leases.held:
                age = time.monotonic() - leases.renewed_at
                if age > leases.ttl * (1.0 - SAFETY):
                    return Fenced(
                        resource=rid,
                        owner=leases.owner,
                        token=self.token(rid),
                        reason=f"its last renewal was {age:.1f}s ago, too close to the "
                        f"lease's {leases.ttl:g}s to be sure it still holds",
                    )
            leases = leases.parent
        return None

    @property
    def interval(self) -> float:
        return max(self.ttl / 3.0, 0.02)

    def renew(self) -> None:
        """Extend every held lease (called by the heartbeat thread)."""
        asked = time.monotonic()  # what a renewal proves is the state when it was asked
        for rid, lease in list(self.held.items()):
            try:
                self.held[rid] = self.journal.renew_lease(lease, self.ttl)
            except LeaseHeld as exc:
                self.lost = f"its renewal was refused: {exc}"
                self._lost_tokens[rid] = lease.token
                self.held.pop(rid, None)
            except Exception as exc:  # journal closed or unreachable: stop renewing
                self.lost = f"lease renewal failed: {exc}"
                HEARTBEAT.remove(self)
                return
        if self.lost is None:
            self.renewed_at = asked
        self.next_renewal = time.monotonic() + self.interval

    def release(self) -> None:
        HEARTBEAT.remove(self)
        for rid, lease in list(self.held.items()):
            if rid not in self.deferred and rid not in self._release_journaled:
                try:  # journaled under the lease: a lost lease is not ours to release
                    self.journal.append_releasing_lease(rid, [self._released(lease)], lease)
                except Fenced:
                    pass
            else:
                self.journal.release_lease(lease)
            self.held.pop(rid, None)
            self.fences.drop(lease)


class _Heartbeat:
    """One thread per process renews every live ``LeaseSet`` when it falls due.

    A thread per transition cost more than the transition's own bookkeeping at fan-out
    widths of a hundred; one sleeper that wakes for the earliest renewal does not. After
    a fork the child starts its own thread on first use.
    """

    def __init__(self) -> None:
        self._sets: set[LeaseSet] = set()
        self._cond = threading.Condition()
        self._pid = -1
        self._wake_at = 0.0  # when the thread next wakes by itself (monotonic)

    def add(self, lease_set: LeaseSet) -> None:
        with self._cond:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._sets = set()
                threading.Thread(target=self._run, daemon=True, name="lease-heartbeat").start()
            self._sets.add(lease_set)
            # Wake the thread only if this set falls due before it would wake anyway: a
            # fan-out adds a set per resource, and waking to rescan them all each time
            # cost a hundred-wide run more than the renewals themselves.
            if lease_set.next_renewal < self._wake_at:
                self._cond.notify()

    def remove(self, lease_set: LeaseSet) -> None:
        with self._cond:
            self._sets.discard(lease_set)

    def _run(self) -> None:
        while True:
            with self._cond:
                now = time.monotonic()
                due = [ls for ls in self._sets if ls.next_renewal <= now]
                if not due:
                    soonest = min((ls.next_renewal for ls in self._sets), default=now + 1.0)
                    timeout = min(1.0, max(0.01, soonest - now))
                    self._wake_at = now + timeout
                    self._cond.wait(timeout=timeout)
                    self._wake_at = 0.0  # awake: an add need not notify
                    continue
            for lease_set in due:
                lease_set.renew()


HEARTBEAT = _Heartbeat()
