"""GroupCommitter: batching, per-member outcomes, and requests whose caller does not wait."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from journal.groupcommit import GroupCommitter, Slot


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
