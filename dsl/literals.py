"""Token text -> Python values: quoted strings, durations, numbers.

Kept apart from the compiler because the rules are small but fiddly (which escapes a
string honours, how ``1.5m`` becomes seconds) and each deserves a direct test.
"""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h)\Z")


def decode_string(raw: str) -> tuple[str, list[int]]:
    """The text of a quoted token and, for each of its characters, its offset in ``raw``.

    Only ``\\\\`` and a backslash before the string's own quote are escapes; any other
    backslash is kept, because commands are shell text (``grep 'a\\.b'``) and a DSL that
    rewrote ``\\n`` would silently change them. The offsets let diagnostics point at a
    ``{placeholder}`` inside the string.
    """
    quote, body = raw[0], raw[1:-1]
    if "\\" not in body:  # the common case, kept cheap: most strings have no escapes
        return body, list(range(1, len(body) + 1))
    chars: list[str] = []
    offsets: list[int] = []
    i = 0
    while i < len(body):
        c = body[i]
        if c == "\\" and i + 1 < len(body) and body[i + 1] in (quote, "\\"):
            chars.append(body[i + 1])
            offsets.append(i + 2)
            i += 2
        else:
            chars.append(c)
            offsets.append(i + 1)
            i += 1
    return "".join(chars), offsets


def parse_duration(text: str) -> float:
    """``500ms`` -> 0.5, ``3s`` -> 3.0, ``10m`` -> 600.0, ``1h`` -> 3600.0 (seconds).

    Raises ``ValueError`` for text that is not a duration or is too large to be finite.
    """
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"'{_short(text)}' is not a duration like 500ms, 3s, 10m or 1h")
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"duration '{_short(text)}' is too large")
    return seconds


MAX_INT = 2**63 - 1


def parse_int(text: str) -> int:
    """An integer that fits a signed 64-bit column (journals and JSON readers agree on
    those), or ``ValueError``; the length test comes first so that a 5,000-digit
    literal is refused before Python's own conversion limit is reached."""
    digits = text.lstrip("+-")
    if len(digits) > 19 or abs(value := int(text)) > MAX_INT:
        raise ValueError(f"number '{_short(text)}' is too large")
    return value


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + "..."


def parse_float(text: str) -> float:
    """A finite float, or ``ValueError`` (``1e999`` would journal as ``Infinity``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number '{_short(text)}' is too large")
    return value
