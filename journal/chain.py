"""Checking a sequence of stored rows: hash chain, seq contiguity, stream versions.

Shared by ``verify`` (rows streamed from a backend) and ``import_`` (rows parsed from a
file), so a file is accepted exactly when the journal it would produce verifies. Rows are
tuples in ``Event.COLUMNS`` order with the payload as canonical JSON text; the loop keeps
everything in locals because it runs once per event over the whole journal.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from fleetlog.frozen import frozen
from fleetlog.journal.base import GENESIS_HASH, VerifyReport
from fleetlog.journal.canonical import hash_row


class VersionBefore(Protocol):
    def __call__(self, stream: str, before_seq: int) -> int:
        """The version ``stream`` had at seq ``before_seq`` (0 if it had none)."""


@frozen
class ChainStart:
    """Where a check of part of the chain starts: after the event at ``seq``, whose hash
    is ``hash`` and time ``recorded_at`` (all already verified). ``version_before`` gives
    each stream's version at that point, asked once per stream the rows touch."""

    seq: int
    hash: str
    recorded_at: str
    version_before: VersionBefore


@frozen
class ChainResult:
    """The outcome of a check; ``position`` is the 0-based index of the offending row.
    ``last_seq``/``last_hash``: the last row found sound (the start when none was)."""

    ok: bool
    events: int
    first_bad_seq: int | None = None
    reason: str | None = None
    position: int | None = None
    last_seq: int = 0
    last_hash: str = GENESIS_HASH

    def report(self) -> VerifyReport:
        return VerifyReport(
            self.ok, self.events, self.first_bad_seq, self.reason, self.last_seq, self.last_hash
        )


def check_rows(rows: Iterable[Sequence[Any]], start: ChainStart | None = None) -> ChainResult:
    """Walk ``rows`` from genesis (or from ``start``) and stop at the first problem.

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
    version_before: VersionBefore | None = None
    start_seq = 0
    if start is not None:
        start_seq = start.seq
        expected_seq = start.seq + 1
        prev = start.hash
        prev_at = start.recorded_at
        version_before = start.version_before
    n = 0
    for row in rows:
        seq = row[0]
        if seq != expected_seq:
            if isinstance(seq, int) and seq > expected_seq:
                return _broken(
                    n,
                    expected_seq,
                    prev,
                    expected_seq,
                    f"seq {expected_seq} is missing (the next stored seq is {seq})",
                )
            return _broken(
                n,
                expected_seq,
                prev,
                expected_seq,
                f"found seq {seq!s} where seq {expected_seq} belongs",
            )
        if row[12] != prev:
            return _broken(
                n,
                expected_seq,
                prev,
                seq,
                f"prev_hash does not match the hash of seq {seq - 1} "
                "(a row was removed, reordered or replaced)"
                if seq > 1
                else "prev_hash of the first event is not the genesis hash",
            )
        digest = row[13]
        if hash_row(*row[:13]) != digest:
            return _broken(
                n, expected_seq, prev, seq, "hash mismatch: the event's content was altered"
            )
        stream = row[2]
        version = row[3]
        before = get_version(stream)
        if before is None:
            before = 0 if version_before is None else version_before(stream, start_seq)
        if version != before + 1:
            return _broken(
                n,
                expected_seq,
                prev,
                seq,
                f"stream {stream} has version {version} after version {before}",
            )
        at = row[10]
        if at < prev_at:
            return _broken(
                n, expected_seq, prev, seq, f"recorded_at {at} is earlier than the previous event's"
            )
        versions[stream] = version
        prev_at = at
        prev = digest
        expected_seq += 1
        n += 1
    return ChainResult(True, n, last_seq=expected_seq - 1, last_hash=prev)


def _broken(n: int, expected_seq: int, prev: str, bad: int, reason: str) -> ChainResult:
    return ChainResult(False, n, bad, reason, n, expected_seq - 1, prev)
