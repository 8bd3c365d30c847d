"""``fleetlog backend show|set``: the backend a journal's steps run on.

A journal is bound to a backend by the first command that runs a step with it, and from
then on commands without ``--backend`` use that one: forgetting the flag never moves
real work to the simulator, and giving another one is refused. Only ``backend set``
changes the binding, journaled with who and why.
"""

from __future__ import annotations

import typer

from fleetlog.engine.backends import BACKENDS
from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_group
from fleetlog.engine.cli.session import BACKEND_STREAM, Session

backend_app = typer.Typer(
    help="The backend this journal's steps run on: show it, or change it on purpose.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


@backend_app.command("show")
def show(ctx: typer.Context, json: bool = JSON) -> None:
    """The backend the journal is bound to, and its history."""
    from fleetlog.engine.model import events as ev

    session: Session = ctx.obj
    session.for_reading()
    history = [
        {
            "seq": e.seq,
            "at": e.recorded_at,
            "actor": e.actor,
            "backend": p.backend,
            "previous": p.previous,
            "reason": p.reason,
        }
        for e in session.journal.read_stream(BACKEND_STREAM)
        if isinstance(p := ev.read(e), ev.BackendBound)
    ]
    bound = history[-1]["backend"] if history else None
    if json:
        output.emit_json({"backend": bound, "history": history})
        return
    if bound is None:
        output.say("not bound yet: the first command that runs a step binds it")
        return
    output.say(f"bound to {bound}")
    for h in history:
        was = f" (was {h['previous']})" if h["previous"] else ""
        output.say(f"  seq {h['seq']} {h['at']} {h['actor']}: {h['backend']}{was}: {h['reason']}")


@backend_app.command("set")
def set_(
    ctx: typer.Context,
    name: str = typer.Argument(..., help=f"The backend: {', '.join(BACKENDS)}."),
    reason: str = typer.Option(..., "--reason", help="Why: journaled with your name."),
) -> None:
    """Bind the journal to another backend. Transitions in progress stay bound to the
    backend they started on: each resumes only there."""
    session: Session = ctx.obj
    session.require_existing()
    previous = session.set_backend(name, reason)
    was = f" (was {previous})" if previous else ""
    output.say(f"bound to {name}{was}")


def register(app: typer.Typer) -> None:
    add_group(app, "backend", backend_app)
