"""The journal contract every backend (SQLite, PostgreSQL) implements.

The journal is the single source of truth: an append-only sequence of events, each in a
stream (one resource) at a version, chained by SHA-256 so tampering shows. Nothing here
knows about machines or states: folding events into resource state is the engine's job.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, ClassVar

from fleetlog.errors import FleetlogError
from fleetlog.frozen import frozen

GENESIS_HASH = "0" * 64


class JournalError(FleetlogError):
    """The journal cannot do what was asked (not a journal, unreadable, refused)."""

    exit_code = 1


class JournalIntegrityError(JournalError):
    """The journal's contents are damaged or tampered with: exit 4 (CLI contract)."""

    msg_fmt = "journal integrity failure at seq %(seq)s: %(reason)s"
    exit_code = 4


class ConcurrencyConflict(JournalError):
    """An append's expected stream version is not the stream's current version."""

    msg_fmt = (
        "concurrency conflict on stream %(stream)s: expected version %(expected)s, "
        "but the stream is at version %(actual)s"
    )
    exit_code = 1
    stream: str
    expected: int | None
    actual: int


class LeaseChanged(JournalError):
    msg_fmt = "the lease on %(resource)s changed while it was being taken; decide again"
    exit_code = 1


class LeaseHeld(JournalError):
    msg_fmt = "%(resource)s is locked by %(owner)s until %(expires_at)s"
    exit_code = 1


class Fenced(LeaseHeld):
    """An append (or a step) refused because the lease it was made under is no longer
    current: another owner broke it, or it was released. The holder must stop before
    any further side effect and leave the work to whoever holds the lease now."""

    msg_fmt = (
        "%(resource)s: the lease of %(owner)s (fencing token %(token)s) is no longer "
        "current (%(reason)s); stopping before the next side effect"
    )
    resource: str
    owner: str
    token: int
    reason: str


@frozen
class NewEvent:
    """An event to append. ``actor`` and ``host`` default to the journal's own."""

    type: str
    payload: dict[str, Any] = field(default_factory=dict)
    command_id: str | None = None
    causation_id: str | None = None
    correlation_id: str | None = None
    actor: str | None = None
    host: str | None = None


@frozen
class Event:
    """An event as recorded. ``recorded_at`` is ISO-8601 UTC with microseconds and ``Z``."""

    seq: int
    event_id: str
    stream: str
    version: int
    type: str
    command_id: str | None
    causation_id: str | None
    correlation_id: str | None
    actor: str
    host: str
    recorded_at: str
    payload: dict[str, Any]
    prev_hash: str
    hash: str

    COLUMNS: ClassVar[tuple[str, ...]] = (
        "seq",
        "event_id",
        "stream",
        "version",
        "type",
        "command_id",
        "causation_id",
        "correlation_id",
        "actor",
        "host",
        "recorded_at",
        "payload",
        "prev_hash",
        "hash",
    )

    def to_dict(self) -> dict[str, Any]:
        return {c: getattr(self, c) for c in self.COLUMNS}


@frozen
class Fence:
    """The lease an append is made under: the journal writes the append only while
    ``owner`` still holds ``resource``'s lease with fencing ``token``, checked in the
    append's own transaction (a paused holder that wakes after its lease was broken is
    refused, not believed)."""

    resource: str
    owner: str
    token: int


@frozen
class Lease:
    """A lock on a resource: ``token`` is the fencing token, increasing per resource."""

    resource: str
    owner: str
    token: int
    expires_at: float  # unix time


def fence_of(lease: Lease) -> Fence:
    """The fence of appends made under ``lease``."""
    return Fence(lease.resource, lease.owner, lease.token)


