"""Ctrl-C: exit 130, saying what state the work was left in.

A command that runs no transition is interrupted at once, as any program is. While one
runs transitions, the first SIGINT asks each runner to stop before its next step (what
a worker does on SIGTERM): the step under way finishes and is journaled, leases are
released, and every transition not finished stays in progress, so ``fleetlog resume``
continues it where it stopped. A second SIGINT leaves at once; the transitions still
stay in progress, and their leases expire on their own.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from fleetlog.errors import FleetlogError

if TYPE_CHECKING:
    from fleetlog.engine.runtime import Runner

EXIT_CODE = 130
RESUME = (
    "`fleetlog resume --all` continues them and any unfinished fan-out plan "
    "(`fleetlog status` shows where each stopped)"
)
STOPPED = (
    "interrupted: each transition that was running stopped before its next step (the "
    "step under way finished and is journaled) and released its lease; " + RESUME
)
NOTHING_STARTED = "interrupted; this command started no transition, none is left mid-way"
STARTING = "interrupted while starting; nothing was read or run"
AGAIN = (
    "interrupted again: leaving now; the transitions still running stay in progress and "
    "their leases expire; " + RESUME
)


class Interrupted(FleetlogError):
    """A command stopped by SIGINT that says itself what it left (``fleetlog worker``);
    printed as ``fleetlog: MESSAGE``, exit 130."""

    exit_code = EXIT_CODE


class Interrupts:
    """The SIGINT handler of one command. ``runners``: the runners the command has made
    so far (none: the default, ``KeyboardInterrupt``)."""

    def __init__(self, runners: Callable[[], list[Runner]]) -> None:
        self.runners = runners
        self.count = 0
        self.stopped_runners = False

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """Handle SIGINT while the block runs (only a main thread may set handlers; in
        another, e.g. a test calling ``main`` from a thread, nothing is changed)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_sigint(self, _signum: int, _frame: Any) -> None:
        self.count += 1
        runners = self.runners()
        if not runners:
            raise KeyboardInterrupt
        if self.count == 1:
            self.stopped_runners = True
            for runner in runners:
                runner.stopping.set()
            sys.stderr.write(
                "fleetlog: interrupted: stopping each transition before its next step "
                "(Ctrl-C again to leave at once)\n"
            )
            sys.stderr.flush()
            return
        # Transitions run on other threads and hold the journal: leave without closing
        # it under them. An append is whole or absent, so the journal stays sound.
        sys.stderr.write(f"fleetlog: {AGAIN}\n")
        sys.stderr.flush()
        os._exit(EXIT_CODE)

    def message(self) -> str:
        """What ``main`` prints when the command ended interrupted."""
        return STOPPED if self.stopped_runners else NOTHING_STARTED


def while_starting() -> None:
    """Ctrl-C landed while the ``fleetlog`` console script was still importing the CLI
    (typer, the packs and their commands: the first tenth of a second). Exit 130 with one
    line, as an interrupted command does, instead of Python's traceback from whichever
    import it hit; nothing has been read or written yet. Anything else importing the CLI
    (a test, a library caller, ``python -c``) gets its ``KeyboardInterrupt`` back: this
    returns and the caller re-raises."""
    if os.path.basename(sys.argv[0] if sys.argv else "") != "fleetlog":
        return
    sys.stderr.write(f"fleetlog: {STARTING}\n")
    sys.stderr.flush()
    raise SystemExit(EXIT_CODE)
