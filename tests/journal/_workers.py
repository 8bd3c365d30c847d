"""Code run in child processes by the multi-process tests (must be importable by spawn)."""

from __future__ import annotations

from fleetlog.journal import NewEvent
from fleetlog.journal.sqlite import SQLiteJournal


def append_many(path: str, worker: int, count: int) -> int:
    """Append ``count`` single events to streams shared with the other workers."""
    with SQLiteJournal(path, actor=f"worker{worker}") as journal:
        for i in range(count):
            journal.append(f"shared/{i % 7}", [NewEvent("step.started", {"w": worker, "i": i})])
    return count


def append_many_url(url: str, worker: int, count: int) -> int:
    """``append_many`` on any journal URL (PostgreSQL)."""
    from fleetlog.journal import open_journal

    with open_journal(url, actor=f"worker{worker}") as journal:
        for i in range(count):
            journal.append(f"shared/{i % 7}", [NewEvent("step.started", {"w": worker, "i": i})])
    return count
