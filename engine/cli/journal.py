"""Journal commands: add, status, history, replay, verify, export, import."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.session import Session
from fleetlog.engine.model import events as ev
from fleetlog.errors import UsageError
from fleetlog.journal import Event

JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")
AT = typer.Option(
    None,
    "--at",
    help="Answer as of this point: a journal seq (e.g. 1200) or an ISO time "
    "(e.g. 2026-11-25T14:02:00Z).",
)

_SEQ = re.compile(r"^\d+$")


def resolve_at(session: Session, at: str | None) -> int | None:
    """``--at`` as a seq: digits are a seq, anything else an ISO-8601 time (UTC if no zone)."""
    if at is None:
        return None
    if _SEQ.match(at):
        return int(at)
    from datetime import UTC, datetime

    try:
        when = datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"--at {at!r}: expected a seq number or an ISO time") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    iso = when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return session.journal.seq_at_time(iso)


def add(
    ctx: typer.Context,
    resource: str = typer.Argument(
        ...,
        help="KIND/NAME of the new resource, e.g. vm/guest7. A name holds no spaces and "
        "none of the pattern characters [ ] , ! & ^ @ * ?, so that patterns can address it.",
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="NAME=VALUE (repeatable). A list[ref KIND] param takes names or node sets "
        "separated by commas, in order: cells=cell[1-3],cell7.",
    ),
    json: bool = JSON,
) -> None:
    """Create a resource in its kind's initial state. A resource its `ref` parameters
    name must already exist (an inventory may name resources it creates itself)."""
    from fleetlog.engine.ops.resources import create_resource

    session: Session = ctx.obj
    from fleetlog.engine.model.params import parse_assignments

    rec = create_resource(
        session.journal,
        session.registry,
        resource,
        parse_assignments(param, resource),
        refs_must_exist=True,
    )
    if json:
        output.emit_json(rec.to_dict())
    else:
        output.say(f"{rec.id} created in state {rec.state} (version {rec.version})")


def _in_progress(rec: Any) -> str:
    ip = rec.in_progress
    if ip is None:
        return ""
    return f"{ip.source} → {ip.target} ({ip.trigger}{' @ ' + ip.step if ip.step else ''})"


def status_rows(records: list[Any]) -> list[dict[str, Any]]:
    rows = []
    for rec in records:
        ip = rec.in_progress
        rows.append(
            {
                "id": rec.id,
                "kind": rec.kind,
                "name": rec.name,
                "state": rec.state,
                "version": rec.version,
                "in_progress": None
                if ip is None
                else {
                    "trigger": ip.trigger,
                    "target": ip.target,
                    "step": ip.step,
                    "source": ip.source,
                },
                "needs_attention": rec.attention,
                "observed": rec.observed,
                "params": rec.params,
                "updated_at": rec.updated_at,
            }
        )
    return rows


def _replayed(session: Session, pattern: str | None, at: str | None) -> list[Any]:
    from fleetlog.engine.model.patterns import select
    from fleetlog.engine.model.replay import replay_all

    to_seq = resolve_at(session, at)
    records = replay_all(session.journal, session.registry, to_seq=to_seq)
    return [records[i] for i in select(pattern, records)]


def status(
    ctx: typer.Context,
    pattern: str = typer.Argument(None, help="KIND, KIND/NODESET (vm/guest[1-4]) or a glob."),
    at: str = AT,
    plan: str = typer.Option(
        None,
        "--plan",
        help="Show a fan-out plan instead: each member done, running, failed, needing "
        "attention or not started.",
    ),
    json: bool = JSON,
) -> None:
    """Current state of every matching resource, replayed from the journal."""
    session: Session = ctx.obj
    session.require_existing()
    if plan is not None:
        if pattern or at:
            raise UsageError("--plan shows one fan-out plan: give it alone")
        _plan_status(session, plan, json)
        return
    records = _replayed(session, pattern, at)
    rows = status_rows(records)
    if json:
        output.emit_json(rows)
        return
    output.table(
        None,
        ["resource", "state", "version", "in progress", "attention"],
        [
            [
                r.id,
                r.state,
                r.version,
                _in_progress(r),
                (f"step {r.attention['step']}: {r.attention['reason']}" if r.attention else ""),
            ]
            for r in records
        ],
        whole=("resource", "state", "version"),
    )


def _plan_status(session: Session, plan_id: str, json: bool) -> None:
    from fleetlog.engine.model.patterns import fold_names
    from fleetlog.engine.ops import plans

    plan = plans.load_plan(session.journal, plan_id)
    standing = plans.members(session.journal, plan)
    counts = plans.counts(standing)
    if json:
        output.emit_json(
            {
                "plan": plan.id,
                "trigger": plan.trigger,
                "params": plan.params,
                "pattern": plan.pattern,
                "parallel": plan.parallel,
                "max_fail": plan.max_fail,
                "finished": plan.finished,
                "counts": counts,
                "members": [
                    {
                        "resource": m.resource,
                        "status": m.status,
                        "state": m.state,
                        "step": m.step,
                        "error": m.error,
                    }
                    for m in (standing[rid] for rid in plan.members)
                ],
            }
        )
        return
    done = "finished" if plan.finished else "unfinished"
    output.say(f"plan {plan.id}: {plan.trigger} on {len(plan.members)} resources ({done})")
    for status_name in plans.MEMBER_STATUSES:
        chosen = [rid for rid in plan.members if standing[rid].status == status_name]
        if chosen:
            output.say(f"  {status_name.replace('_', ' ')} ({len(chosen)}): {fold_names(chosen)}")


def replay(
    ctx: typer.Context,
    pattern: str = typer.Argument(None, help="KIND, KIND/NODESET or a glob."),
    at: str = AT,
    json: bool = JSON,
) -> None:
    """Fold the journal from the start (no snapshots) up to --at, and show the states."""
    session: Session = ctx.obj
    session.require_existing()
    to_seq = resolve_at(session, at)
    records = _replayed(session, pattern, at)
    head = session.journal.head() if to_seq is None else min(to_seq, session.journal.head())
    if json:
        output.emit_json({"seq": head, "resources": status_rows(records)})
        return
    output.say(f"replayed up to seq {head}")
    output.table(
        None,
        ["resource", "state", "version", "in progress"],
        [[r.id, r.state, r.version, _in_progress(r)] for r in records],
        whole=("resource", "state", "version"),
    )


def _short_time(recorded_at: str) -> str:
    """``2026-11-25T23:05:01.484247Z`` as ``2026-11-25 23:05:01.484``: milliseconds are
    enough to read a history by; ``--json`` keeps the exact value."""
    return recorded_at[:23].replace("T", " ")


def _summary(event: Event) -> str:
    p = event.payload
    t = event.type
    if t in ev.MOVES:
        s = f"{p.get('trigger', '')} {p.get('from')} -> {p.get('to')}".strip()
        return s + (f": {p['error']}" if p.get("error") else "")
    if t.startswith("step."):
        s = f"{p.get('step')}"
        if p.get("attempt"):
            s += f" attempt {p['attempt']}"
        if p.get("undo"):
            s += " (undo)"
        if p.get("reason"):
            s += f": {p['reason']}"
        if p.get("error"):
            s += f": {p['error']}"
        return s
    if t == ev.RESOURCE_CREATED:
        return f"in {p.get('state')}"
    if t == ev.COMMAND_ACCEPTED:
        return f"{p.get('trigger')}"
    compact = ", ".join(f"{k}={v}" for k, v in p.items() if not isinstance(v, dict | list))
    return compact[:120]


def history(
    ctx: typer.Context,
    resource: str = typer.Argument(..., help="KIND/NAME"),
    json: bool = JSON,
) -> None:
    """Every journal event of one resource, oldest first."""
    from fleetlog.engine.model.records import split_id

    session: Session = ctx.obj
    session.require_existing()
    split_id(resource)
    events = session.journal.read_stream(resource)
    if not events:
        raise UsageError(f"no resource {resource!r} in the journal")
    if json:
        output.emit_json([e.to_dict() for e in events])
        return
    output.table(
        resource,
        ["seq", "v", "recorded at (UTC)", "type", "actor", "detail"],
        [
            [e.seq, e.version, _short_time(e.recorded_at), e.type, e.actor, _summary(e)]
            for e in events
        ],
        whole=("seq", "v"),
    )


def verify(ctx: typer.Context, json: bool = JSON) -> None:
    """Recompute the journal's hash chain and check its fencing (no event under a lease
    token that had been superseded); exit 4 at the first problem."""
    from fleetlog.engine.ops.fencing import check as check_fencing

    session: Session = ctx.obj
    session.require_existing()
    report = session.journal.verify()
    violations = check_fencing(session.journal) if report.ok else []
    if json:
        output.emit_json(
            {
                "ok": report.ok and not violations,
                "events": report.events,
                "first_bad_seq": report.first_bad_seq,
                "reason": report.reason,
                "fencing": [str(v) for v in violations],
            }
        )
    elif report.ok and not violations:
        output.say(f"ok: {report.events} events, hash chain intact")
    if not report.ok:
        if not json:
            output.warn(
                f"fleetlog: error: journal integrity failure at seq "
                f"{report.first_bad_seq}: {report.reason}"
            )
        raise typer.Exit(4)
    if violations:
        if not json:
            for v in violations:
                output.warn(f"fleetlog: error: {v}")
        raise typer.Exit(4)


def export(
    ctx: typer.Context,
    out: Path = typer.Option(None, "-o", "--output", help="Write to FILE.jsonl (default: stdout)."),
) -> None:
    """Write every event as one JSON line (with seq, versions and hashes)."""
    session: Session = ctx.obj
    session.require_existing()
    if out is None:
        n = session.journal.export(sys.stdout)
    else:
        with open(out, "w", encoding="utf-8") as fp:
            n = session.journal.export(fp)
    output.warn(f"exported {n} events")


def import_(
    ctx: typer.Context,
    file: str = typer.Argument(..., help="A JSON-lines export, or - for stdin."),
) -> None:
    """Import an export into an empty journal; the whole file is verified first and a
    broken file imports nothing."""
    session: Session = ctx.obj
    if file == "-":
        n = session.journal.import_(sys.stdin)
    else:
        try:
            fp = open(file, encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{file}: {exc.strerror}") from None
        with fp:
            n = session.journal.import_(fp)
    output.say(f"imported {n} events")


COMMANDS: dict[str, Callable[..., None]] = {
    "add": add,
    "status": status,
    "history": history,
    "replay": replay,
    "verify": verify,
    "export": export,
    "import": import_,
}


def register(app: typer.Typer) -> None:
    add_commands(app, COMMANDS)
