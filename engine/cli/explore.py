"""``fleetlog sim explore TRIGGER PATTERN``: seeded fault schedules against a twin.

Each run copies the twin (the journal and its simulated world, or a fresh twin of
``--inventory``), fires the trigger while one schedule's faults strike, resumes until
at rest and checks every invariant (``ops.invariants``). The first failing run is shrunk
to its shortest failing schedule and printed with its seed; ``--save DIR`` keeps it as
JSON and ``--replay FILE`` runs it again. Nothing real is changed or contacted.
"""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING, Any

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.session import Session
from fleetlog.errors import UsageError

if TYPE_CHECKING:
    from fleetlog.engine.ops.explore import Report, RunResult
    from fleetlog.engine.ops.schedules import Flow, Schedule
    from fleetlog.journal.base import Journal

MARK = "[sim]"


def _say(text: str) -> None:
    output.say(f"{MARK} {text}")


def _journal(session: Session) -> Journal | None:
    try:
        session.for_reading()
    except UsageError:
        return None
    return session.journal


def explore(
    ctx: typer.Context,
    trigger: str = typer.Argument(..., help="Trigger to explore, e.g. clone."),
    pattern: str = typer.Argument(..., help="KIND/NAME, KIND/NODESET or a glob, as for fire."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for the transition."),
    runs: int = typer.Option(200, "--runs", min=1, max=1_000_000, help="Schedules to run."),
    seed: int = typer.Option(
        None,
        "--seed",
        min=0,
        help="The first schedule's seed (run i uses seed + i). [default: random, printed]",
        show_default=False,
    ),
    faults: str = typer.Option(
        None,
        "--faults",
        help="Fault kinds to draw from, comma-separated: crash, kill, pause, twin, "
        "disk_full, fail, drop, unreachable, probe. [default: all]",
        show_default=False,
    ),
    budget: float = typer.Option(
        None, "--budget", min=0, help="Stop starting runs after SECONDS.", show_default=False
    ),
    replay: str = typer.Option(
        None,
        "--replay",
        help="Run the schedule of this file (written by --save) once and check it.",
        show_default=False,
    ),
    save: str = typer.Option(
        None,
        "--save",
        help="Write a failing run's shrunk schedule as JSON into this directory.",
        show_default=False,
    ),
    inventory: str = typer.Option(
        None,
        "--inventory",
        help="Explore on a fresh twin of this inventory (its resources in their initial "
        "states) instead of the journal and its simulated world.",
        show_default=False,
    ),
    world: str = typer.Option(
        None, "--world", help="The simulated world to copy. [default: as for `sim`]"
    ),
    json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Fire TRIGGER on PATTERN in a twin, again and again, while a seeded scheduler
    injects faults (crashes, pauses past the lease, a twin process, a full disk, failing,
    dropped and unreachable commands, failing probes); after each run resume until at
    rest and check every invariant. Exit 0 when all held, 1 with the seed and the
    shortest failing schedule when one did not."""
    from fleetlog.engine.backends import sim_world_path
    from fleetlog.engine.model.params import parse_assignments
    from fleetlog.engine.ops import schedules
    from fleetlog.engine.ops.explore import Explorer, default_seed
    from fleetlog.engine.ops.explore_base import build_base, remove
    from fleetlog.engine.ops.twin import read_inventory

    session: Session = ctx.obj
    kinds = schedules.parse_kinds(faults)
    given = {k: str(v) for k, v in parse_assignments(param, pattern).items()}
    flow = schedules.Flow(trigger, pattern, given)
    kept = schedules.load(replay) if replay else None
    if kept is not None and kept[0] != flow:
        was = kept[0]
        raise UsageError(
            f"--replay {replay}: that schedule is of `{was.trigger} {was.pattern}` with "
            f"{was.params or 'no params'}, not of this flow"
        )
    inv = read_inventory(inventory) if inventory else None
    journal = None if inv is not None else _journal(session)
    if inv is None and journal is None:
        raise UsageError(
            "nothing to explore: give --inventory FILE, or add resources to the journal "
            "first (`fleetlog inventory load`)"
        )
    wpath = world or (None if inv is not None else sim_world_path(session.journal_url))
    base = build_base(session.registry, journal=journal, world_path=wpath, inventory=inv)
    explorer = Explorer(base, session.registry, flow)
    try:
        explorer.profile()
        if kept is not None:
            result = explorer.run(kept[1])
            _replayed(flow, result, json)
            if result.failed:
                raise typer.Exit(1)
            return
        first = default_seed() if seed is None else seed

        def progress(r: Report) -> None:
            output.warn(f"{MARK} {r.runs} schedules, {r.per_second:.0f}/s: every invariant held")

        report = explorer.explore(
            runs=runs, seed=first, kinds=kinds, budget=budget, progress=None if json else progress
        )
    finally:
        explorer.close()
        remove(base)
    saved = None
    if report.failure is not None and save:
        f = report.failure
        saved = str(schedules.save(save, flow, f.shrunk, f.violations, inventory))
    _reported(report, kinds, saved, inventory, json)
    if report.failure is not None:
        raise typer.Exit(1)


def _command(flow: Flow, seed: int, kinds: tuple[str, ...], inventory: str | None) -> str:
    words = ["fleetlog", "sim", "explore", flow.trigger, flow.pattern]
    for k, v in flow.params.items():
        words += ["--param", f"{k}={v}"]
    if inventory:
        words += ["--inventory", inventory]
    words += ["--seed", str(seed), "--runs", "1"]
    if len(kinds) < len(_all_kinds()):
        words += ["--faults", ",".join(kinds)]
    return shlex.join(words)


def _all_kinds() -> tuple[str, ...]:
    from fleetlog.engine.ops.schedules import FAULT_KINDS

    return tuple(FAULT_KINDS)


def _schedule_json(schedule: Schedule) -> list[dict[str, Any]]:
    from dataclasses import asdict

    return [{k: v for k, v in asdict(f).items() if v is not None} for f in schedule.faults]


def _reported(
    report: Report, kinds: tuple[str, ...], saved: str | None, inventory: str | None, json: bool
) -> None:
    f = report.failure
    if json:
        failure = None
        if f is not None:
            failure = {
                "seed": f.seed,
                "schedule": _schedule_json(f.schedule),
                "shrunk": _schedule_json(f.shrunk),
                "violations": f.violations,
                "reproduce": _command(report.flow, f.seed, kinds, inventory),
                "saved": saved,
            }
        output.emit_json(
            {
                "simulated": True,
                "flow": {
                    "trigger": report.flow.trigger,
                    "pattern": report.flow.pattern,
                    "params": report.flow.params,
                },
                "seed": report.first_seed,
                "runs": report.runs,
                "elapsed": round(report.elapsed, 3),
                "per_second": round(report.per_second, 1),
                "endings": report.endings,
                "out_of_budget": report.out_of_budget,
                "failure": failure,
            }
        )
        return
    what = f"{report.flow.trigger} {report.flow.pattern}"
    pace = f"{report.runs} schedules in {report.elapsed:.1f}s ({report.per_second:.0f}/s)"
    if f is None:
        stop = " (budget reached)" if report.out_of_budget else ""
        _say(f"explored {what}: {pace}, seeds {report.first_seed}+{stop}: every invariant held")
        return
    if f.seed == 0 and not f.schedule.faults:
        _say(f"{what} breaks an invariant with no fault at all:")
    else:
        _say(f"{what}: seed {f.seed} breaks an invariant ({pace})")
        _say("shortest failing schedule: " + "; ".join(f.shrunk.describe()))
    for v in f.violations:
        _say(f"  {v}")
    if f.schedule.faults:
        _say(f"reproduce: {_command(report.flow, f.seed, kinds, inventory)}")
    if saved:
        _say(f"saved: {saved} (run it again: --replay {saved})")


def _replayed(flow: Flow, result: RunResult, json: bool) -> None:
    if json:
        output.emit_json(
            {
                "simulated": True,
                "seed": result.schedule.seed,
                "schedule": _schedule_json(result.schedule),
                "ended": result.ended,
                "violations": result.violations,
            }
        )
        return
    what = f"{flow.trigger} {flow.pattern}"
    _say(f"replayed {what}, seed {result.schedule.seed}: " + "; ".join(result.schedule.describe()))
    if not result.failed:
        _say("every invariant held")
    for v in result.violations:
        _say(f"  {v}")
