"""Checking a sequence of stored rows: hash chain, seq contiguity, stream versions.

Shared by ``verify`` (rows streamed from a backend) and ``import_`` (rows parsed from a
file), so a file is accepted exactly when the journal it would produce verifies. Rows are
tuples in ``Event.COLUMNS`` order with the payload as canonical JSON text; the loop keeps
everything in locals because it runs once per event over the whole journal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fleetlog.journal.base import GENESIS_HASH, VerifyReport
from fleetlog.journal.canonical import hash_row


@dataclass(frozen=True, slots=True)
class ChainResult:
    """The outcome of a check; ``position`` is the 0-based index of the offending row."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None
    position: int | None = None

    def report(self) -> VerifyReport:
        return VerifyReport(self.ok, self.events, self.first_bad_seq, self.reason)


def check_rows(rows: Iterable[Sequence[Any]]) -> ChainResult:
    """Walk ``rows`` from genesis and stop at the first problem.

    The checks, in order, for each row: its seq is the previous seq + 1 (a gap names the
    missing seq); its ``prev_hash`` is the previous row's ``hash`` (catches deleted,
    reordered or swapped rows); its ``hash`` recomputes (catches edited content); its
    version is its stream's previous version + 1; its ``recorded_at`` is not earlier
    than the previous row's (time lookups rely on that order).
    """
    expected_seq = 1
    prev = GENESIS_HASH
    prev_at = ""
    versions: dict[str, int] = {}
    get_version = versions.get
    n = 0
    for row in rows:
        seq = row[0]
        if seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                return ChainResult(
                    False,
                    n,
                    expected_seq,
                    f"seq {expected_seq} is missing (the next stored seq is {seq})",
                    n,
                )
            return ChainResult(
                False, n, expected_seq, f"found seq {seq!s} where seq {expected_seq} belongs", n
            )
        if row[12] != prev:
            return ChainResult(
                False,
                n,
                seq,
                f"prev_hash does not match the hash of seq {seq - 1} "
                "(a row was removed, reordered or replaced)"
                if seq > 1
                else "prev_hash of the first event is not the genesis hash",
                n,
            )
        digest = row[13]
        if hash_row(*row[:13]) != digest:
            return ChainResult(False, n, seq, "hash mismatch: the event's content was altered", n)
        stream = row[2]
        version = row[3]
        before = get_version(stream, 0)
        if version != before + 1:
            return ChainResult(
                False,
                n,
                seq,
                f"stream {stream} has version {version} after version {before}",
                n,
            )
        at = row[10]
        if at < prev_at:
            return ChainResult(
                False, n, seq, f"recorded_at {at} is earlier than the previous event's", n
            )
        versions[stream] = version
        prev_at = at
        prev = digest
        expected_seq += 1
        n += 1
    return ChainResult(True, n)
