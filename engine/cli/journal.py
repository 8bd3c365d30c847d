"""Journal commands: add, status, history, replay, verify, export, import."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import typer

from fleetlog import limits
from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.session import Session
from fleetlog.errors import UsageError
from fleetlog.journal import Event

JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")
AT = typer.Option(
    None,
    "--at",
    help="Answer as of this point: a journal seq (e.g. 1200) or an ISO time "
    "(e.g. 2026-11-25T14:02:00Z).",
)


def resolve_at(session: Session, at: str | None, option: str = "--at") -> int | None:
    """``--at`` as a seq: ASCII digits are a seq (at most 2^63-1), anything else an
    ISO-8601 time (UTC if no zone) between 1970 and 9999."""
    if at is None:
        return None
    seq = limits.parse_seq(at, option)
    if seq is not None:
        return seq
    try:
        when = limits.parse_time(at, option)
    except limits.InputError:
        raise UsageError(
            f"{option} {limits.shown(at, 40)}: expected a seq number or an ISO time "
            "(e.g. 1200 or 2026-11-25T14:02:00Z) between 1970 and 9999"
        ) from None
    return session.journal.seq_at_time(limits.iso(when))


#: What makes ``add``'s argument a node set: ClusterShell's brackets and operators.
_NODESET_CHARS = frozenset("[],!&^")


def add(
    ctx: typer.Context,
    resource: str = typer.Argument(
        ...,
        help="KIND/NAME of the new resource, e.g. vm/guest7, or KIND/NODESET for several "
        "at once, e.g. node/ocean[1-1000] (written in a few transactions). A name holds no "
        "spaces and none of the pattern characters [ ] , ! & ^ @ * ?, so that patterns "
        "can address it.",
    ),
    param: list[str] = typer.Option(
        [],
        "--param",
        "-p",
        help="NAME=VALUE (repeatable; the same for every resource of a node set). A "
        "list[ref KIND] param takes names or node sets separated by commas, in order: "
        "cells=cell[1-3],cell7.",
    ),
    json: bool = JSON,
) -> None:
    """Create a resource in its kind's initial state (or every resource of a node set:
    all are checked before any is written; --json then prints {"created": [ids]}). A
    resource its `ref` parameters name must already exist (an inventory may name
    resources it creates itself)."""
    from fleetlog.engine.model.params import parse_assignments
    from fleetlog.engine.ops.resources import create_resource

    session: Session = ctx.obj
    given = parse_assignments(param, resource)
    if _NODESET_CHARS & set(resource.partition("/")[2]):
        _add_nodeset(session, resource, given, json)
        return
    rec = create_resource(session.journal, session.registry, resource, given, refs_must_exist=True)
    if json:
        output.emit_json(rec.to_dict())
    else:
        output.say(f"{rec.id} created in state {rec.state} (version {rec.version})")


def _add_nodeset(session: Session, pattern: str, given: dict[str, Any], json: bool) -> None:
    from fleetlog.engine.model.patterns import expand, fold_names
    from fleetlog.engine.ops.resources import create_resources

    ids = expand(pattern)
    created = create_resources(
        session.journal, session.registry, [(rid, given) for rid in ids], refs_must_exist=True
    )
    if json:
        output.emit_json({"created": created})
        return
    initial = session.registry.get(pattern.partition("/")[0]).spec.initial
    output.say(f"created {len(created)} in state {initial}: {fold_names(created)}")


def _in_progress(rec: Any) -> str:
    ip = rec.in_progress
    if ip is None:
        return ""
    return f"{ip.source} → {ip.target} ({ip.trigger}{' @ ' + ip.step if ip.step else ''})"


def status_rows(records: list[Any]) -> list[dict[str, Any]]:
    from fleetlog.engine.cli.statusview import status_row

    return [status_row(rec) for rec in records]


def _replayed(session: Session, pattern: str | None, at: str | None) -> list[Any]:
    from fleetlog.engine.model.patterns import select
    from fleetlog.engine.model.replay import replay_all

    to_seq = resolve_at(session, at)
    records = replay_all(session.journal, session.registry, to_seq=to_seq)
    chosen = [records[i] for i in select(pattern, records)]
    if pattern and not chosen:
        _nothing_matches(session, pattern, records)
    return chosen


def _nothing_matches(session: Session, pattern: str, records: dict[str, Any]) -> None:
    """A pattern that matches nothing because of a typo is a usage error (exit 2), not an
    empty table: a kind no machine defines (with the close match), or resources named
    one by one (no glob) that are not in the journal. A kind with no resource yet, or a
    glob matching none, is an empty answer."""
    from fleetlog.engine.model.kinds import did_you_mean
    from fleetlog.engine.model.patterns import expand

    kind, _, names = pattern.partition("/")
    if set("*?[") & set(kind):
        return
    if kind not in session.registry and not any(r.kind == kind for r in records.values()):
        session.registry.get(kind)  # UnknownKind: "unknown kind 'kvmhost'; did you mean ..."
    if names and not set("*?") & set(names):
        missing = expand(pattern)
        hint = did_you_mean(missing[0], records) if len(missing) == 1 else ""
        raise UsageError(f"no resource {pattern} in the journal{hint}")


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
    every: bool = typer.Option(
        False,
        "--all",
        help="One row per resource. By default resources of one kind that read the same "
        "(state, transition in progress) fold into one row with a node set, as clush -b "
        "folds output: noop/r[1-1000]; a resource needing attention always has its own "
        "row. --json is never folded.",
    ),
    json: bool = JSON,
) -> None:
    """Current state of every matching resource, replayed from the journal. Exit 3 while
    a resource needs attention (not with --at)."""
    session: Session = ctx.obj
    session.for_reading()
    if plan is not None:
        if pattern or at:
            raise UsageError("--plan shows one fan-out plan: give it alone")
        _plan_status(session, plan, json)
        return
    from fleetlog.engine.cli import statusview

    records = _replayed(session, pattern, at)
    # Exit 3 while a resource needs attention (now, not as of --at): scripts and
    # monitoring read the exit code, as with `fire` and `resume`.
    attention = at is None and any(r.attention for r in records)
    if json:
        output.emit_json_array(output.Encoded(statusview.json_texts(records)))
    else:
        statusview.show_table(records, every=every)
    if attention:
        raise typer.Exit(3)


def _plan_status(session: Session, plan_id: str, json: bool) -> None:
    from fleetlog.engine.model.patterns import fold_names
    from fleetlog.engine.ops import plans

    plan = plans.load_plan(session.journal, plan_id)
    standing = plans.members(session.journal, plan)
    counts = plans.counts(standing)
    batches = plans.batch_standings(session.journal, plan, standing)
    roll = plan.rollout
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
                "rolling": {
                    "batch": roll.batch,
                    "canary": roll.canary,
                    "canary_check": roll.canary_check,
                    "rate": roll.rate,
                }
                if roll.rolling
                else None,
                "batches": [
                    {
                        "batch": b.number,
                        "canary": b.canary,
                        "members": b.members,
                        "counts": b.counts,
                        "continued": b.continued,
                        "waiting": b.waiting,
                        "command": b.command,
                    }
                    for b in batches
                ],
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
    if roll.rolling:
        output.say(f"  rolling: {roll.describe()}; --max-fail {plan.max_fail:g}% per batch")
    for b in batches if len(batches) > 1 else []:
        label = " (canary)" if b.canary else ""
        tally = ", ".join(f"{k.replace('_', ' ')} {n}" for k, n in b.counts.items() if n)
        went = f"; went on: {', '.join(b.continued)}" if b.continued else ""
        output.say(
            f"  batch {b.number}/{len(batches)}{label} {fold_names(b.members)}: {tally}{went}"
        )
        if b.waiting:
            output.say(f"  waiting at batch {b.number}: {b.waiting} (to continue: {b.command})")
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
    session.for_reading()
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
    from fleetlog.engine.model import events as ev

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
    session.for_reading()
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


def verify(
    ctx: typer.Context,
    json: bool = JSON,
    seal: bool = typer.Option(
        False,
        "--seal",
        help="Once everything checks out, keep the head as the journal's verified head, "
        "sealed with the chain key. Needed once when a chain key is first given for a "
        "journal that already has events.",
    ),
    drop_snapshots: bool = typer.Option(
        False,
        "--drop-snapshots",
        help="Once the hash chain checks out, discard every snapshot (a cache, rebuilt as "
        "resources are folded): the way out of a snapshot that fails its checks.",
    ),
) -> None:
    """Recompute the journal's whole hash chain, and check its fencing (no event under a
    lease token that had been superseded), its verified head, every snapshot (against
    the events it folds) and every head the witness recorded (--witness); print the
    head (seq and hash). Exit 4 at the first problem."""
    from fleetlog.engine.ops.fencing import check as check_fencing
    from fleetlog.journal import Head

    session: Session = ctx.obj
    guard = session.guard
    guard.reported = True  # this command says what is wrong itself
    if seal or drop_snapshots:
        session.require_existing()  # opened for writing
    else:
        session.for_reading()
    journal = session.journal
    report = journal.verify()
    witness = guard.witness
    witnessed = [] if witness is None else [w.head for w in witness.heads()]
    violations = check_fencing(journal) if report.ok else []
    problems: list[tuple[int | None, str]] = []
    head = Head(report.head_seq, report.head_hash) if report.ok else journal.tail()
    sealed = False
    if report.ok and drop_snapshots and not violations:
        dropped = journal.drop_snapshots()
        output.warn(f"fleetlog: dropped {dropped} snapshots (rebuilt as resources are folded)")
    if report.ok:
        checked = journal.check_integrity(witnessed, sound=head)
        if not checked.ok and not (seal and checked.unsealed):
            problems.append((checked.first_bad_seq, checked.reason or "integrity failure"))
        if not problems and journal.snapshot_streams():
            from fleetlog.engine.ops.snapshots import check as check_snapshots

            problems.extend(check_snapshots(journal, session.registry))
        if not problems:
            from fleetlog.engine.model.checkpoint import NAME as CHECKPOINT

            if journal.checkpoint_seq(CHECKPOINT) is not None:
                from fleetlog.engine.ops.snapshots import check_checkpoint

                problems.extend(check_checkpoint(journal, session.registry))
        if seal and not violations and not problems:
            result = journal.seal(checked, witnessed)
            if result.ok:
                sealed = True
            else:
                problems.append((result.first_bad_seq, result.reason or "integrity failure"))
    ok = report.ok and not violations and not problems
    if json:
        output.emit_json(
            {
                "ok": ok,
                "events": report.events,
                "head": {"seq": head.seq, "hash": head.hash},
                "first_bad_seq": report.first_bad_seq
                if not report.ok
                else (problems[0][0] if problems else None),
                "reason": report.reason
                if not report.ok
                else (problems[0][1] if problems else None),
                "fencing": [str(v) for v in violations],
                "witness": None
                if witness is None
                else {"path": str(witness), "heads": len(witnessed)},
                "sealed": sealed,
            }
        )
    elif ok:
        output.say(f"ok: {report.events} events, hash chain intact")
        output.say(f"head: seq {head.seq} hash {head.hash}")
        if witness is not None:
            output.say(
                f"witness: {witness} recorded {len(witnessed)} heads; the journal holds them all"
                if witnessed
                else f"witness: {witness} has recorded no head yet"
            )
        if sealed:
            keyed = "sealed with the chain key" if journal.chain_key else "kept (no chain key)"
            output.say(f"verified head seq {head.seq} {keyed}")
    if not report.ok:
        if not json:
            output.warn(
                f"fleetlog: error: journal integrity failure at seq "
                f"{report.first_bad_seq}: {report.reason}"
            )
        raise typer.Exit(4)
    if violations or problems:
        if not json:
            for v in violations:
                output.warn(f"fleetlog: error: {v}")
            for seq, problem in problems:
                output.warn(f"fleetlog: error: journal integrity failure at seq {seq}: {problem}")
        raise typer.Exit(4)


def export(
    ctx: typer.Context,
    out: Path = typer.Option(None, "-o", "--output", help="Write to FILE.jsonl (default: stdout)."),
) -> None:
    """Write every event as one JSON line (with seq, versions and hashes)."""
    from fleetlog.engine.cli import paths

    session: Session = ctx.obj
    paths.check_output(out, "--output")
    session.for_reading()
    if out is None:
        n = session.journal.export(sys.stdout)
    else:
        with paths.writing(out) as fp:
            n = session.journal.export(fp)
    output.warn(f"exported {n} events")


def import_(
    ctx: typer.Context,
    file: str = typer.Argument(..., help="A JSON-lines export, or - for stdin."),
) -> None:
    """Import an export into an empty journal; the whole file is verified first and a
    broken file imports nothing. With --witness, the imported journal must hold every
    head the witness recorded (a restore from a backup missing some is exit 4)."""
    session: Session = ctx.obj
    session.guard.restoring = True  # an empty journal is expected; checked after
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
