"""The bounds on what fleetlog accepts from outside: names, text values, node sets, seqs,
times, durations and integers.

Every entry point — command-line arguments, inventories, ``--param`` values, imports,
plugin arguments — checks against these before anything is expanded or journaled, so a
bad value is a one-line usage error (exit 2) that says where it was given, never a crash
later in a transition. docs/inventory.md and the header of docs/cli.md list them.

- **Text**: no NUL, no other control character (C0, DEL, C1), no lone surrogate (text
  that was not UTF-8), no line or paragraph separator and no bidirectional override.
  Free-text values (parameter values, ``--reason``) may hold tabs and line breaks.
- **Names** (resource names): at most 253 bytes of UTF-8, as DNS names.
- **Values**: at most 64 KiB each; a command-line argument at most 128 KiB (Linux's own
  limit for one argument of a program it starts).
- **Node sets**: counted before they are expanded, and refused when they would name more
  than 1,000,000 resources (``FLEETLOG_MAX_NODESET`` changes the cap). Node groups
  (``@group``) and wildcards are never resolved from ClusterShell's configuration.
- **Numbers and times**: a seq is 0..2^63-1 (SQLite's INTEGER); integer parameters are
  64-bit; floats are finite; times lie in 1970..9999 (UTC); durations in 0..366 days.
"""

from __future__ import annotations

import math
import os
import re
import unicodedata
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from fleetlog.errors import UsageError

#: The longest resource name, in bytes of UTF-8 (a DNS name's limit).
MAX_NAME_BYTES = 253
#: The longest text value (a parameter, an inventory value), in bytes of UTF-8.
MAX_VALUE_BYTES = 64 * 1024
#: The longest command-line argument, in bytes: Linux's MAX_ARG_STRLEN.
MAX_ARG_BYTES = 128 * 1024
#: The most resources one node set may name, unless ``FLEETLOG_MAX_NODESET`` says otherwise.
DEFAULT_MAX_NODESET = 1_000_000
MAX_NODESET_ENV = "FLEETLOG_MAX_NODESET"
#: The largest journal seq (and the largest integer SQLite stores).
MAX_SEQ = 2**63 - 1
MIN_INT = -(2**63)
MAX_INT = 2**63 - 1
#: Times fleetlog accepts: from the Unix epoch to the last day datetime can shift by a zone.
MIN_TIME = datetime(1970, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9999, 12, 30, tzinfo=UTC)
#: The longest duration (``--every``), in seconds.
MAX_DURATION = 366 * 86400.0

#: What free text (a parameter value, a reason) may hold that a name may not: tabs and
#: line breaks (CRLF and Unicode's line and paragraph separators included).
TEXT_BREAKS = "\t\n\r\u2028\u2029"
# Bidirectional formatting characters: they reorder what a terminal shows ("Trojan source").
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_NAMES = {
    "\t": "a tab",
    "\n": "a newline",
    "\r": "a carriage return",
    "\x1b": "an escape",
    "\x7f": "a DEL",
}


class InputError(UsageError):
    """A value from outside fleetlog that is out of its bounds (exit 2)."""


class NodeSetTooLarge(InputError):
    msg_fmt = (
        "node set %(nodeset)s names %(count)s resources, more than the %(limit)s allowed "
        "(set " + MAX_NODESET_ENV + " to raise the cap)"
    )


# ---------------------------------------------------------------------------- text


def _unsafe(c: str) -> bool:
    if c in _BIDI:
        return True
    return unicodedata.category(c) in _UNSAFE_CATEGORIES


def unsafe_chars(text: str, allow: str = "") -> list[str]:
    """The distinct characters of ``text`` that may not be in input, in order of first use:
    control characters (but those in ``allow``), lone surrogates, line and paragraph
    separators and bidirectional overrides."""
    if text.isascii() and text.isprintable():  # the usual text, told in C
        return []
    seen: dict[str, None] = {}
    for c in text:
        if (c < " " or c >= "\x7f") and c not in allow and c not in seen and _unsafe(c):
            seen[c] = None
    return list(seen)


def _escape_char(c: str) -> str:
    n = ord(c)
    if n < 0x100:
        return f"\\x{n:02x}"
    if n < 0x10000:
        return f"\\u{n:04x}"
    return f"\\U{n:08x}"


