"""``fleetlog worker`` and ``fleetlog fire --submit``: work shared through one journal.

``fire --submit`` journals the commands (``command.accepted``) and returns; workers on
any number of hosts pointed at the same journal (PostgreSQL, or one SQLite file on one
host) claim and run them, and take over transitions whose worker died
(``engine.worker``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Any

import typer

from engine import output
from engine.session import Session

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


def submit_many(
    session: Session,
    runner: Any,
    ids: list[str],
    trigger: str,
    given: dict[str, Any],
    *,
    command_id: str | None,
    json: bool,
) -> None:
    """``fire --submit``: validate and journal one ``command.accepted`` per resource."""
    from engine.worker import submit_many as submit_all
    from journal.ids import uuid7

    run = uuid7() if len(ids) > 1 else None
    submitted = submit_all(runner, ids, trigger, given, command_id=command_id, run=run)
    if json:
        output.emit_json(
            [
                {
                    "resource": ev.stream,
                    "trigger": trigger,
                    "command_id": ev.command_id,
                    "seq": ev.seq,
                }
                for ev in submitted
            ]
        )
        return
    from engine.patterns import fold_names

    output.say(
        f"{fold_names([ev.stream for ev in submitted])} ({len(submitted)}): {trigger} "
        "submitted; `fleetlog worker` runs it"
    )


def worker(
    ctx: typer.Context,
    parallel: int = typer.Option(4, "--parallel", min=1, help="Transitions run at once."),
    once: bool = typer.Option(
        False,
        "--once",
        help="Run what can be claimed now, then exit (work held by live workers elsewhere "
        "is left to them).",
    ),
    idle_wait: float = typer.Option(
        1.0,
        "--idle-wait",
        min=0.01,
        help="Longest wait for new work before looking again (seconds); PostgreSQL "
        "wakes workers at once with NOTIFY.",
    ),
    json: bool = JSON,
) -> None:
    """Claim and run work from a shared journal: commands `fire --submit` journaled, and
    interrupted transitions whose lease expired or whose process died. Run one per host
    (or several) on one journal. SIGTERM or Ctrl-C: finish the current step of each
    transition, release its leases, exit 0; another worker resumes it."""
    from engine.cli_run import runner as make_runner
    from engine.worker import Worker

    session: Session = ctx.obj
    session.require_existing()
    say_lock = threading.Lock()

    def report(label: str, text: str) -> None:
        with say_lock:
            if json:
                sys.stdout.write(
                    __import__("json").dumps({"job": label, "outcome": text}, sort_keys=True) + "\n"
                )
            else:
                output.say(f"{label}: {text}")
            sys.stdout.flush()

    w = Worker(make_runner(session), parallel=parallel, idle_wait=idle_wait, report=report)

    def on_signal(signum: int, _frame: object) -> None:
        if w.stopping and signum == signal.SIGINT:
            os._exit(130)  # a second Ctrl-C: leave at once, leases expire on their own
        w.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = w.run(once=once)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not json and once and not result.outcomes:
        output.say("nothing to run")


COMMANDS = {"worker": worker}
