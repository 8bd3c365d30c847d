"""GroupCommitter: batching, per-member outcomes, and requests whose caller does not wait."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from fleetlog.journal.groupcommit import GroupCommitter, Slot


class Recorder:
    """A write_batch that answers each request with its square and remembers batches;
    the first batch can be held open until the test lets it go."""

    def __init__(self, hold_first: bool = False, delay: float = 0.0) -> None:
        self.delay = delay  # a commit's I/O, during which others queue
        self.batches: list[list[int]] = []
        self.entered = threading.Event()
        self.go = threading.Event()
        if not hold_first:
            self.go.set()

    def __call__(self, slots: list[Slot[int]]) -> None:
        self.entered.set()
        self.go.wait(10)
        if self.delay:
            time.sleep(self.delay)
        self.batches.append([s.request for s in slots])
        for slot in slots:
            if slot.request < 0:
                slot.fail(ValueError(f"negative: {slot.request}"))
            else:
                slot.succeed(slot.request**2)


def test_many_threads_each_get_their_own_result_and_share_batches() -> None:
    rec = Recorder(delay=0.0005)
    gc: GroupCommitter[int] = GroupCommitter(rec)
    results: dict[int, Any] = {}

    def work(k: int) -> None:
        for i in range(50):
            n = k * 1000 + i
            results[n] = gc.submit(n)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {n: n * n for n in results} and len(results) == 16 * 50
    assert sorted(r for b in rec.batches for r in b) == sorted(results)
    assert len(rec.batches) < 16 * 50  # some requests shared a batch


def test_one_member_failing_does_not_fail_the_others() -> None:
    rec = Recorder(hold_first=True)
    gc: GroupCommitter[int] = GroupCommitter(rec)
    out: dict[int, Any] = {}

    def submit(n: int) -> None:
        try:
            out[n] = gc.submit(n)
        except ValueError as e:
            out[n] = str(e)

    leader = threading.Thread(target=submit, args=(1,))
    leader.start()
    assert rec.entered.wait(10)
    followers = [threading.Thread(target=submit, args=(n,)) for n in (2, -3, 4)]
    for t in followers:
        t.start()
    while len(gc._queue) < 3:  # the three queued behind the held batch
        threading.Event().wait(0.001)
    rec.go.set()
    for t in [leader, *followers]:
        t.join()
    assert out == {1: 1, 2: 4, -3: "negative: -3", 4: 16}
    assert rec.batches[0] == [1] and sorted(rec.batches[1]) == [-3, 2, 4]


def test_submit_nowait_returns_while_a_leader_writes_and_is_never_handed_the_lead() -> None:
    rec = Recorder(hold_first=True)
    gc: GroupCommitter[int] = GroupCommitter(rec)
    leader = threading.Thread(target=gc.submit, args=(1,))
    leader.start()
    assert rec.entered.wait(10)
    # A leader is writing: the request is queued and the caller is free at once.
    pending = gc.submit_nowait(7)
    assert not pending.done
    rec.go.set()
    leader.join(10)
    # Only the detached request was waiting, so the leader wrote it itself rather than
    # handing the lead to a caller who is not there to take it.
    assert not leader.is_alive()
    assert pending.done and rec.batches == [[1], [7]]
    assert gc.collect(pending) == 49
    assert gc.submit(3) == 9  # and the committer is free for the next caller


def test_submit_nowait_with_no_leader_writes_at_once_and_collect_raises_its_error() -> None:
    gc: GroupCommitter[int] = GroupCommitter(Recorder())
    pending = gc.submit_nowait(-2)
    assert pending.done
    with pytest.raises(ValueError, match="negative: -2"):
        gc.collect(pending)


def test_submit_many_writes_in_order_in_as_few_batches_as_max_batch_allows() -> None:
    rec = Recorder()
    gc: GroupCommitter[int] = GroupCommitter(rec, max_batch=2)
    slots = gc.submit_many([1, 2, -3, 4, 5])
    assert rec.batches == [[1, 2], [-3, 4], [5]]
    assert [gc.collect(s) for s in (slots[0], slots[1], slots[3], slots[4])] == [1, 4, 16, 25]
    with pytest.raises(ValueError, match="negative: -3"):
        gc.collect(slots[2])
    assert gc.submit_many([]) == [] and gc.submit(6) == 36  # and the lead was given back


def test_submit_many_behind_a_busy_leader_is_written_by_it_and_can_be_collected() -> None:
    rec = Recorder(hold_first=True)
    gc: GroupCommitter[int] = GroupCommitter(rec, max_batch=2)
    leader = threading.Thread(target=gc.submit, args=(1,))
    leader.start()
    assert rec.entered.wait(10)
    slots = gc.submit_many([2, 3, 4])  # returns at once: someone else is leading
    got: list[Any] = []
    follower = threading.Thread(target=lambda: got.append(gc.submit(5)))
    follower.start()
    while len(gc._queue) < 4:
        threading.Event().wait(0.001)
    rec.go.set()
    collected: list[Any] = []
    collector = threading.Thread(target=lambda: collected.extend(gc.collect(s) for s in slots))
    collector.start()
    for t in (leader, follower, collector):
        t.join(10)
        assert not t.is_alive(), "a request was never written"
    assert collected == [4, 9, 16]
    assert [r for b in rec.batches for r in b] == [1, 2, 3, 4, 5]
    # The follower was handed the lead with its own request two batches back in the
    # queue: it kept the lead until that was written (it once handed the lead to itself
    # and returned None, leaving 4 and 5 unwritten).
    assert got == [25]
    assert gc.submit(6) == 36
