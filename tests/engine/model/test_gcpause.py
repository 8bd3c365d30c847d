"""The collector's pauses: ``no_cycle_collection`` for bulk folds, ``fewer_collections``
for a whole command (``fleetlog`` runs every command inside it)."""

from __future__ import annotations

import gc
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.engine.cli import main
from fleetlog.engine.model.gcpause import (
    COMMAND_THRESHOLD,
    fewer_collections,
    no_cycle_collection,
)


@pytest.fixture(autouse=True)
def default_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        yield
    finally:
        gc.set_threshold(*before)


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def a_cycle() -> weakref.ref[Node]:
    """A garbage cycle (two nodes pointing at each other), watched by a weak reference."""
    a, b = Node(), Node()
    a.other, b.other = b, a
    return weakref.ref(a)


def test_fewer_collections_raises_the_threshold_and_puts_it_back() -> None:
    with fewer_collections():
        assert gc.get_threshold() == (COMMAND_THRESHOLD, 10, 10)
    assert gc.get_threshold() == (700, 10, 10)


def test_it_puts_it_back_when_the_block_raises() -> None:
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_it_never_lowers_a_threshold_set_higher() -> None:
    gc.set_threshold(200_000, 10, 10)
    with fewer_collections():
        assert gc.get_threshold()[0] == 200_000
    assert gc.get_threshold()[0] == 200_000


def test_the_last_of_several_threads_to_leave_restores_it() -> None:
    inside = threading.Barrier(3)
    leave = threading.Event()
    seen: list[tuple[int, int, int]] = []

    def command() -> None:
        with fewer_collections():
            inside.wait()
            leave.wait()
            seen.append(gc.get_threshold())

    threads = [threading.Thread(target=command) for _ in range(2)]
    for t in threads:
        t.start()
    inside.wait()
    with fewer_collections():  # nested in the others' blocks
        pass
    assert gc.get_threshold()[0] == COMMAND_THRESHOLD  # still inside the threads' blocks
    leave.set()
    for t in threads:
        t.join()
    assert seen == [(COMMAND_THRESHOLD, 10, 10)] * 2
    assert gc.get_threshold() == (700, 10, 10)


def test_garbage_cycles_are_still_collected_on_their_own() -> None:
    """Collecting less often is not collecting never: a fan-out's failed steps leave
    cycles (exception, traceback, frames) that must be freed without anyone asking."""
    gc.collect()
    with fewer_collections():
        cycles = [a_cycle() for _ in range(1_000)]
        assert any(ref() is not None for ref in cycles)  # not collected at once
        for _ in range(20):  # allocations past the threshold set a collection off
            [Node() for _ in range(COMMAND_THRESHOLD)]
            if all(ref() is None for ref in cycles):
                break
        assert all(ref() is None for ref in cycles)


def test_no_cycle_collection_turns_it_off_for_the_block_only() -> None:
    with no_cycle_collection():
        assert not gc.isenabled()
    assert gc.isenabled()


NOOP = """
machine noop "One no-op step" {
    param host: str = "h1"
    initial state new
    state done
    transition go : new -> done {
        step one run "true" idempotent
    }
}
"""


def test_a_command_runs_with_fewer_collections_and_leaves_the_process_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "noop.fsm").write_text(NOOP)
    monkeypatch.setenv("FLEETLOG_MACHINES", str(tmp_path))
    monkeypatch.setenv("FLEETLOG_JOURNAL", str(tmp_path / "j.db"))
    assert main(["add", "noop/n[1-300]"]) == 0
    # The threshold of each collection that started while the fan-out ran. At Python's
    # default these 300 transitions set off a dozen; with fewer, the only one is the one
    # the restored default sets off as the command ends.
    seen: list[int] = []

    def on_collect(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            seen.append(gc.get_threshold()[0])

    gc.callbacks.append(on_collect)
    try:
        assert main(["fire", "noop/n[1-300]", "go", "--parallel", "4"]) == 0
    finally:
        gc.callbacks.remove(on_collect)
    assert len(seen) <= 1, seen
    assert gc.get_threshold() == (700, 10, 10)
    capsys.readouterr()
