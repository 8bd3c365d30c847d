"""Group commit: appends from many threads share one transaction and one fsync.

Leader/follower, no writer thread. The first caller to arrive becomes the leader and
writes the queue as it finds it (its own request plus whatever piled up); callers that
arrive while a leader is writing wait. After its batch the leader wakes the members,
hands leadership to the oldest waiting caller, and returns. A lone caller therefore
writes on its own thread with no hand-off, and under load each fsync is shared by every
request that queued during the previous one. Handing over after one batch keeps any
caller from being stuck serving others indefinitely.

``write_batch`` decides each member's fate: it calls ``Slot.succeed`` or ``Slot.fail``
for every member, so one member's conflict never fails the others.
"""

from __future__ import annotations

import threading
import time
from _thread import allocate_lock as _allocate_lock
from collections.abc import Callable
from typing import Any, Generic, TypeVar

Req = TypeVar("Req")


class Slot(Generic[Req]):
    """One caller's request and, once written, its outcome."""

    __slots__ = ("detached", "done", "error", "lead", "request", "result", "wake")

    def __init__(self, request: Req, detached: bool = False) -> None:
        self.request = request
        #: Submitted with ``submit_nowait``: its caller is busy elsewhere, so it is never
        #: handed the lead (nobody would take it up until the caller came back).
        self.detached = detached
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.lead = False
        # A lock the follower blocks on, released by the leader: cheaper than
        # threading.Event, which builds a Condition and a fresh lock per wait.
        self.wake: Any = None

    def succeed(self, result: Any) -> None:
        self.result = result
        self.error = None
        self.done = True

    def fail(self, error: BaseException) -> None:
        self.error = error
        self.done = True


class GroupCommitter(Generic[Req]):
    """Serialises ``write_batch`` calls and batches the requests waiting for them."""

    def __init__(self, write_batch: Callable[[list[Slot[Req]]], None], max_batch: int = 512):
        self._write_batch = write_batch
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._queue: list[Slot[Req]] = []
        #: Queued requests whose callers wait (not detached): only they can take the
        #: lead, and counting them spares a scan of a long queue of detached ones.
        self._attached = 0
        self._leading = False
        self._last_batch = 0

    @property
    def idle(self) -> bool:
        """Nobody writing and nothing queued, as of this instant (unlocked: a hint)."""
        return not self._leading and not self._queue

    def submit(self, request: Req) -> Any:
        """Write ``request`` (possibly together with others) and return its result."""
        slot: Slot[Req] = Slot(request)
        with self._lock:
            self._queue.append(slot)
            self._attached += 1
            if self._leading:
                slot.wake = _allocate_lock()
                slot.wake.acquire()
            else:
                self._leading = True
        if slot.wake is not None:
            slot.wake.acquire()
            if not slot.lead:
                return self._outcome(slot)
        self._lead(slot)
        return self._outcome(slot)

    def submit_nowait(self, request: Req) -> Slot[Req]:
        """Queue ``request`` and return at once if a leader is writing (it will write
        this too); otherwise write it now, as ``submit`` would. ``collect`` gives the
        result. For work whose caller has something else to wait for meanwhile."""
        slot: Slot[Req] = Slot(request, detached=True)
        with self._lock:
            self._queue.append(slot)
            if self._leading:
                slot.wake = _allocate_lock()
                slot.wake.acquire()
                return slot
            self._leading = True
        self._lead(slot)
        return slot

    def submit_many(self, requests: list[Req]) -> list[Slot[Req]]:
        """Queue ``requests`` together, in order, and write them (leading if no one is):
        as few batches as ``max_batch`` allows, instead of one write per request when a
        caller submits them one after the other. ``collect`` gives each result."""
        slots: list[Slot[Req]] = []
        for request in requests:
            slot: Slot[Req] = Slot(request, detached=True)
            # Every slot waits on its own lock: a later batch may be written by another
            # leader, after this caller has handed the lead on.
            slot.wake = _allocate_lock()
            slot.wake.acquire()
            slots.append(slot)
        with self._lock:
            self._queue.extend(slots)
            lead = not self._leading
            self._leading = True
        if lead and slots:
            self._lead(None)
        elif lead:
            with self._lock:
                self._leading = False
        return slots

    def collect(self, slot: Slot[Req]) -> Any:
        """The result of a ``submit_nowait`` or ``submit_many`` request, waiting until it
        is written."""
        if slot.wake is not None:
            slot.wake.acquire()
        return self._outcome(slot)

    def _lead(self, own: Slot[Req] | None) -> None:
        """Write batches until ``own`` (the leader's own request, if it waits for one) is
        written, then hand the lead to the oldest waiting caller; detached requests with
        no caller to hand to are written here too."""
        if self._last_batch > 1:
            # Others were active a moment ago and are probably just waking up with
            # their next request: let them queue it so this fsync serves them too.
            time.sleep(0)
        while True:
            with self._lock:
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
                self._attached -= sum(1 for member in batch if not member.detached)
            self._last_batch = len(batch)
            more = False
            try:
                self._write_batch(batch)
            except BaseException as e:  # every waiting caller gets the error
                for member in batch:
                    if not member.done:
                        member.fail(e)
            finally:
                for member in batch:
                    if not member.done:
                        member.fail(RuntimeError("group commit left a request unanswered"))
                with self._lock:
                    successor = (
                        next((s for s in self._queue if not s.detached), None)
                        if self._attached
                        else None
                    )
                    if own is not None and not own.done and self._queue:
                        # Our own request did not fit in this batch (more than
                        # max_batch were queued ahead of it): keep the lead until it is
                        # written, or we would hand the lead to ourselves.
                        more = True
                    elif successor is not None:
                        successor.lead = True
                        successor.wake.release()
                    elif self._queue:
                        more = True  # only detached requests wait: write them too
                    else:
                        self._leading = False
                for member in batch:
                    if member.wake is not None and not member.lead:
                        member.wake.release()
            if not more:
                return

    @staticmethod
    def _outcome(slot: Slot[Req]) -> Any:
        if slot.error is not None:
            raise slot.error
        return slot.result
