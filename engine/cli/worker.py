"""``fleetlog worker``: work shared through one journal.

``fire --submit`` journals the commands (``command.accepted``) and returns; workers on
any number of hosts pointed at the same journal (PostgreSQL, or one SQLite file on one
host) claim and run them, and take over transitions whose worker died
(``ops.worker``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

import typer

from fleetlog.engine.cli import interrupt, output
from fleetlog.engine.cli.interrupt import Interrupted
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.run import MAX_PARALLEL, outcome_dict
from fleetlog.engine.cli.session import Session

JSON = typer.Option(
    False,
    "--json",
    help="Print JSON for scripts: with --once, one document when the run ends "
    '({"outcomes": [...], "errors": [...], "stopped": [...]}, empty lists when idle); '
    'without it, one JSON object per finished job per line ({"job", "outcome"}).',
)
INTERRUPTED = (
    "interrupted: each transition this worker ran stopped before its next step and "
    "released its lease; another worker or `fleetlog resume --all` continues them"
)


def worker(
    ctx: typer.Context,
    parallel: int = typer.Option(
        4, "--parallel", min=1, max=MAX_PARALLEL, help="Transitions run at once."
    ),
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
        max=3600,
        help="Longest wait for new work before looking again (seconds); PostgreSQL "
        "wakes workers at once with NOTIFY.",
    ),
    json: bool = JSON,
) -> None:
    """Claim and run work from a shared journal: commands `fire --submit` journaled, and
    interrupted transitions whose lease expired or whose process died. Run one per host
    (or several) on one journal. SIGTERM: finish the current step of each transition,
    release its leases, exit 0; another worker resumes it. Ctrl-C: the same, exit 130.
    With --once: exit 1 when a job failed, 3 when one needs attention."""
    from fleetlog.engine.ops.fanout import FanoutResult
    from fleetlog.engine.ops.worker import Worker

    session: Session = ctx.obj
    session.require_existing()
    say_lock = threading.Lock()

    def report(label: str, text: str) -> None:
        with say_lock:
            if json and once:
                return  # one document at the end
            if json:
                sys.stdout.write(
                    __import__("json").dumps({"job": label, "outcome": text}, sort_keys=True) + "\n"
                )
            else:
                output.say(f"{label}: {text}")
            sys.stdout.flush()

    w = Worker(session.runner(), parallel=parallel, idle_wait=idle_wait, report=report)

    interrupted = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupted
        if w.stopping and signum == signal.SIGINT:
            # A second Ctrl-C: leave at once, leases expire on their own.
            sys.stderr.write(f"fleetlog: {interrupt.AGAIN}\n")
            sys.stderr.flush()
            os._exit(interrupt.EXIT_CODE)
        interrupted = interrupted or signum == signal.SIGINT
        w.stop()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        result = w.run(once=once)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if json and once:
        output.emit_json(
            {
                "outcomes": [outcome_dict(o) for o in result.outcomes],
                "errors": result.errors,
                "stopped": result.stopped,
            }
        )
    elif once and not result.outcomes and not result.errors:
        output.say("nothing to run")
    if interrupted:
        raise Interrupted(INTERRUPTED)
    if once:
        code = max(FanoutResult(outcomes=result.outcomes).exit_code(), 1 if result.errors else 0)
        if code:
            raise typer.Exit(code)


COMMANDS = {"worker": worker}


def register(app: typer.Typer) -> None:
    add_commands(app, COMMANDS)
