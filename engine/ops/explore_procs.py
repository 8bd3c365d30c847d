"""The simulated processes of one explorer run: each with its own journal handle and
backend, so a fault can kill, pause or fill the disk under one of them alone.

Everything runs in one Python process, on one thread, so a run is deterministic and
replays from its seed. What makes the simulated processes *distinct* is what each sees
through its ``ProcJournal``:

- a process that **crashed** (or exited) shows its leases with a pid that no longer runs
  in this PID namespace, so a successor proves it gone (``owners.owner_is_dead``) and
  breaks them at once, as after a real SIGKILL;
- a process **paused past its lease** shows its leases expired (simulated time passed
  the TTL), so a successor breaks them; when the paused one continues, only the
  journal's fencing can stop its writes;
- a process in **another PID namespace with the same host name** sees every other
  owner with a pid that is not its own namespace's: the owner is live, and only an
  identity beyond the host name keeps it from breaking the lease.

Being in-process, a crash is a ``SimulatedCrash`` (a ``BaseException``, so nothing in the
runtime catches it) raised from the journal handle; from then on every call on that
handle raises it again, so the ``finally`` blocks of the dead runner journal nothing —
as nothing runs in a SIGKILLed process.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetlog.engine.backends.base import CommandResult
from fleetlog.engine.backends.sim import SimBackend
from fleetlog.journal.base import Event, Fence, Lease, LeaseAppending, LeaseHeld, NewEvent
from fleetlog.journal.environment import JournalUnavailable

if TYPE_CHECKING:
    from fleetlog.journal.base import Journal

#: A pid above Linux's PID_MAX_LIMIT (2**22): no process ever has it.
VANISHED_PID = 4_194_305


class SimulatedCrash(BaseException):
    """The simulated process died here (SIGKILL): nothing after it runs."""


class Blocked(BaseException):
    """The simulated process waits for a lease a live process holds; that process waits
    for this one to return (one thread runs them all), so this one gives up, as an
    operator would stop a command that waits."""


class Runaway(BaseException):
    """A simulated process made far more journal calls than the flow needs, or ran past
    its wall-clock allowance: it would not have come to rest on its own."""


@dataclass
class Proc:
    """One simulated fleetlog process."""

    name: str
    #: live | paused (its leases expired in simulated time) | dead
    status: str = "live"
    #: Another PID namespace, same host name (the ``twin`` fault).
    foreign: bool = False
    owners: set[str] = field(default_factory=set)
    appends: int = 0
    calls: int = 0
    #: Commands it sent to the simulated datacenter.
    commands: int = 0
    #: Its journal's disk is full: every append fails.
    disk_full: bool = False


@dataclass
class Cluster:
    """Every simulated process of a run, and what they did that an invariant judges."""

    procs: list[Proc] = field(default_factory=list)
    #: Leases broken while their holder was live and unexpired (mutual exclusion lost).
    broken_live: list[str] = field(default_factory=list)
    #: How many journal calls one process may make, and until when (monotonic).
    call_budget: int = 100_000
    deadline: float = float("inf")

    def new(self, name: str, *, foreign: bool = False) -> Proc:
        proc = Proc(name, foreign=foreign)
        self.procs.append(proc)
        return proc

    def holder(self, owner: str) -> Proc | None:
        return next((p for p in self.procs if owner in p.owners), None)


def _with_pid(owner: str, pid: int, ns: str | None = None) -> str:
    """``owner`` (``host:pid:nonce;b=…;ns=…;…``) with another pid (and PID namespace)."""
    head, sep, tail = owner.partition(";")
    host, _, rest = head.partition(":")
    _, _, nonce = rest.partition(":")
    if ns is not None and sep:
        tail = ";".join(f"ns={ns}" if p.startswith("ns=") else p for p in tail.split(";"))
    return f"{host}:{pid}:{nonce}{sep}{tail}"


class ProcJournal(LeaseAppending):
    """The journal as one simulated process sees it (see the module's doc).

    Delegates everything to the shared journal; intercepts appends (where faults strike)
    and lease reads and takes (where the process's view of other owners applies)."""

    def __init__(
        self,
        real: Journal,
        cluster: Cluster,
        proc: Proc,
        on_append: Callable[[Proc, int], None] | None = None,
        after_append: Callable[[Proc, int], None] | None = None,
    ) -> None:
        self._real = real
        self._rows = real if isinstance(real, LeaseAppending) else None
        self._cluster = cluster
        self.proc = proc
        self._on_append = on_append
        self._after_append = after_append
        #: What this process was shown, back to what the journal holds.
        self._shown: dict[str, str] = {}
        self._shown_rows: dict[tuple[str, Any], tuple[str | None, int, float]] = {}
        #: Polling: the lease last read per resource and how often in a row.
        self._polls: dict[str, tuple[tuple[str, int], int]] = {}
        #: Owners whose leases this process waited out (simulated time passed).
        self._waited_out: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        self._alive()
        return getattr(self._real, name)

    # -- the process's fate --------------------------------------------------------------
    def _alive(self) -> None:
        proc = self.proc
        if proc.status == "dead":
            raise SimulatedCrash(proc.name)
        proc.calls += 1
        if proc.calls > self._cluster.call_budget or time.monotonic() > self._cluster.deadline:
            proc.status = "dead"
            raise Runaway(f"{proc.name}: {proc.calls} journal calls without coming to rest")

    def _appending(self) -> int:
        self._alive()
        self.proc.appends += 1
        k = self.proc.appends
        self._polls.clear()
        if self._on_append is not None:
            self._on_append(self.proc, k)
        return k

    def _appended(self, k: int) -> None:
        if self._after_append is not None:
            self._after_append(self.proc, k)

    # -- the view of other owners --------------------------------------------------------
    def _view(self, owner: str | None) -> str | None:
        if owner is None:
            return None
        holder = self._cluster.holder(owner)
        if holder is self.proc:
            return owner
        shown = owner
        if self.proc.foreign:
            shown = _with_pid(owner, VANISHED_PID, ns="0")
        elif holder is not None and holder.status == "dead":
            shown = _with_pid(owner, VANISHED_PID)
        if shown != owner:
            self._shown[shown] = owner
        return shown

    def _expired(self, owner: str | None) -> bool:
        if owner is None:
            return False
        if owner in self._waited_out:
            return True
        holder = self._cluster.holder(owner)
        return holder is not None and holder is not self.proc and holder.status == "paused"

    def _polled(self, lease: Lease | None) -> None:
        """A lease read again and again with nothing appended meanwhile is waited on
        (``ensure`` polls a resource in progress). Simulated time passes: a lease nobody
        renews (its holder is gone, paused, or this very process, which abandoned it)
        expires; one a live process holds never will in this run (``Blocked``)."""
        if lease is None:
            return
        key = (lease.owner, lease.token)
        last, count = self._polls.get(lease.resource, (None, 0))
        count = count + 1 if last == key else 1
        self._polls[lease.resource] = (key, count)
        holder = self._cluster.holder(lease.owner)
        if holder is self.proc and lease.owner not in self._waited_out:
            # Its own lease under another owner: a transition it abandoned (its disk
            # filled mid-way), which nothing here renews or releases.
            self._waited_out.add(lease.owner)
            return
        if count < 2:
            return
        if holder is not None and holder is not self.proc and holder.status == "live":
            raise Blocked(f"{self.proc.name} waits for {lease.resource}, held by {holder.name}")
        self._waited_out.add(lease.owner)

    def _real_owner(self, owner: str | None) -> str | None:
        return None if owner is None else self._shown.get(owner, owner)

    def _lease(self, lease: Lease | None) -> Lease | None:
        if lease is None:
            return None
        expires = time.time() - 1.0 if self._expired(lease.owner) else lease.expires_at
        return Lease(lease.resource, self._view(lease.owner) or "", lease.token, expires)

    def _breaking(self, broken: Lease | None) -> None:
        """This process broke ``broken``: fine only if its holder is gone or expired."""
        if broken is None:
            return
        holder = self._cluster.holder(self._real_owner(broken.owner) or "")
        if holder is not None and holder is not self.proc and holder.status == "live":
            self._cluster.broken_live.append(
                f"{self.proc.name} broke the lease on {broken.resource} (token "
                f"{broken.token}) while its holder {holder.name} was live and unexpired"
            )

    # -- leases --------------------------------------------------------------------------
    def get_lease(self, resource: str) -> Lease | None:
        self._alive()
        lease = self._real.get_lease(resource)
        self._polled(lease)
        return self._lease(lease)

    def get_leases(self, resources: Sequence[str]) -> dict[str, Lease]:
        self._alive()
        got = self._real.get_leases(resources)
        return {k: v for k, v in ((k, self._lease(v)) for k, v in got.items()) if v is not None}

    def acquire_lease(
        self, resource: str, owner: str, ttl: float, steal_from: str | None = None
    ) -> tuple[Lease, Lease | None]:
        self._alive()
        self.proc.owners.add(owner)
        real_steal = self._real_owner(steal_from)
        try:
            lease, broken = self._real.acquire_lease(resource, owner, ttl, steal_from=real_steal)
        except LeaseHeld:
            current = self._real.get_lease(resource)
            if current is None or not self._expired(current.owner):
                raise
            lease, broken = self._real.acquire_lease(resource, owner, ttl, steal_from=current.owner)
        self._breaking(broken)
        return lease, self._lease(broken)

    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        self._alive()
        return self._real.renew_lease(lease, ttl)

    def release_lease(self, lease: Lease) -> None:
        self._alive()
        self._real.release_lease(lease)

    def lease_row(self, resource: str) -> tuple[str | None, int, float] | None:
        self._alive()
        assert self._rows is not None
        row = self._rows.lease_row(resource)
        if row is None or row[0] is None:
            return row
        owner, token, expires = row
        shown = (self._view(owner), token, time.time() - 1.0 if self._expired(owner) else expires)
        self._shown_rows[(resource, shown)] = row
        return shown

    # -- appends -------------------------------------------------------------------------
    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> list[Event]:
        k = self._appending()
        out = self._real.append(stream, events, expected_version=expected_version, fence=fence)
        self._appended(k)
        return out

    def append_taking_lease(
        self,
        stream: str,
        events: Sequence[NewEvent],
        lease: Lease,
        seen: tuple[str | None, int, float] | None,
        expected_version: int | None = None,
    ) -> list[Event]:
        k = self._appending()
        assert self._rows is not None
        self.proc.owners.add(lease.owner)
        real_seen = self._shown_rows.get((stream, seen), seen)
        if real_seen is not None and real_seen[0] not in (None, lease.owner):
            self._breaking(Lease(stream, real_seen[0], real_seen[1], real_seen[2]))
        out = self._rows.append_taking_lease(stream, events, lease, real_seen, expected_version)
        self._appended(k)
        return out

    def append_releasing_lease(
        self, stream: str, events: Sequence[NewEvent], lease: Lease
    ) -> list[Event]:
        k = self._appending()
        out = self._real.append_releasing_lease(stream, events, lease)
        self._appended(k)
        return out


def disk_full(proc: Proc) -> JournalUnavailable:
    return JournalUnavailable(f"disk full writing the journal ({proc.name}: simulated)")


class ProcSim(SimBackend):
    """The simulated datacenter as one process reaches it: its own handle on the shared
    world file, and a hook after every command (the ``kill`` fault: the process dies
    right after a command committed its effect, before it could journal the outcome)."""

    def __init__(
        self,
        world_path: str,
        proc: Proc,
        after_call: Callable[[Proc, str, str], None] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__(world_path, seed=seed)
        self.proc = proc
        self._after_call = after_call

    def run(
        self,
        host: str,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        if self.proc.status == "dead":
            raise SimulatedCrash(self.proc.name)
        self.proc.commands += 1
        result = super().run(host, command, timeout=timeout, env=env)
        if self._after_call is not None:
            self._after_call(self.proc, host, command)
        return result
