"""``fleetlog machines list|show|check`` and ``fleetlog graph``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_commands, add_group
from fleetlog.engine.cli.session import Session

machines_app = typer.Typer(
    help="List, show and check machine definitions (*.fsm).", no_args_is_help=True
)

JSON = typer.Option(False, "--json", help="Print JSON for scripts instead of a table.")


def _counts(spec: Any) -> dict[str, Any]:
    return {
        "kind": spec.name,
        "title": spec.title,
        "states": len(spec.states),
        "transitions": len(spec.transitions),
        "steps": spec.step_count,
        "file": spec.filename,
        "definition_hash": spec.definition_hash,
    }


@machines_app.command("list")
def list_(ctx: typer.Context, json: bool = JSON) -> None:
    """Every loaded kind with its counts of states, transitions and steps."""
    session: Session = ctx.obj
    rows = [_counts(k.spec) for k in session.registry]
    if json:
        output.emit_json(rows)
        return
    output.table(
        "machines",
        ["kind", "title", "states", "transitions", "steps", "file"],
        [
            [r["kind"], r["title"], r["states"], r["transitions"], r["steps"], r["file"]]
            for r in rows
        ],
    )


@machines_app.command("show")
def show(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="Kind name, e.g. vm."),
    json: bool = JSON,
) -> None:
    """One kind in full: params, states, observe map, transitions and their steps."""
    from fleetlog.dsl.spec import to_data

    session: Session = ctx.obj
    spec = session.registry.get(kind).spec
    data = to_data(spec)
    data["file"] = spec.filename
    data["definition_hash"] = spec.definition_hash
    if json:
        output.emit_json(data)
        return
    output.say(f"{spec.name} — {spec.title}  ({spec.filename})")
    output.say(f"definition hash {spec.definition_hash}")
    for p in spec.params:
        default = f" = {p.default!r}" if p.has_default else ""
        if p.type == "refs" and p.has_default:
            default = f" = {list(p.default or [])!r}"
        typ = p.type_label
        if p.type == "enum":
            typ = f"enum({', '.join(p.choices)})"
        output.say(f"  param {p.name}: {typ}{default}")
    for s in spec.secrets:
        output.say(f"  secret {s.name}")
    for st in spec.states:
        marks = [m for m in ("initial", "error", "final") if getattr(st, m)]
        output.say(f"  state {st.name}" + (f" ({', '.join(marks)})" if marks else ""))
    rows = []
    for t in spec.transitions:
        for i, step in enumerate(t.steps, 1):
            rows.append(
                [
                    t.trigger if i == 1 else "",
                    f"{','.join(t.sources)} -> {t.dest}" if i == 1 else "",
                    i,
                    step.name,
                    step.action.kind,
                    _modifiers(step),
                ]
            )
        if not t.steps:
            rows.append([t.trigger, f"{','.join(t.sources)} -> {t.dest}", "", "", "", ""])
    output.table("transitions", ["trigger", "states", "#", "step", "action", "modifiers"], rows)


def _modifiers(step: Any) -> str:
    mods = []
    if step.retry:
        mods.append(f"retry {step.retry.count}")
    if step.timeout:
        mods.append(f"timeout {step.timeout:g}s")
    if step.check:
        mods.append("check")
    if step.idempotent:
        mods.append("idempotent")
    if step.when is not None:
        mods.append("when")
    return " ".join(mods)


@machines_app.command("check")
def check(
    files: list[Path] = typer.Argument(..., help="Machine files to check (*.fsm)."),
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Count warnings (an unreachable state, an error state with no way out, ...) "
        "as errors: exit 2 when there is any.",
    ),
    json: bool = JSON,
) -> None:
    """Compile FILES with every static check; print each error and warning as
    file:line:col with a caret. Exit 2 when any file has an error (with --strict: an
    error or a warning)."""
    from fleetlog import dsl
    from fleetlog.engine.model.loader import compile_files, discover_plugins, machine_files

    plugins = discover_plugins()
    missing = [f for f in files if not _is_file(f)]
    for f in missing:
        output.warn(f"{f}: no such file")
    given = [f for f in files if _is_file(f)]
    specs, warnings, errors = compile_files(given, plugins)
    # Link against the other loaded machines too, so refs to shipped kinds resolve (when
    # a given file compiled: with none, there is nothing to link).
    context: dict[str, Any] = {}
    if specs:
        chosen = {g.resolve() for g in given}
        context_files = [f for f in machine_files() if f.resolve() not in chosen]
        context, _, _ = compile_files(context_files, plugins)
    link = dsl.link_check({**context, **specs}) if specs else []
    link_errors = [
        d for d in link if d.severity == "error" and d.file in {s.filename for s in specs.values()}
    ]
    sources = {s.filename: s.source for s in specs.values()}
    for exc in errors:
        output.warn(exc.format())
    for d in link_errors:
        output.warn(d.format(sources.get(d.file, "")))
    for w in warnings:
        output.warn(w.format(sources.get(w.file, "")))
    rows = [_counts(s) for s in specs.values()]
    failed = bool(errors or link_errors or missing or (strict and warnings))
    if json:
        output.emit_json(
            {
                "ok": not failed,
                "machines": rows,
                # error diagnostics, not files: a file with two errors counts two
                "errors": sum(max(1, len(e.errors)) for e in errors)
                + len(link_errors)
                + len(missing),
                "warnings": len(warnings),
            }
        )
    else:
        for r in rows:
            output.say(
                f"ok  {r['kind']:<18} {r['states']:>3} states {r['transitions']:>3} "
                f"transitions {r['steps']:>3} steps  {r['file']}"
            )
    if failed:
        raise typer.Exit(2)


def _is_file(path: Path) -> bool:
    """A regular file; a path the system refuses outright (a name too long, a loop of
    links, a component that is not a directory) is not one, rather than an error."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def graph(
    ctx: typer.Context,
    kind: str = typer.Argument(..., help="Kind to draw."),
    format: str = typer.Option(
        "mermaid",
        "--format",
        "-f",
        help="mermaid (stateDiagram-v2, needs nothing), dot, svg or png "
        "(svg/png need Debian's graphviz).",
    ),
    highlight: str = typer.Option(
        None, "--highlight", help="Resource (KIND/NAME) whose current state to highlight."
    ),
    out: Path = typer.Option(None, "-o", "--output", help="Write to FILE instead of stdout."),
) -> None:
    """Draw a kind's state machine."""
    from fleetlog.engine.cli import paths
    from fleetlog.engine.model.graph import render
    from fleetlog.engine.model.replay import load_resource

    session: Session = ctx.obj
    paths.check_output(out, "--output")
    k = session.registry.get(kind)
    state = None
    if highlight:
        session.for_reading()
        rec = load_resource(session.journal, session.registry, highlight)
        if rec is None:
            from fleetlog.errors import UsageError

            raise UsageError(f"no resource {highlight!r} in the journal")
        state = rec.state
    data = render(k.spec, format, highlight=state)
    if out is None:
        if isinstance(data, bytes):
            from fleetlog.errors import UsageError

            raise UsageError(f"--format {format} is binary: give -o FILE")
        output.say(data)
    else:
        paths.write_file(out, data)
        output.warn(f"wrote {out}")


def register(app: typer.Typer) -> None:
    add_group(app, "machines", machines_app)
    add_commands(app, {"graph": graph})
