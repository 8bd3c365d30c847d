"""Lease decisions, separate from storage so every backend grants and breaks leases alike.

A lease row is ``(owner, token, expires_at)``; ``owner`` is None once released. The row
is kept after release so the fencing token keeps increasing for the resource: a new
holder always gets a larger token than any earlier holder, and a stale holder's writes
can be refused by comparing tokens.
"""

from __future__ import annotations

import time

from fleetlog.journal.base import Fence, Fenced, Lease, LeaseHeld

LeaseRow = tuple[str | None, int, float]  # (owner or None when released, token, expires_at)


def iso(unix: float) -> str:
    """A readable UTC time for messages."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(unix))


def decide_acquire(
    resource: str,
    current: LeaseRow | None,
    owner: str,
    ttl: float,
    now: float,
    steal_from: str | None = None,
) -> tuple[Lease, Lease | None]:
    """The lease ``owner`` gets and the expired lease it breaks, or ``LeaseHeld``.

    ``steal_from`` breaks an unexpired lease, but only while ``steal_from`` still holds
    it: the caller has proof that owner is dead (its process is gone), and the check
    happens inside the same transaction, so a lease re-taken meanwhile is not stolen."""
    if ttl <= 0:
        raise ValueError("lease ttl must be positive")
    if current is None:
        return Lease(resource, owner, 1, now + ttl), None
    held_by, token, expires_at = current
    if held_by is None:
        return Lease(resource, owner, token + 1, now + ttl), None
    if held_by == owner:
        return Lease(resource, owner, token, now + ttl), None
    if expires_at > now and held_by != steal_from:
        raise LeaseHeld(resource=resource, owner=held_by, expires_at=iso(expires_at))
    broken = Lease(resource, held_by, token, expires_at)
    return Lease(resource, owner, token + 1, now + ttl), broken


def decide_renew(lease: Lease, current: LeaseRow | None, ttl: float, now: float) -> Lease:
    """``lease`` extended by ``ttl``, or ``LeaseHeld`` when it is no longer held as given."""
    if current is not None:
        held_by, token, expires_at = current
        if held_by == lease.owner and token == lease.token:
            return Lease(lease.resource, lease.owner, token, now + ttl)
        if held_by is not None:
            raise LeaseHeld(resource=lease.resource, owner=held_by, expires_at=iso(expires_at))
    raise LeaseHeld(
        f"the lease on {lease.resource} (token {lease.token}) is no longer held",
        resource=lease.resource,
        owner=None,
        expires_at=None,
    )


def check_fence(fence: Fence, current: LeaseRow | None) -> Fenced | None:
    """Why an append under ``fence`` must be refused given the lease row as stored, or
    None when its owner still holds the lease with its token. Expiry alone does not
    refuse: a token nobody has superseded is still the current one (the holder fences
    itself on the age of its last renewal; see the engine's leases)."""
    if current is not None:
        held_by, token, _expires_at = current
        if held_by == fence.owner and token == fence.token:
            return None
        if held_by is None:
            reason = (
                "it was released"
                if token == fence.token
                else f"another owner took it (token {token}) and released it"
            )
        else:
            reason = f"{held_by} holds it with token {token}"
    else:
        reason = "no lease was ever taken"
    return Fenced(resource=fence.resource, owner=fence.owner, token=fence.token, reason=reason)
