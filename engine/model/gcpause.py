"""Pausing Python's cyclic garbage collector around bulk work.

A fleet-wide fold or an inventory load builds a few objects per resource, all alive
until the work ends and none part of a cycle; the collections their allocations set off
walk everything built so far again and again, to free nothing (a quarter of a
100,000-resource load's time). Reference counting still frees what the work drops.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


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