@frozen
class VerifyReport:
    """The outcome of ``verify``. ``head_seq``/``head_hash``: the head when the chain is
    intact (the last sound event before the first problem otherwise)."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None
    head_seq: int = 0
    head_hash: str = GENESIS_HASH


@frozen
class Head:
    """A point of the chain: the event at ``seq`` has ``hash`` (seq 0: the genesis)."""

    seq: int
    hash: str


@frozen
class IntegrityReport:
    """The outcome of ``check_integrity``: the chain from the last verified point to the
    head, the verified point itself, the snapshots, and the heads a witness recorded.

    ``head``: the last event checked. ``full``: the whole chain was walked (no usable
    verified point). ``cookie``: what the verified point is valid for (SQLite's schema
    cookie), passed on to ``seal``. ``unsealed``: the only problem is that a chain key is
    given and the verified head carries no seal made with it (``verify --seal``)."""

    ok: bool
    head: Head
    checked: int = 0
    first_bad_seq: int | None = None
    reason: str | None = None
    full: bool = False
    cookie: int | None = None
    unsealed: bool = False
    #: the verified head carries a chain-key seal (writes without the key would drop it)
    keyed: bool = False

    def error(self) -> JournalIntegrityError:
        return JournalIntegrityError(seq=self.first_bad_seq, reason=self.reason)


class Journal(abc.ABC):
    """Append-only event store. Implementations are safe to share between threads."""

    url: str
    #: Counters of write transactions and appends, for tests and benchmarks.
    stats: JournalStats

    # -- writing ---------------------------------------------------------------------
    @abc.abstractmethod
    def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: int | None = None,
        fence: Fence | None = None,
    ) -> list[Event]:
        """Append ``events`` to ``stream`` atomically, at versions current+1, current+2, ….

        ``expected_version`` is the version the caller believes the stream is at (0 for a
        stream that does not exist yet); a mismatch raises ``ConcurrencyConflict`` and
        appends nothing. ``None`` skips the check.

        ``fence``: the lease the append is made under; unless its owner still holds the
        lease with its token, ``Fenced`` is raised and nothing is appended (checked in
        the same transaction as the append).

        Idempotent submission: when the first event is ``command.accepted`` with a
        ``command_id`` already recorded, nothing is appended and the events originally
        recorded by that append are returned.
        """

    # -- reading ---------------------------------------------------------------------
    @abc.abstractmethod
    def read_stream(
        self, stream: str, from_version: int = 1, to_seq: int | None = None
    ) -> list[Event]:
        """Events of one stream in version order, optionally only those with seq <= to_seq."""

    @abc.abstractmethod
    def read_all(
        self,
        from_seq: int = 0,
        to_seq: int | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[Event]:
        """Every event with from_seq < seq <= to_seq, in seq order (optionally of ``types``)."""

    def read_all_rows(
        self,
        from_seq: int = 0,
        to_seq: int | None = None,
        types: Sequence[str] | None = None,
        columns: Sequence[str] = Event.COLUMNS,
        project: Mapping[str, Sequence[str]] | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """``read_all`` as plain tuples of ``columns`` with the payload as JSON text, for
        whole-journal folds that cannot afford an object per event. This default builds
        them from ``read_all``; backends override it with a direct query.

        ``project``: event type -> payload keys. The payload of an event of such a type
        may then hold only those keys (a missing one as null): the database picks them
        out, so a fold that needs three fields of a large payload does not decode it
        whole. A backend that cannot do that returns whole payloads (as this default)."""
        import json

        for ev in self.read_all(from_seq, to_seq, types):
            yield tuple(
                json.dumps(ev.payload) if c == "payload" else getattr(ev, c) for c in columns
            )

    @abc.abstractmethod
    def seq_at_time(self, when: str) -> int:
        """The last seq recorded at or before ISO time ``when`` (0 if none)."""

    @abc.abstractmethod
    def head(self) -> int:
        """The last seq (0 when empty)."""

    @abc.abstractmethod
    def stream_version(self, stream: str) -> int:
        """The current version of ``stream`` (0 when it does not exist)."""

    @abc.abstractmethod
    def streams(self, prefix: str | None = None) -> list[str]:
        """Every stream id, sorted, optionally only those starting with ``prefix``."""

    def streams_present(self, streams: Iterable[str]) -> set[str]:
        """Those of ``streams`` that have events. For checking many names at once (an
        inventory of 100,000 resources): this default lists the streams under each
        name's ``kind/`` prefix; backends override it with a few batched queries, whose
        cost is the names asked about, not the streams the journal holds."""
        wanted = set(streams)
        found: set[str] = set()
        for prefix in sorted({s.partition("/")[0] for s in wanted}):
            found.update(s for s in self.streams(prefix) if s in wanted)
        return found

    def stream_heads(self, to_seq: int | None = None) -> dict[str, int]:
        """The version of every stream as of ``to_seq`` (None: now). Backends override
        this with one grouped query; this default reads everything."""
        heads: dict[str, int] = {}
        for ev in self.read_all(to_seq=to_seq):
            heads[ev.stream] = ev.version
        return heads

    @abc.abstractmethod
    def events_for_command(self, command_id: str) -> list[Event]:
        """Events recorded with this command id, in seq order."""

    def follow(self, from_seq: int = 0, poll: float = 0.2) -> Iterator[Event]:
        """New events as they are appended (blocking generator); stops when closed."""
        with self._idle_waiter(poll) as idle:
            last = from_seq
            while not self.closed:
                got = False
                for ev in self.read_all(from_seq=last):
                    last = ev.seq
                    got = True
                    yield ev
                if not got:
                    idle()

    @contextlib.contextmanager
    def _idle_waiter(self, poll: float) -> Iterator[Callable[[], None]]:
        """What ``follow`` calls when it has caught up: this default sleeps ``poll``
        seconds; a backend that can be woken by an append waits for that instead. Set up
        before the first read, so no append can slip between reading and waiting."""
        import time

        yield lambda: time.sleep(poll)

    def wait_for_append(self, after_seq: int, timeout: float) -> bool:
        """Block until the head is past ``after_seq`` or ``timeout`` seconds passed; True
        when it is. This default polls; PostgreSQL waits for ``NOTIFY`` instead."""
        import time

        deadline = time.monotonic() + timeout
        while self.head() <= after_seq:
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                return False
            time.sleep(min(0.1, left))
        return True

    # -- integrity, export -------------------------------------------------------------
    @abc.abstractmethod
    def verify(self) -> VerifyReport:
        """Recompute the hash chain and check seq/version contiguity."""

    @abc.abstractmethod
    def export(self, fp: IO[str]) -> int:
        """Write every event as one canonical JSON line; return the count."""

    @abc.abstractmethod
    def import_(self, fp: IO[str]) -> int:
        """Import JSON lines produced by ``export`` into an empty journal, keeping seq,
        ids, versions and hashes. The whole file is verified first; a broken file imports
        nothing (``JournalIntegrityError``)."""

    # -- integrity: the verified head, write refusal ---------------------------------------
    #: The chain key (``FLEETLOG_CHAIN_KEY``): seals the verified head and snapshots with
    #: HMAC-SHA256 (``journal.integrity``). Never changes an event's hash.
    chain_key: bytes | None = None
    #: Set once anything was written through this object (appends, leases, snapshots).
    wrote: bool = False
    _refusal: FleetlogError | None = None

    def refuse_writes(self, error: FleetlogError | None) -> None:
        """From now on every write raises ``error`` and changes nothing (None: allow
        writes again). The CLI does this when the check before a write command fails."""
        self._refusal = error

    def _writable(self) -> None:
        """Called at the start of every write."""
        if self._refusal is not None:
            raise self._refusal
        self.wrote = True

    @abc.abstractmethod
    def tail(self) -> Head:
        """The last event's seq and hash (``Head(0, GENESIS_HASH)`` when empty)."""

    @abc.abstractmethod
    def check_integrity(
        self, witnessed: Sequence[Head] = (), sound: Head | None = None
    ) -> IntegrityReport:
        """Check, without writing anything: the verified head the journal keeps (still
        there, unchanged, sealed with ``chain_key`` when one is given), the chain from
        it to the head (the whole chain when there is none, or when the file's schema
        changed since), every snapshot against the event it names and its seal, and
        every head in ``witnessed`` (held with the same hash; the head not behind it).
        Its cost is proportional to the events appended since the verified head.
        ``sound``: a head up to which the caller just walked the chain (``verify``)."""

    @abc.abstractmethod
    def seal(self, since: IntegrityReport, witnessed: Sequence[Head] = ()) -> IntegrityReport:
        """After writing: check the chain from ``since.head`` (a sound report) to the
        head now and the ``witnessed`` heads, then keep the head as the verified head
        (sealed with ``chain_key``). A report that is not ok is returned (nothing kept)
        when a check fails."""

    # -- snapshots: a disposable cache ----------------------------------------------------
    @abc.abstractmethod
    def get_snapshot(self, stream: str) -> tuple[int, dict[str, Any]] | None:
        """(version, state) of the newest snapshot of ``stream``, or None. A snapshot is
        used only when the event it names is the journal's event at its version, with
        the same hash, and its seal holds; one that contradicts the chain is never
        returned and is added to ``snapshot_problems``."""

    @abc.abstractmethod
    def drop_snapshots(self) -> int:
        """Discard every snapshot (a cache); how many there were."""

    def snapshot_streams(self) -> list[tuple[str, int, int]]:
        """(stream, version, seq of the event at that version) of every snapshot that
        names an event the journal holds."""
        return []

    @abc.abstractmethod
    def put_snapshot(self, stream: str, version: int, state: dict[str, Any]) -> None:
        """Keep ``state`` as ``stream`` folded up to ``version``, bound to (sealed with)
        the journal's event at that version. Does nothing while writes are refused."""

    @property
    def keeps_checkpoints(self) -> bool:
        """Whether ``put_checkpoint`` would keep one now (a writer need not fold for
        nothing)."""
        return False

    def get_checkpoint(self, name: str) -> tuple[int, str] | None:
        """(seq, state text) of the checkpoint ``name``: a fold of the whole journal up
        to ``seq`` that a reader continues from instead of folding from the start. Used
        only when the event at ``seq`` still has the hash it was kept with and its seal
        holds; one that contradicts either is never returned and is added to
        ``snapshot_problems``. None: none kept (a journal may keep none at all)."""
        return None

    def checkpoint_seq(self, name: str) -> int | None:
        """The seq the checkpoint ``name`` was kept at, unchecked and without reading it
        (is a new one due?); None when none is kept."""
        return None

    def put_checkpoint(self, name: str, seq: int, state_text: str) -> None:
        """Keep ``state_text`` as the checkpoint ``name`` folded up to the event at
        ``seq`` (a newer one wins). A disposable cache, like snapshots: does nothing
        while writes are refused, or on a journal that keeps none."""
        return None

    @property
    def snapshot_problems(self) -> list[tuple[int | None, str]]:
        """Snapshots ``get_snapshot`` found contradicting the chain: (seq, what is wrong)."""
        found: list[tuple[int | None, str]] = self.__dict__.setdefault("_snapshot_problems", [])
        return found

    # -- leases ------------------------------------------------------------------------
    @abc.abstractmethod
    def acquire_lease(
        self, resource: str, owner: str, ttl: float, steal_from: str | None = None
    ) -> tuple[Lease, Lease | None]:
        """Take the lease on ``resource`` for ``ttl`` seconds. Returns (new lease, the
        lease it broke or None). Raises ``LeaseHeld`` when another owner holds an
        unexpired lease, unless that owner is ``steal_from`` (known dead). Re-acquiring
        one's own lease renews it with the same token."""

    @abc.abstractmethod
    def renew_lease(self, lease: Lease, ttl: float) -> Lease:
        """Extend a held lease; ``LeaseHeld`` if it was broken (fencing token changed)."""

    @abc.abstractmethod
    def release_lease(self, lease: Lease) -> None:
        """Drop a held lease (no error if it is already gone or was broken)."""

    @abc.abstractmethod
    def get_lease(self, resource: str) -> Lease | None: ...

    def get_leases(self, resources: Sequence[str]) -> dict[str, Lease]:
        """The held leases of ``resources``, by resource: one query where the backend
        can, so a worker sizing up a thousand candidates does not ask a thousand times."""
        return {r: lease for r in resources if (lease := self.get_lease(r)) is not None}

    def append_many(
        self,
        appends: Sequence[tuple[str, Sequence[NewEvent]]],
        expected_versions: Sequence[int | None] | None = None,
        *,
        returning: bool = True,
    ) -> list[list[Event]]:
        """Several independent appends, each all-or-nothing, in order; their recorded
        events. Backends that group-commit write them in as few transactions as they can
        (``fleetlog fire --submit`` of a thousand resources, ``inventory load``).
        ``expected_versions``: one per append, as ``append``'s ``expected_version``
        (None: no check). If one fails, the error is raised once every one has been
        decided: those before it are written, those after it may be.

        ``returning=False``: return ``[]`` instead of the recorded events, for a caller
        that only needs them written (``inventory load``: building 100,000 ``Event``
        objects nobody reads cost more than writing them)."""
        versions = [None] * len(appends) if expected_versions is None else expected_versions
        if len(versions) != len(appends):
            raise JournalError("append_many: one expected version per append")
        recorded = [
            self.append(stream, events, expected_version=v)
            for (stream, events), v in zip(appends, versions, strict=True)
        ]
        return recorded if returning else []

    def append_releasing_lease(
        self, stream: str, events: Sequence[NewEvent], lease: Lease
    ) -> list[Event]:
        """Append ``events`` under ``lease`` (fenced by it), then drop it (in one
        transaction where the backend can: ``LeaseAppending``)."""
        recorded = self.append(stream, events, fence=fence_of(lease))
        self.release_lease(lease)
        return recorded

    # -- lifecycle ---------------------------------------------------------------------
    closed: bool = False

    @abc.abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class NotAJournal(JournalError):
    """The file at ``path`` cannot be opened as a journal; nothing in it was changed."""

    msg_fmt = "%(path)s is not a usable fleetlog journal: %(reason)s"
    exit_code = 4  # a damaged or foreign journal file is an integrity failure