def escape(text: str, keep: str = "") -> str:
    """``text`` with every character ``unsafe_chars`` names (but those in ``keep``) written
    as an escape (``\\x1b``, ``\\u202e``), so that a message never sends a raw control
    character to the operator's terminal."""
    if text.isprintable():
        return text
    return "".join(
        _escape_char(c) if (c < " " or c >= "\x7f") and c not in keep and _unsafe(c) else c
        for c in text
    )


def describe(chars: Iterable[str]) -> str:
    """``a NUL character ('\\x00')``, ``control characters ('\\x1b', '\\x07')``."""
    chars = list(chars)
    listed = ", ".join(repr(c) for c in chars[:5]) + (", ..." if len(chars) > 5 else "")
    if chars == ["\x00"]:
        return "a NUL character ('\\x00')"
    if len(chars) == 1:
        return f"{_NAMES.get(chars[0], 'a control')} character ({listed})"
    return f"control characters ({listed})"


def byte_length(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def text_problem(
    text: str, *, multiline: bool = False, max_bytes: int = MAX_VALUE_BYTES
) -> str | None:
    """Why ``text`` cannot be a value, or None. ``multiline``: tabs and line breaks
    (``TEXT_BREAKS``) are allowed (free text: a parameter value, a reason)."""
    bad = unsafe_chars(text, TEXT_BREAKS if multiline else "")
    if bad:
        return f"{describe(bad)} cannot be in a value"
    size = byte_length(text)
    if size > max_bytes:
        return f"a value is at most {max_bytes} bytes (this one is {size})"
    return None


def check_text(
    text: str, where: str, *, multiline: bool = False, max_bytes: int = MAX_VALUE_BYTES
) -> str:
    """``text``, or ``InputError`` naming ``where`` (an option, a file and table)."""
    problem = text_problem(text, multiline=multiline, max_bytes=max_bytes)
    if problem is not None:
        raise InputError(f"{where}: {problem}")
    return text


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a resource name as far as these bounds go (control
    characters, length), or None. The pattern characters are ``ops.resources``' rule."""
    bad = unsafe_chars(name)
    if bad:
        return f"{describe(bad)} cannot be in a name"
    size = byte_length(name)
    if size > MAX_NAME_BYTES:
        return f"a name is at most {MAX_NAME_BYTES} bytes, as in DNS (this one is {size})"
    return None


def shown(text: str, width: int = 60) -> str:
    """``text`` quoted for a message, as ``repr`` quotes it (every control character
    escaped) and cut to about ``width`` characters: an over-long value is not worth
    echoing whole."""
    if len(text) > width:
        return repr(text[: width - 3]) + "..."
    return repr(text)


# ---------------------------------------------------------------------------- numbers


_ASCII_DIGITS = re.compile(r"[0-9]+")


def parse_seq(text: str, where: str) -> int | None:
    """``text`` as a journal seq when it is ASCII digits (else None: the caller tries a
    time); ``InputError`` when it is larger than any seq can be."""
    if not _ASCII_DIGITS.fullmatch(text):
        return None
    digits = text.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > MAX_SEQ:
        raise InputError(f"{where} {shown(text, 30)}: a seq is at most {MAX_SEQ}")
    return int(digits)


def int_problem(value: int) -> str | None:
    if not MIN_INT <= value <= MAX_INT:
        return f"an integer lies in {MIN_INT}..{MAX_INT}"
    return None


def float_problem(value: float) -> str | None:
    if not math.isfinite(value):
        return "a number must be finite"
    return None


def parse_time(text: str, where: str) -> datetime:
    """An ISO-8601 time (UTC when it names no zone) as an aware UTC datetime, in
    ``MIN_TIME``..``MAX_TIME``; ``InputError`` naming ``where`` otherwise."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        when = when.astimezone(UTC)
    except (ValueError, OverflowError):
        raise InputError(
            f"{where} {shown(text, 40)}: expected an ISO time such as 2026-11-25T14:02:00Z"
        ) from None
    return check_time(when, where, text)


def check_time(when: datetime, where: str, text: Any = None) -> datetime:
    if not MIN_TIME <= when <= MAX_TIME:
        given = shown(str(text if text is not None else when), 40)
        raise InputError(f"{where} {given}: a time lies between 1970-01-01 and 9999-12-30 (UTC)")
    return when


def iso(when: datetime) -> str:
    """The journal's form of a time: ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (four-digit year)."""
    when = when.astimezone(UTC)
    return f"{when.year:04d}" + when.strftime("-%m-%dT%H:%M:%S.%fZ")


def check_duration(seconds: float, where: str, text: str) -> float:
    if not (math.isfinite(seconds) and 0 <= seconds <= MAX_DURATION):
        raise InputError(f"{where} {shown(text, 30)}: a duration lies in 0s..366 days")
    return seconds


# ---------------------------------------------------------------------------- node sets


def max_nodeset() -> int:
    """The node-set cap: ``FLEETLOG_MAX_NODESET`` when set, else 1,000,000."""
    raw = os.environ.get(MAX_NODESET_ENV, "").strip()
    if not raw:
        return DEFAULT_MAX_NODESET
    if not _ASCII_DIGITS.fullmatch(raw) or len(raw) > 19 or int(raw) < 1:
        raise InputError(f"{MAX_NODESET_ENV}={shown(raw, 30)}: expected a positive integer")
    return int(raw)


def _range_size(rng: str) -> int:
    """How many indexes a ClusterShell range set (``1-10/2,15``) holds, read as
    ``RangeSet._parse`` reads it; a piece it would refuse counts 1 (it is refused)."""
    total = 0
    for sub in rng.split(","):
        sub = sub.strip()
        base, slash, step_text = sub.partition("/")
        try:
            step = int(step_text) if slash else 1
            parts = [p.strip() for p in base.split("-")]
            if len(parts) == 1:
                start = stop = int(parts[0])
            elif len(parts) == 2:
                if parts[0]:
                    start, stop = int(parts[0]), int(parts[1])
                else:  # "-5"
                    start = stop = -int(parts[1])
            elif len(parts) == 3:  # "-0-3"
                start, stop = -int(parts[1]), int(parts[2])
            elif len(parts) == 4:  # "-8--4"
                start, stop = -int(parts[1]), -int(parts[3])
            else:
                raise ValueError(sub)
        except ValueError:
            total += 1
            continue
        if step < 1 or start > stop:
            total += 1
            continue
        total += (stop - start) // step + 1
    return total


def nodeset_size(text: str) -> int:
    """An upper bound on the names ``text``, a ClusterShell node set, expands to — and
    on what expanding it costs — computed without expanding it: each operand between
    the operators ``, ! & ^`` is the product of its bracket ranges, and the operands add
    up (ClusterShell builds every operand before combining them)."""
    total = 0
    operand = 1
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "[":
            end = text.find("]", i + 1)
            if end < 0:
                break  # "missing bracket": refused by the parser
            operand *= _range_size(text[i + 1 : end])
            i = end + 1
            continue
        if c in ",!&^":
            total += operand
            operand = 1
        i += 1
    return total + operand


def check_nodeset(text: str) -> int:
    """The size bound of ``text``; ``NodeSetTooLarge`` when it is over the cap."""
    count = nodeset_size(text)
    limit = max_nodeset()
    if count > limit:
        raise NodeSetTooLarge(nodeset=shown(text), count=count, limit=limit)
    return count


#: The usual large node set, ``node[1-100000]``: one range of unpadded numbers between a
#: prefix and a suffix without digits. Its names are made directly, in ClusterShell's
#: order (tests/test_limits.py compares the two): ClusterShell sorts every name of a
#: range with a Python key, a third of a second for 100,000 names.
_ONE_RANGE = re.compile(r"([A-Za-z_.-]*)\[(0|[1-9][0-9]*)-(0|[1-9][0-9]*)\]([A-Za-z_.-]*)")


def expand_nodeset(text: str) -> list[str]:
    """The names of a ClusterShell node set, counted first (``NodeSetTooLarge``), with
    node groups and wildcards left unresolved (never an upcall from groups.conf).
    A malformed set raises ``NodeSetParseError``, or ``ValueError`` for the few inputs
    ClusterShell itself trips over."""
    check_nodeset(text)
    simple = _ONE_RANGE.fullmatch(text)
    if simple is not None and int(simple[2]) <= int(simple[3]):
        prefix, suffix = simple[1], simple[4]
        return [f"{prefix}{i}{suffix}" for i in range(int(simple[2]), int(simple[3]) + 1)]
    from ClusterShell.NodeSet import RESOLVER_NOGROUP, NodeSet, NodeSetParseError

    try:
        return list(NodeSet(text, resolver=RESOLVER_NOGROUP))
    except NodeSetParseError:
        raise
    except (ValueError, TypeError, IndexError, KeyError, AssertionError) as exc:
        raise ValueError(f"cannot parse node set: {type(exc).__name__}: {exc}") from None
