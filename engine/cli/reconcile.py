"""Commands that compare the journal with the world: reconcile, ingest, audit."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.journal import resolve_at
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.session import Session
from fleetlog.errors import UsageError

JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of text.")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
#: Exit code of ``reconcile --every`` stopped by SIGINT/SIGTERM after a clean stop.
CLEAN_STOP = 0


def parse_duration(text: str) -> float:
    """``60s``, ``5m``, ``1h``, ``250ms`` or plain seconds."""
    m = _DURATION.match(text)
    if m is None:
        raise UsageError(f"--every {text!r}: expected a duration such as 60s, 5m or 1h")
    return float(m.group(1)) * _UNITS[m.group(2)]


# ---------------------------------------------------------------------------- reconcile
def _print_report(report: Any, json: bool, pass_no: int | None) -> None:
    from fleetlog.engine.ops.reconcile import summary_line

    if json:
        data = report.to_dict()
        if pass_no is not None:
            data["pass"] = pass_no
            # One object per line per pass, so a follower can read them as they come.
            sys.stdout.write(__import__("json").dumps(data, sort_keys=True, default=str) + "\n")
        else:
            output.emit_json(data)
    else:
        for f in report.findings:
            if f.fixed:
                what = f"fixed -> {f.fix_to} (seq {f.fix_seq})"
            elif f.unfixable:
                what = f"unfixable: {f.unfixable}"
            else:
                what = f"fix would set {f.fix_to}"
            seen = "" if f.new else " (already recorded)"
            output.say(
                f"{f.cls:<11} {f.resource}: journal {f.journal_state}, backend "
                f"{f.observed!r} -> {f.mapped}; {what} [finding seq {f.detected_seq}{seen}]"
            )
        for note in report.notes:
            output.say(f"note: {note}")
        prefix = f"pass {pass_no}: " if pass_no is not None else ""
        output.say(prefix + summary_line(report))
    sys.stdout.flush()


def reconcile(
    ctx: typer.Context,
    pattern: str = typer.Argument(None, help="KIND, KIND/NODESET or a glob (default: all)."),
    fix: list[str] = typer.Option(
        [],
        "--fix",
        help="Fix findings of this class: stale, orphan, unsynced, build_error or all "
        "(repeatable). Without it, reconcile only detects.",
    ),
    every: str = typer.Option(
        None,
        "--every",
        help="Run a pass every DURATION (60s, 5m) until SIGINT/SIGTERM; exits 0 after a "
        "clean stop.",
    ),
    limit: int = typer.Option(
        None, "--limit", min=1, help="At most N resources per pass (rotating)."
    ),
    passes: int = typer.Option(None, "--passes", min=1, help="With --every: stop after N passes."),
    json: bool = JSON,
) -> None:
    """Compare the backend's observed status with the journal: stale, orphan, unsynced,
    build errors. Detect-only unless --fix; every finding and fix is journaled. Exit 3
    when drift remains."""
    from fleetlog.engine.ops.reconcile import Reconciler, parse_fix

    session: Session = ctx.obj
    fixes = parse_fix(fix)
    if every is None:
        if passes is not None:
            raise UsageError("--passes goes with --every")
        rec = Reconciler(
            session.journal,
            session.registry,
            session.backend,
            pattern=pattern,
            fix=fixes,
            limit=limit,
        )
        report = rec.run_pass()
        _print_report(report, json, None)
        if report.drift_remaining:
            raise typer.Exit(3)
        return
    interval = parse_duration(every)
    code = _periodic(session, pattern, fixes, limit, interval, passes, json)
    if code:
        raise typer.Exit(code)


def _periodic(
    session: Session,
    pattern: str | None,
    fixes: frozenset[str],
    limit: int | None,
    interval: float,
    passes: int | None,
    json: bool,
) -> int:
    """Passes until a signal (or ``passes``). A signal only sets a flag: the resource
    being checked is finished (its finding and fix are each one atomic append), the rest
    of the pass is abandoned, and the loop ends."""
    import signal
    import threading

    from fleetlog.engine.ops.reconcile import Reconciler

    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        rec = Reconciler(
            session.journal,
            session.registry,
            session.backend,
            pattern=pattern,
            fix=fixes,
            limit=limit,
            should_stop=stop.is_set,
        )
        n = 0
        last = None
        while not stop.is_set():
            n += 1
            last = rec.run_pass()
            _print_report(last, json, n)
            if passes is not None and n >= passes:
                return 3 if last.drift_remaining else 0
            if _wait(stop, interval):
                break
        output.warn(f"reconcile: stopped by signal after {n} pass(es)")
        return CLEAN_STOP
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _wait(stop: Any, seconds: float) -> bool:
    """Sleep until ``stop`` is set or ``seconds`` pass; True when stopped. In short
    slices: a signal the kernel delivers to another thread of the process only runs its
    Python handler once the main thread executes bytecode again."""
    import time

    deadline = time.monotonic() + seconds
    while not stop.is_set():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        stop.wait(min(left, 0.25))
    return True


# ---------------------------------------------------------------------------- ingest
def ingest(
    ctx: typer.Context,
    file: str = typer.Argument("-", help="Messages: a file, or - for stdin."),
    skip_bad: bool = typer.Option(
        False,
        "--skip-bad",
        help="Journal the good messages and report the bad ones (exit 1), instead of "
        "refusing the whole input.",
    ),
    ganeti_kind: str = typer.Option(
        "vm", "--ganeti-kind", help="Kind of the resources Ganeti instances are."
    ),
    json: bool = JSON,
) -> None:
    """Journal backend event messages (JSON lines, or Ganeti job results in Python-literal
    syntax) as backend.observed events; duplicates and messages not newer than the last
    applied one are dropped and counted. A bad message refuses the input (exit 2)."""
    from fleetlog.engine.ops.ingest import ingest as run

    session: Session = ctx.obj
    session.registry.get(ganeti_kind)
    if file == "-":
        lines: Any = sys.stdin
        name = "<stdin>"
    else:
        try:
            lines = open(file, encoding="utf-8", errors="strict")
        except OSError as exc:
            raise UsageError(f"{file}: {exc.strerror}") from None
        name = file
    try:
        report = run(
            session.journal,
            session.registry,
            _decoded(lines, name),
            source=name,
            source_kind=ganeti_kind,
            skip_bad=skip_bad,
        )
    finally:
        if lines is not sys.stdin:
            lines.close()
    for err in report.bad:
        output.warn(f"fleetlog: error: {err}")
    if json:
        output.emit_json(report.to_dict())
    else:
        d = report.to_dict()
        output.say(
            "ingest: {read} message(s) read, {applied} applied, {duplicates} duplicate(s), "
            "{out_of_order} out of order, {unknown} for unknown resources, "
            "{ignored} ignored, {bad} bad".format(**d)
        )
    if report.bad:
        raise typer.Exit(1)


def _decoded(lines: Any, name: str) -> Any:
    try:
        yield from lines
    except UnicodeDecodeError as exc:
        raise UsageError(f"{name}: not UTF-8 text ({exc.reason})") from None


# ---------------------------------------------------------------------------- audit
def audit(
    ctx: typer.Context,
    pattern: str = typer.Argument(None, help="KIND, KIND/NODESET or a glob (default: all)."),
    since: str = typer.Option(None, "--since", help="Only entries from this seq or ISO time on."),
    at: str = typer.Option(
        None, "--at", help="Answer as of this point: a journal seq or an ISO time."
    ),
    html: Path = typer.Option(
        None, "--html", help="Also write a self-contained HTML page to FILE."
    ),
    json: bool = JSON,
) -> None:
    """The timeline of each resource: commands (actor, host), transitions with their steps,
    attempts and durations, observations, drift findings and fixes, and why each
    transition ran (its causation chain)."""
    from fleetlog.engine.model.patterns import select
    from fleetlog.engine.ops import audit as audit_mod

    session: Session = ctx.obj
    to_seq = resolve_at(session, at)
    streams = select(pattern, session.journal.streams())
    if pattern and "/" in pattern and not streams:
        raise UsageError(f"no resource matches {pattern!r}")
    timeline = audit_mod.build(
        session.journal,
        session.registry,
        streams,
        to_seq=to_seq,
        since=audit_mod.since_bound(since),
    )
    if html is not None:
        from fleetlog.engine.ops.audit_html import render_html

        html.write_text(render_html(timeline), encoding="utf-8")
        if not json:
            output.warn(f"wrote {html}")
    if json:
        output.emit_json(timeline)
        return
    for line in audit_mod.render_text(timeline):
        output.say(line)


COMMANDS: dict[str, Callable[..., None]] = {
    "reconcile": reconcile,
    "ingest": ingest,
    "audit": audit,
}


def register(app: typer.Typer) -> None:
    add_commands(app, COMMANDS)
