"""Pausing Python's cyclic garbage collector around bulk work, and collecting less
often for a whole command.

A fleet-wide fold or an inventory load builds a few objects per resource, all alive
until the work ends and none part of a cycle; the collections their allocations set off
walk everything built so far again and again, to free nothing (a quarter of a
100,000-resource load's time). Reference counting still frees what the work drops.

A fan-out cannot simply turn the collector off: a failing step's exception and its
traceback are a cycle, and thousands of them must still be freed. But every transition
allocates a few hundred short-lived objects (events, rows, payloads), so at Python's
default threshold (a collection every 700 allocations) the collector ran about once per
transition, on every thread, for nothing: about a tenth of a 10,000-node fire's time.
``fewer_collections`` raises the threshold for the command instead.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: Allocations between two young-generation collections while a command runs (Python's
#: default is 700). Garbage cycles wait at most that many allocations to be freed.
COMMAND_THRESHOLD = 50_000

_lock = threading.Lock()
_entered = 0
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
    """The collector off for the block, then as it was (also when the block raises)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def fewer_collections(threshold: int = COMMAND_THRESHOLD) -> Iterator[None]:
    """Young-generation collections every ``threshold`` allocations (never more often than
    already set) for the block, then the thresholds as they were. Re-entrant and safe
    from several threads: the first to enter sets it, the last to leave restores it."""
    global _entered, _saved
    with _lock:
        if _entered == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(threshold, _saved[0]), _saved[1], _saved[2])
        _entered += 1
    try:
        yield
    finally:
        with _lock:
            _entered -= 1
            if _entered == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
