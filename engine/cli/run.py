"""Commands that run transitions: fire, resume, resolve."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.session import Session
from fleetlog.errors import UsageError

if TYPE_CHECKING:
    from fleetlog.engine.ops import plans
    from fleetlog.engine.ops.fanout import FanoutResult
    from fleetlog.engine.runtime import Outcome, Runner

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")
#: The most transitions one command drives at once (each is a thread).
MAX_PARALLEL = 4096


def targets(session: Session, pattern: str, resources: Iterable[str] | None = None) -> list[str]:
    """Existing resources named by ``pattern``; naming a missing one is a usage error.
    ``resources``: every resource id, when the caller has already replayed them (else
    they are read from the journal's ``resource.created`` events)."""
    from fleetlog.engine.model import events
    from fleetlog.engine.model.patterns import expand, fold_names, select

    kind = pattern.split("/", 1)[0]
    session.registry.get(kind)
    if resources is None:
        # Resources, not streams: a stream can hold only findings about an orphan.
        resources = (
            row[1]
            for row in session.journal.read_all_rows(
                types=(events.RESOURCE_CREATED,), columns=("seq", "stream")
            )
        )
    existing = sorted({rid for rid in resources if rid.startswith(kind + "/")})
    ids = select(pattern, existing)
    if "/" in pattern and not set("*?") & set(pattern):
        present = set(existing)
        missing = [rid for rid in expand(pattern) if rid not in present]
        if missing:
            # Folding is slow for a huge set: name the first thousand, count the rest.
            shown = fold_names(missing[:1000])
            if len(missing) > 1000:
                shown += f" and {len(missing) - 1000} more"
            raise UsageError(
                f"no such resources: {shown} (create them with "
                "`fleetlog add` or `fleetlog inventory load`)"
            )
    if not ids:
        raise UsageError(f"pattern {pattern!r} matches no resource")
    return ids


def outcome_dict(o: Outcome) -> dict[str, Any]:
    return {
        "resource": o.resource,
        "trigger": o.trigger,
        "status": o.status,
        "state": o.state,
        "step": o.step,
        "error": o.error,
    }


def _stop_dict(result: FanoutResult) -> dict[str, Any] | None:
    stop = result.stopped
    if stop is None:
        return None
    return {
        "reason": stop.reason,
        "batch": stop.batch,
        "batches": stop.batches,
        "command": stop.command,
    }


def report(result: FanoutResult, json: bool, *, plan: str | None = None) -> None:
    from fleetlog.engine.ops.fanout import summary_lines

    if json:
        output.emit_json(
            {
                "outcomes": [outcome_dict(o) for o in result.outcomes],
                "not_started": result.not_started,
                "groups": [{"outcome": d, "resources": m} for d, m in result.groups()],
                "plan": plan,
                # why members were not started, and the command that goes on
                "stopped": _stop_dict(result),
            }
        )
    else:
        for line in summary_lines(result):
            output.say(line)
    code = result.exit_code()
    if code:
        raise typer.Exit(code)


def fire(
    ctx: typer.Context,
    pattern: str = typer.Argument(
        ..., help="KIND/NAME, KIND/NODESET (node/ocean[1-1000]) or a glob."
    ),
    trigger: str = typer.Argument(..., help="Trigger to fire, e.g. configure_exascale."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for the transition."),
    dry_run: bool = typer.Option(
        False,
        "--dry-run",
        help="Print the plan per resource (read-only probes only); "
        "journal nothing, change nothing.",
    ),
    parallel: int = typer.Option(
        64, "--parallel", min=1, max=MAX_PARALLEL, help="Resources driven at once."
    ),
    max_fail: float = typer.Option(
        100.0,
        "--max-fail",
        min=0,
        max=100,
        help="Stop starting new resources once more than PCT% failed "
        "(of each batch, with --batch or --canary; no later batch starts).",
    ),
    batch: str = typer.Option(
        None,
        "--batch",
        metavar="N|N%",
        help="Roll out in batches of N resources (or N% of them, rounded up), in order, "
        "each finished before the next starts.",
    ),
    canary: int = typer.Option(
        0,
        "--canary",
        metavar="K",
        help="Run the first K resources alone first; stop if any fails, and go on only "
        "with --yes or a passing --canary-check.",
    ),
    canary_check: str = typer.Option(
        None,
        "--canary-check",
        metavar="COMMAND",
        help="Shell command run on this machine once the canary is done "
        "($FLEETLOG_CANARY names its resources); exit 0 lets the fan-out go on.",
    ),
    rate: str = typer.Option(
        None,
        "--rate",
        metavar="N/s|N/m",
        help="Start at most N resources per second (or per minute), evenly spaced.",
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Go on after a successful canary without stopping to ask."
    ),
    command_id: str = typer.Option(
        None, "--command-id", help="Idempotency key: re-submitting it never runs twice."
    ),
    submit: bool = typer.Option(
        False,
        "--submit",
        help="Only journal the commands (validated) and return: `fleetlog worker` "
        "processes sharing the journal run them.",
    ),
    new_plan: bool = typer.Option(
        False,
        "--new-plan",
        help="Over several resources, start a new fan-out plan even if the same one "
        "(trigger, params, resources) is unfinished; by default it is continued.",
    ),
    json: bool = JSON,
) -> None:
    """Fire TRIGGER on every resource PATTERN names, running each transition's plan.

    Over several resources the fan-out is journaled first as one plan, with an id printed
    on stderr: if it is interrupted, `fleetlog resume --plan ID` (or `--all`) finishes
    every member, and firing the same thing again continues it, reporting the members
    already done as done. --canary, --batch and --rate make it a rolling fan-out: when
    it stops between batches it says why and the command that continues it."""
    from fleetlog.engine.model.params import parse_assignments
    from fleetlog.engine.ops.rolling import parse_batch, parse_rate, rollout

    session: Session = ctx.obj
    if batch is not None:
        parse_batch(batch)  # a bad value is a usage error before anything is read
    if rate is not None:
        parse_rate(rate)
    if submit and (batch or canary or canary_check or rate):
        raise UsageError(
            "--submit hands the commands to workers, which run them in any order: "
            "--batch, --canary and --rate need `fleetlog fire` to drive the plan"
        )
    given = parse_assignments(param, pattern)
    ids = targets(session, pattern)
    roll = rollout(len(ids), batch=batch, canary=canary, canary_check=canary_check, rate=rate)
    r = session.runner(runs_steps=not (dry_run or submit))
    if dry_run:
        dry = [r.dry_run_plan(rid, trigger, given) for rid in ids]
        if json:
            output.emit_json({p.resource: [s.__dict__ for s in p.steps] for p in dry})
            return
        for p in dry:
            for line in p.lines():
                output.say(line)
        _say_batches(roll.split(ids), roll.canary > 0)
        return
    if command_id and len(ids) > 1:
        raise UsageError("--command-id names one command: use it with a single resource")
    if submit:
        _submit(r, ids, trigger, given, command_id=command_id, json=json)
        return
    if len(ids) == 1:
        out = r.fire(ids[0], trigger, given, command_id=command_id)
        from fleetlog.engine.ops.fanout import FanoutResult

        report(FanoutResult(outcomes=[out]), json)
        return
    from fleetlog.engine.ops import plans

    r.check_trigger(ids[0], trigger, given)  # a typo journals no plan
    plan = None if new_plan else plans.same_unfinished(session.journal, trigger, given, ids)
    if plan is None:
        plan = plans.start_plan(
            session.journal,
            trigger,
            given,
            ids,
            parallel=parallel,
            max_fail=max_fail,
            pattern=pattern,
            rollout=roll,
        )
        output.warn(
            f"fleetlog: plan {plan.id}: {trigger} on {len(ids)} resources"
            f"{_in_batches(plan)} (if interrupted: fleetlog resume --plan {plan.id})"
        )
    else:
        output.warn(
            f"fleetlog: continuing the unfinished plan {plan.id} ({trigger}{_in_batches(plan)})"
        )
    report(drive(r, plan, json, yes=yes), json, plan=plan.id)


def _in_batches(plan: plans.Plan) -> str:
    n = len(plan.batches)
    return f" in {n} batches" if n > 1 else ""


def _say_batches(batches: list[list[str]], canary: bool) -> None:
    """The batches of a dry run, one line each."""
    from fleetlog.engine.model.patterns import fold_names

    if len(batches) < 2:
        return
    for n, members in enumerate(batches, 1):
        label = " (canary)" if canary and n == 1 else ""
        output.say(f"batch {n}/{len(batches)}{label}: {fold_names(members)} ({len(members)})")


def drive(
    runner: Runner, plan: plans.Plan, json: bool, *, yes: bool = False, accept: bool = False
) -> FanoutResult:
    """Run ``plan`` (``plans.run_plan``), saying on stderr as each batch starts and,
    when it stops with members not started, why and the exact command that goes on."""
    from fleetlog.engine.model.patterns import fold_names
    from fleetlog.engine.ops import plans

    def on_batch(n: int, of: int, members: list[str]) -> None:
        label = " (canary)" if n == 1 and plan.rollout.canary else ""
        output.warn(f"fleetlog: batch {n}/{of}{label}: {fold_names(members)} ({len(members)})")

    result = plans.run_plan(
        runner, plan, progress=not json, on_batch=on_batch, yes=yes, accept_failures=accept
    )
    stop = result.stopped
    if stop is not None and result.not_started:
        where = f" at batch {stop.batch}/{stop.batches}" if stop.batches > 1 else ""
        output.warn(
            f"fleetlog: plan {plan.id} stopped{where}: "
            f"{stop.reason}; {len(result.not_started)} resources not started. "
            f"To continue: {stop.command}"
        )
    return result


def _submit(
    runner: Runner,
    ids: list[str],
    trigger: str,
    given: dict[str, Any],
    *,
    command_id: str | None,
    json: bool,
) -> None:
    """``fire --submit``: validate and journal one ``command.accepted`` per resource."""
    from fleetlog.engine.model.patterns import fold_names
    from fleetlog.engine.ops.worker import submit_many
    from fleetlog.journal.ids import uuid7

    run = uuid7() if len(ids) > 1 else None
    submitted = submit_many(runner, ids, trigger, given, command_id=command_id, run=run)
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
    output.say(
        f"{fold_names([ev.stream for ev in submitted])} ({len(submitted)}): {trigger} "
        "submitted; `fleetlog worker` runs it"
    )


def resume(
    ctx: typer.Context,
    pattern: str = typer.Argument(
        None,
        help="Resources to resume (default with --all: every "
        "resource with a transition in progress).",
    ),
    all_: bool = typer.Option(
        False,
        "--all",
        help="Resume every interrupted transition and finish every unfinished fan-out plan.",
    ),
    plan_id: str = typer.Option(
        None, "--plan", help="Finish this fan-out plan: every member not yet done."
    ),
    yes: bool = typer.Option(
        False,
        "--yes",
        "-y",
        help="With --plan: confirm its canary (it succeeded) and go on with the next batches.",
    ),
    accept_failures: bool = typer.Option(
        False,
        "--accept-failures",
        help="With --plan: go on past the failures a rolling plan stopped at (a failed "
        "canary, a batch over --max-fail); journaled with your name.",
    ),
    json: bool = JSON,
) -> None:
    """Continue interrupted work where it stopped: transitions at the step where they
    stopped, and fan-out plans at every member not yet done (the ones never started
    included). Finished steps are never re-run; an in-doubt step is checked, re-run if
    idempotent, or else needs attention (exit 3) until `fleetlog resolve`."""
    from fleetlog.engine.model.patterns import select
    from fleetlog.engine.model.replay import replay_all
    from fleetlog.engine.ops import plans
    from fleetlog.engine.ops.fanout import FanoutResult

    session: Session = ctx.obj
    if not pattern and not all_ and not plan_id:
        raise UsageError("say what to resume: a PATTERN, --plan ID, or --all")
    if plan_id and (pattern or all_):
        raise UsageError("--plan names the work to resume: give it alone")
    if (yes or accept_failures) and not plan_id:
        flag = "--yes" if yes else "--accept-failures"
        raise UsageError(f"{flag} decides for one fan-out plan: give it with --plan ID")
    session.require_existing()
    if plan_id:
        plan = plans.load_plan(session.journal, plan_id)
        done = drive(session.runner(), plan, json, yes=yes, accept=accept_failures)
        report(done, json, plan=plan.id)
        return
    result = FanoutResult()
    if all_ and not pattern:
        for plan in plans.plans(session.journal, unfinished_only=True):
            done = drive(session.runner(), plan, json)
            result.outcomes.extend(done.outcomes)
            result.not_started.extend(done.not_started)
            result.stopped = done.stopped or result.stopped
    records = replay_all(session.journal, session.registry)
    # A pattern naming resources that do not exist is a typo to report, not "nothing to do".
    ids = targets(session, pattern, records) if pattern else select(None, records)
    chosen = [records[i] for i in ids if records[i].in_progress is not None]
    # Newest transition first: a transition started by another's `ensure` step is resumed
    # before the one waiting on it.
    chosen.sort(key=lambda rec: -(rec.in_progress.started_seq if rec.in_progress else 0))
    r = session.runner() if chosen else None
    for rec in chosen:
        assert r is not None
        if r.load(rec.id).in_progress is None:
            continue  # finished meanwhile, as the child of a resumed ensure
        result.outcomes.append(r.resume(rec.id))
    if not result.outcomes and not result.not_started and not json:
        output.say("nothing to resume")
    report(result, json)


def resolve(
    ctx: typer.Context,
    resource: str = typer.Argument(..., help="KIND/NAME that needs attention."),
    step: str = typer.Option(..., "--step", help="The step in doubt."),
    as_: str = typer.Option(
        ...,
        "--as",
        help="done (it took effect), retry (run it again) "
        "or abort (fail the transition, run its undo).",
    ),
    reason: str = typer.Option(..., "--reason", help="Why: journaled with your name."),
    run: bool = typer.Option(True, "--run/--no-run", help="Resume right after resolving."),
    json: bool = JSON,
) -> None:
    """Decide what happened to a step whose outcome was never recorded."""
    from fleetlog.engine.ops.fanout import FanoutResult

    session: Session = ctx.obj
    r = session.runner()
    ev = r.resolve(resource, step, as_, reason)
    if not json:
        output.say(f"{resource}: step {step} resolved as {as_} (seq {ev.seq}, by {ev.actor})")
    if run:
        report(FanoutResult(outcomes=[r.resume(resource)]), json)


COMMANDS: dict[str, Callable[..., None]] = {"fire": fire, "resume": resume, "resolve": resolve}


def register(app: typer.Typer) -> None:
    add_commands(app, COMMANDS)
