"""Commands that compare the journal with the world: reconcile, ingest, audit."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from fleetlog import limits
from fleetlog.engine.cli import output
from fleetlog.engine.cli.journal import resolve_at
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.session import Session
from fleetlog.errors import UsageError
from fleetlog.frozen import frozen

JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of text.")
_DURATION = re.compile(r"\s*([0-9]{1,12}(?:\.[0-9]{1,9})?)\s*(ms|s|m|h)?\s*")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
#: Exit code of ``reconcile --every`` stopped by SIGINT/SIGTERM after a clean stop.
CLEAN_STOP = 0


def parse_duration(text: str) -> float:
    """``60s``, ``5m``, ``1h``, ``250ms`` or plain seconds; at most 366 days."""
    m = _DURATION.fullmatch(text)
    if m is None:
        raise UsageError(
            f"--every {limits.shown(text, 40)}: expected a duration such as 60s, 5m or 1h"
        )
    return limits.check_duration(float(m.group(1)) * _UNITS[m.group(2)], "--every", text)


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
            output.say(_finding_line(f))
        for note in report.notes:
            output.say(f"note: {note}")
        prefix = f"pass {pass_no}: " if pass_no is not None else ""
        output.say(prefix + summary_line(report))
    sys.stdout.flush()


def _finding_line(f: Any) -> str:
    if f.fixed:
        what = f"fixed (seq {f.fix_seq})" if f.fix_seq else "fixed"
        if f.fix_to:
            what = f"fixed -> {f.fix_to}" + (f" (seq {f.fix_seq})" if f.fix_seq else "")
    elif f.cls == "unknown":
        what = "never fixed"
    elif f.unfixable:
        what = f"unfixable: {f.unfixable}"
    elif f.held:
        what = f"not fixed: {f.held}"
    elif f.fix_attrs is not None:
        what = "fix would set " + ", ".join(f"{k}={v!r}" for k, v in f.fix_attrs.items())
    elif f.fix_run is not None:
        what = f"fix would {f.fix_run} it"
    else:
        what = f"fix would set {f.fix_to}"
    if f.detected_seq is None:
        seen = ""
    else:
        seen = f" [finding seq {f.detected_seq}{'' if f.new else ', already recorded'}]"
    ev = f.evidence
    if f.cls == "unknown":
        about = f"journal {f.journal_state}, backend unknown: {f.unfixable}"
    elif f.cls.startswith("unsynced_"):
        diffs = ev.get("attributes") or {}
        about = "; ".join(
            f"{k} journal {d['journal']!r}, backend {d['backend']!r}" for k, d in diffs.items()
        )
    elif f.cls == "pending_task":
        about = (
            f"{ev.get('task')} in progress at step {ev.get('step')}, its job {ev.get('job')} "
            f"is {ev.get('job_status') or 'gone'}"
        )
    elif ev.get("absent"):
        about = f"journal {f.journal_state}, backend: {ev['absent']}"
    else:
        about = f"journal {f.journal_state}, backend {f.observed!r} -> {f.mapped}"
    build = ev.get("build")
    if build:
        about += f" (build job {build.get('job')}: {build.get('status')})"
    return f"{f.cls:<11} {f.resource}: {about}; {what}{seen}"


@frozen
class _Options:
    """What one reconcile command asked for (every pass of ``--every`` shares it)."""

    pattern: str | None
    fix: list[str]
    limit: int | None
    max_fix_share: float
    read_only: bool
    now: str | None
    listing: list[str]
    jobs: list[str]


def _reconciler(
    session: Session, opts: _Options, should_stop: Callable[[], bool] = lambda: False
) -> Any:
    from fleetlog.engine.ops.observe import Override
    from fleetlog.engine.ops.reconcile import Reconciler, parse_fix

    groups = {c.group for k in session.registry if k.spec.observe for c in k.spec.observe.compares}
    fixes = parse_fix(opts.fix, groups)
    when = None
    if opts.now is not None:
        from fleetlog.engine.ops.ingest import iso_time

        try:
            when = _aware(iso_time(opts.now))
        except ValueError:
            raise UsageError(
                f"--now {opts.now!r}: expected an ISO time (2026-12-07T10:00:00Z)"
            ) from None
    listings = {o.kind: o for o in (Override.parse(x, "--listing") for x in opts.listing)}
    job_lists = {o.kind: o for o in (Override.parse(x, "--jobs") for x in opts.jobs)}
    runs = fixes.wants("pending_task") or fixes.wants("orphan_delete")
    return Reconciler(
        session.journal,
        session.registry,
        session.backend,
        pattern=opts.pattern,
        fix=fixes,
        limit=opts.limit,
        should_stop=should_stop,
        max_fix_share=opts.max_fix_share,
        read_only=opts.read_only,
        now=when,
        listings=listings,
        jobs=job_lists,
        intake=session.runner() if runs else None,
    )


def _aware(text: str) -> Any:
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def reconcile(
    ctx: typer.Context,
    pattern: str = typer.Argument(None, help="KIND, KIND/NODESET or a glob (default: all)."),
    fix: list[str] = typer.Option(
        [],
        "--fix",
        help="Fix findings of this class (repeatable): stale, orphan (adopt), orphan_delete "
        "(adopt, then delete in the backend), unsynced, build_error, pending_task, "
        "unsynced_GROUP (a compare group: unsynced_flavor, ...) or all. 'all' never "
        "includes a fix that ends a resource (stale, orphan_delete, an unsynced one into a "
        "final state): name those. Without --fix, reconcile only detects.",
    ),
    max_fix_share: float = typer.Option(
        0.10,
        "--max-fix-share",
        min=0.0,
        max=1.0,
        help="Brake: when a pass would fix more than this share of the resources of a kind "
        "it checked (one fix is always allowed), it fixes none of that kind and says why.",
    ),
    read_only: bool = typer.Option(
        False, "--read-only", help="Journal nothing, not even the findings (no --fix)."
    ),
    now: str = typer.Option(
        None,
        "--now",
        help="The reconcile clock (ISO time) for build grace periods: reproducible reports.",
    ),
    listing: list[str] = typer.Option(
        [],
        "--listing",
        help="KIND=FORMAT:LOCATION: read KIND's listing from a file or an http(s) URL "
        "instead of running its list command (e.g. ganeti_vm=ganeti_rapi_instances:"
        "https://master:5080/2/instances?bulk=1).",
    ),
    jobs: list[str] = typer.Option(
        [], "--jobs", help="KIND=FORMAT:LOCATION: read KIND's backend jobs likewise."
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
    """Compare the backend with the journal, by Synnefo's rules: stale, orphan, unsynced
    (state and attributes), build errors, pending tasks, and unknown (the backend could
    not tell: never fixed). Detect-only unless --fix; every finding and fix is journaled
    (not with --read-only). Exit 3 when drift remains."""
    session: Session = ctx.obj
    if every is None and passes is not None:
        raise UsageError("--passes goes with --every")
    opts = _Options(pattern, fix, limit, max_fix_share, read_only, now, listing, jobs)
    if every is None:
        rec = _reconciler(session, opts)
        report = rec.run_pass()
        _print_report(report, json, None)
        if report.drift_remaining:
            raise typer.Exit(3)
        return
    interval = parse_duration(every)
    code = _periodic(session, opts, interval, passes, json)
    if code:
        raise typer.Exit(code)


def _periodic(
    session: Session,
    opts: _Options,
    interval: float,
    passes: int | None,
    json: bool,
) -> int:
    """Passes until a signal (or ``passes``). A signal only sets a flag: the resource
    being checked is finished (its finding and fix are each one atomic append), the rest
    of the pass is abandoned, and the loop ends."""
    import signal
    import threading

    stop = threading.Event()
    previous: dict[int, Any] = {}

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.signal(sig, on_signal)
    try:
        rec = _reconciler(session, opts, stop.is_set)
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
        help="Journal the good messages and report each bad one with its line (exit 1), "
        "instead of refusing the whole input; reading goes on at the line after a "
        "broken one.",
    ),
    ganeti_kind: str = typer.Option(
        "vm", "--ganeti-kind", help="Kind of the resources Ganeti instances are."
    ),
    json: bool = JSON,
) -> None:
    """Journal backend event messages (fleetlog JSON lines, snf-ganeti-eventd messages,
    Ganeti job results) and apply them: a job's outcome or a status moves the state the
    kind's rules give it, a resize sets attributes. Duplicates, messages not newer than
    the last applied one and messages for deleted resources are dropped and counted. A
    bad message refuses the whole input (exit 2, nothing journaled)."""
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
            "ingest: {read} message(s) read, {applied} applied ({moved} moved a state, "
            "{attributes} set attributes), {duplicates} duplicate(s), {out_of_order} out "
            "of order, {unknown} for unknown resources, {after_delete} after delete, "
            "{in_progress} under a running transition, {ignored} ignored, {bad} bad".format(**d)
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
    from fleetlog.engine.cli import paths
    from fleetlog.engine.model.patterns import select
    from fleetlog.engine.ops import audit as audit_mod

    session: Session = ctx.obj
    paths.check_output(html, "--html")
    session.for_reading()
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

        paths.write_file(html, render_html(timeline))
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
