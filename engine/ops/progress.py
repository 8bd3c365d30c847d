"""Progress of a fan-out on stderr: a bar on a terminal, one-line summaries elsewhere.

A bar drawn into a log file or a CI job's output is noise (or nothing, when it is
withheld); a job that prints nothing for an hour looks hung. So without a terminal the
progress is a line such as ``fleetlog: configure: 340/1000 done, 2 failed`` each time
another tenth of the members has finished, and at least every ``SUMMARY_EVERY``
seconds while any is still running, ending with a line for the whole.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Protocol

#: Longest silence between two summary lines without a terminal (seconds).
SUMMARY_EVERY = 5.0


class Progress(Protocol):
    def advance(self, failed: bool = False) -> None: ...

    def close(self) -> None: ...


def progress_for(total: int, label: str) -> Progress:
    """A bar when stderr is a terminal, else ``Summaries``."""
    if sys.stderr.isatty():
        return Bar(total, label)
    return Summaries(total, label)


class Bar:
    """A rich progress bar on stderr (rich imported only when a terminal will show it)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress(
            "[bold]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(label or "resources", total=total)

    def advance(self, failed: bool = False) -> None:
        self.progress.advance(self.task)

    def close(self) -> None:
        self.progress.stop()


class Summaries:
    """One line on stderr per tenth of the members finished, or after ``every`` seconds
    without one (a timer thread, so a long step still shows the job alive); the last
    line is written when every member has finished."""

    def __init__(self, total: int, label: str, every: float = SUMMARY_EVERY) -> None:
        self.total = max(1, total)
        self.label = label or "resources"
        self.done = 0
        self.failed = 0
        self._tenths = 0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._last = time.monotonic()
        self._every = every
        self._timer = threading.Thread(target=self._tick, name="fanout-progress", daemon=True)
        self._timer.start()

    def line(self) -> str:
        failed = f", {self.failed} failed" if self.failed else ""
        return f"fleetlog: {self.label}: {self.done}/{self.total} done{failed}"

    def advance(self, failed: bool = False) -> None:
        with self._lock:
            self.done += 1
            self.failed += int(failed)
            tenths = self.done * 10 // self.total
            if tenths > self._tenths:
                self._tenths = tenths
                self._write()

    def close(self) -> None:
        self._closed.set()

    def _write(self) -> None:
        self._last = time.monotonic()
        sys.stderr.write(self.line() + "\n")
        sys.stderr.flush()

    def _tick(self) -> None:
        while not self._closed.wait(max(0.05, self._last + self._every - time.monotonic())):
            with self._lock:
                if self.done < self.total and time.monotonic() - self._last >= self._every:
                    self._write()