class SchemaTooNew(NotAJournal):
    """The journal was written by a newer fleetlog; opening it must not touch it."""

    msg_fmt = (
        "%(path)s has journal schema version %(found)s, newer than the %(supported)s this "
        "fleetlog understands; upgrade fleetlog (the file was not modified)"
    )


@dataclass(slots=True)
class JournalStats:
    """Counters a backend keeps for tests and benchmarks: ``commits`` counts write
    transactions for appends, ``appends`` the append calls they served."""

    commits: int = 0
    appends: int = 0
    events: int = 0


class LeaseAppending(abc.ABC):
    """A journal that takes a lease in the transaction of the append that records it
    (SQLite; PostgreSQL takes the two steps). Saves the lease its own round trip through
    the writer."""

    @abc.abstractmethod
    def lease_row(self, resource: str) -> tuple[str | None, int, float] | None:
        """The lease row as stored, (owner or None, token, expires_at), for a claimant
        to decide on and then ``append_taking_lease`` with."""

    @abc.abstractmethod
    def append_taking_lease(
        self,
        stream: str,
        events: Sequence[NewEvent],
        lease: Lease,
        seen: tuple[str | None, int, float] | None,
        expected_version: int | None = None,
    ) -> list[Event]:
        """Take ``lease`` on ``stream`` and append ``events``, all or nothing, provided
        the lease row is still ``seen`` (``LeaseChanged`` otherwise: decide again)."""
