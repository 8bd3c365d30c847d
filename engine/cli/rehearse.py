"""``fleetlog rehearse TRIGGER PATTERN``: what firing would do, on a scratch twin.

The journal and the simulated world are copied into a scratch directory, the faults of
``--faults FILE`` are injected there, and the flow runs on the copy: per resource, the
path through the steps (attempts, retries, skips), the ensures it starts on other
resources, failures and compensations, and the end states. The real journal's head is
unchanged and no real host is contacted; the exit code is the one ``fire`` would have.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import typer

from fleetlog.engine.cli import output, sim
from fleetlog.engine.cli.registration import add_commands
from fleetlog.engine.cli.session import Session
from fleetlog.engine.cli.sim import MARK, existing_journal, say, world_path

if TYPE_CHECKING:
    from fleetlog.engine.ops.rehearse import Rehearsal, TransitionPath


def rehearse(
    ctx: typer.Context,
    trigger: str = typer.Argument(..., help="Trigger to rehearse, e.g. clone."),
    pattern: str = typer.Argument(..., help="KIND/NAME, KIND/NODESET or a glob, as for fire."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for the transition."),
    faults: str = typer.Option(
        None,
        "--faults",
        help="A TOML file of [[fault]] tables (mode, host, tool, command, times, ...: the "
        "options of `sim fault add`) injected into the scratch twin only.",
        show_default=False,
    ),
    world: str = typer.Option(
        None, "--world", help="The simulated world to copy. [default: as for `sim`]"
    ),
    parallel: int = typer.Option(64, "--parallel", min=1, max=4096, help="Resources at once."),
    json: bool = typer.Option(False, "--json", help="Print JSON for scripts."),
) -> None:
    """Rehearse TRIGGER on PATTERN in a scratch twin of the journal and the simulated
    world, with the world's faults and those of --faults: print the path each resource
    would take. Nothing real is changed or contacted."""
    from fleetlog.engine.model.params import parse_assignments
    from fleetlog.engine.ops.rehearse import rehearse as run
    from fleetlog.engine.ops.twin import read_faults_file

    session: Session = ctx.obj
    given = parse_assignments(param, pattern)
    specs = read_faults_file(faults) if faults else []
    journal = existing_journal(session)
    result = run(
        journal=journal,
        world_path=world_path(session, world),
        registry=session.registry,
        trigger=trigger,
        pattern=pattern,
        given=given,
        faults=specs,
        parallel=parallel,
    )
    if json:
        output.emit_json(_as_json(result, trigger, pattern))
    else:
        _print(result, trigger, pattern)
    code = result.exit_code()
    if code:
        raise typer.Exit(code)


def _as_json(r: Rehearsal, trigger: str, pattern: str) -> dict[str, Any]:
    return {
        "simulated": True,
        "trigger": trigger,
        "pattern": pattern,
        "journal_head": r.head,
        "faults": r.faults,
        "transitions": [t.as_dict() for t in r.transitions],
        "end_states": r.end_states,
        "outcomes": [
            {
                "resource": o.resource,
                "status": o.status,
                "state": o.state,
                "step": o.step,
                "error": o.error,
            }
            for o in r.result.outcomes
        ],
        "effects": r.world_log,
        "exit_code": r.exit_code(),
    }


def _print(r: Rehearsal, trigger: str, pattern: str) -> None:
    say(
        f"rehearsal of {trigger} on {pattern} in a scratch twin: the journal (head "
        f"{r.head}) and the world are unchanged, no real host was contacted"
    )
    for said in r.faults:
        say(said)
    for t in r.transitions:
        _print_transition(t)
    say("end states:")
    for rid, state in r.end_states.items():
        output.say(f"{MARK}   {rid:<28} {state}")
    from fleetlog.engine.ops.fanout import summary_lines

    for line in summary_lines(r.result):
        say(f"fire would say: {line}")


def _print_transition(t: TransitionPath) -> None:
    why = f" (ensured by {t.caused_by})" if t.caused_by else ""
    say(f"{t.resource} {t.trigger}: {t.source} -> {t.target}{why}")
    for s in t.steps:
        label = f"undo {s.step}" if s.undo else s.step
        text = s.outcome
        if s.attempts > 1:
            text += f" after {s.attempts} attempts ({s.attempts - 1} retries)"
        if s.detail and s.outcome == "skipped":
            text += f" ({s.detail})"
        if s.ensured:
            text += f"; ensured {', '.join(s.ensured)}"
        output.say(f"{MARK}   {label:<16} {text}")
        for err in s.errors:
            output.say(f"{MARK}   {'':<16}   ! {err}")
    tail = t.outcome + (f": {t.error}" if t.error else "")
    output.say(f"{MARK}   => {tail}")


def register(app: typer.Typer) -> None:
    """``fleetlog rehearse`` and the ``fleetlog sim`` group it rehearses on."""
    sim.register(app)
    add_commands(app, {"rehearse": rehearse})
