"""``recorded_at`` timestamps: ISO-8601 UTC with microseconds, ``YYYY-MM-DDTHH:MM:SS.ffffffZ``.

Time is handled as integer microseconds since the epoch so a writer can keep timestamps
strictly increasing across appends (``max(now, last + 1)``) with integer arithmetic;
formatting caches the per-second prefix because ``strftime`` on every event is a visible
cost on the append path.
"""

from __future__ import annotations

import calendar
import time

# (second, "YYYY-MM-DDTHH:MM:SS") for the last second formatted; one tuple so threads
# always see a matching pair.
_cache: tuple[int, str] = (-1, "")


def now_us() -> int:
    """Microseconds since the Unix epoch, UTC."""
    return time.time_ns() // 1000


def iso_from_us(us: int) -> str:
    """Format microseconds since the epoch as ``YYYY-MM-DDTHH:MM:SS.ffffffZ``."""
    global _cache
    second, micro = divmod(us, 1_000_000)
    cached_second, prefix = _cache
    if second != cached_second:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _cache = (second, prefix)
    return f"{prefix}.{micro:06d}Z"


def us_from_iso(text: str) -> int:
    """Parse ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (or ``+00:00``) back to microseconds."""
    body = text.strip()
    if body.endswith("Z"):
        body = body[:-1]
    elif body.endswith("+00:00"):
        body = body[:-6]
    whole, _, frac = body.partition(".")
    struct = time.strptime(whole, "%Y-%m-%dT%H:%M:%S")
    micro = int((frac + "000000")[:6]) if frac else 0
    return calendar.timegm(struct) * 1_000_000 + micro
