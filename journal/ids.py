"""UUIDv7 event ids (RFC 9562): time-ordered, so ids sort roughly like ``seq``.

Python 3.11 has no ``uuid.uuid7``. This follows RFC 9562 section 6.2 method 2: the
74 bits after the 48-bit millisecond timestamp are random, and when the clock has not
moved past the previous id's millisecond the previous value is incremented instead, so
ids from one process are strictly increasing even within a millisecond or if the clock
steps back.
"""

from __future__ import annotations

import os
import threading
import time

_RAND_BITS = 74  # 12 bits rand_a + 62 bits rand_b
_RAND_MASK = (1 << _RAND_BITS) - 1

_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def uuid7_int() -> int:
    """A new UUIDv7 as a 128-bit integer, greater than every earlier one from this process."""
    global _last_ms, _last_rand
    ms = time.time_ns() // 1_000_000
    with _lock:
        if ms > _last_ms:
            rand = int.from_bytes(os.urandom(10), "big") & _RAND_MASK
        else:
            ms = _last_ms
            rand = _last_rand + 1
            if rand > _RAND_MASK:  # counter exhausted: borrow the next millisecond
                ms += 1
                rand = int.from_bytes(os.urandom(10), "big") & _RAND_MASK
        _last_ms, _last_rand = ms, rand
    rand_a = rand >> 62
    rand_b = rand & ((1 << 62) - 1)
    return (ms << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b


def uuid7() -> str:
    """A new UUIDv7 in the canonical 8-4-4-4-12 lowercase hex form."""
    h = f"{uuid7_int():032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
