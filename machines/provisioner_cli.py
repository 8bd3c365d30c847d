"""``fleetlog provisioner``: the CORTX mini-provisioner contract for fleetlog resources.

    fleetlog provisioner export component/hare -o setup.yaml
    fleetlog provisioner stage component/hare init --config json:///tmp/exampleV2.json
    fleetlog provisioner check-idempotent component/hare init --config json:///tmp/c.json

``stage`` is what the exported setup.yaml runs: it fires the stage's transition with
``--config URL`` (and ``--plan``) as the transition's params; exit 0 on success, N > 0 on
error. ``check-idempotent`` runs a stage twice on a scratch copy of the simulated world
and exits 1, saying what changed, if the second run fails or changes anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fleetlog.engine.cli import Session, output, paths
from fleetlog.errors import UsageError

if TYPE_CHECKING:
    from fleetlog.engine.model import Resource

provisioner_app = typer.Typer(
    name="provisioner",
    help="The CORTX mini-provisioner contract: export setup.yaml, run a stage, "
    "check a stage is idempotent.",
    no_args_is_help=True,
    rich_markup_mode=None,
)

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")


def _resource(session: Session, rid: str) -> Resource:
    return session.runner(runs_steps=False).load(rid)


@provisioner_app.command("export")
def export(
    ctx: typer.Context,
    resource: str = typer.Argument(..., help="KIND/NAME, e.g. component/hare."),
    out: Path = typer.Option(None, "-o", "--output", help="Write to FILE (default: stdout)."),
    component: str = typer.Option(
        None,
        "--component",
        help="The top-level key (default: the resource's `component` param, else its name).",
    ),
    fleetlog_cmd: str = typer.Option(
        "fleetlog", "--cmd", help="The command setup.yaml runs (e.g. /usr/bin/fleetlog)."
    ),
) -> None:
    """Write the mini-provisioner setup.yaml whose stages drive RESOURCE."""
    from fleetlog.engine.model import load_resource
    from fleetlog.machines.provisioner import setup_yaml

    session: Session = ctx.obj
    paths.check_output(out, "--output")
    session.for_reading()
    rec = load_resource(session.journal, session.registry, resource)
    if rec is None:
        raise UsageError(f"no resource {resource!r} in the journal")
    url = session.journal_url
    if not url.startswith(("postgresql://", "postgres://", "sqlite:///")):
        url = str(Path(url).resolve())
    text = setup_yaml(
        rec,
        session.registry.get(rec.kind),
        url,
        backend=session.backend_name,
        fleetlog_cmd=fleetlog_cmd,
        component=component,
    )
    if out is None:
        output.say(text.rstrip("\n"))
    else:
        paths.write_file(out, text)
        output.warn(f"wrote {out}")


@provisioner_app.command("stage")
def stage(
    ctx: typer.Context,
    resource: str = typer.Argument(..., help="KIND/NAME, e.g. component/hare."),
    stage_name: str = typer.Argument(..., metavar="STAGE", help="post_install, config, init, ..."),
    config: str = typer.Option(None, "--config", help="The ConfStore URL ($URL)."),
    plan: str = typer.Option(None, "--plan", help="test: sanity, regression, full, ..."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for the stage."),
    json: bool = JSON,
) -> None:
    """Run one stage (fire its transition); exit 0 on success, N > 0 on error."""
    from fleetlog.engine.cli import report
    from fleetlog.engine.model import parse_assignments
    from fleetlog.engine.ops import FanoutResult
    from fleetlog.machines.provisioner import stage_params

    session: Session = ctx.obj
    given = parse_assignments(param, resource)
    rec = _resource(session, resource)
    kind = session.registry.get(rec.kind)
    extra = {k: v for k, v in (("config", config), ("plan", plan)) if v is not None}
    triggers = {t.trigger for t in kind.spec.transitions}
    declared = stage_params(kind, stage_name, extra) if stage_name in triggers else extra
    out = session.runner().fire(resource, stage_name, {**declared, **given})
    report(FanoutResult(outcomes=[out]), json)


@provisioner_app.command("check-idempotent")
def check_idempotent(
    ctx: typer.Context,
    resource: str = typer.Argument(..., help="KIND/NAME, e.g. component/hare."),
    stage_name: str = typer.Argument(..., metavar="STAGE", help="The stage to run twice."),
    config: str = typer.Option(None, "--config", help="The ConfStore URL, for every stage."),
    param: list[str] = typer.Option(
        [], "--param", "-p", help="NAME=VALUE, given to every stage that declares NAME."
    ),
    fresh: bool = typer.Option(
        False,
        "--fresh",
        help="Start from an empty simulated world instead of a copy of this journal's sim world.",
    ),
    json: bool = JSON,
) -> None:
    """Run STAGE twice on a scratch copy of the simulated world (after the stages that
    lead to it) and fail (exit 1) if the second run fails or changes anything."""
    from fleetlog.engine.model import parse_assignments
    from fleetlog.machines.provisioner import NotIdempotent
    from fleetlog.machines.provisioner import check_idempotent as check

    session: Session = ctx.obj
    given = parse_assignments(param, resource)
    if config is not None:
        given["config"] = config
    rec = _resource(session, resource)
    world = None
    backend = session.backend
    from fleetlog.engine.backends.sim import SimBackend  # only this command needs it

    if not fresh and isinstance(backend, SimBackend):
        world = backend.world.snapshot()
    report = check(session.registry, rec, stage_name, given, world_from=world)
    if json:
        output.emit_json(report.to_dict())
    problem = report.problem()
    if problem is None:
        if not json:
            first = len(report.first.effects)
            output.say(
                f"{resource} {stage_name}: idempotent (first run: {first} effect(s); second "
                "run: succeeded, no change)"
            )
        return
    raise NotIdempotent(f"{resource} {stage_name} is not idempotent: {problem}")
