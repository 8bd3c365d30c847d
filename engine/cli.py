"""The ``fleetlog`` command line (typer).

Errors are turned into one line on stderr and the contract's exit code in exactly one
place, ``main``: 0 ok, 1 an operation failed, 2 usage error, 3 drift found or needs
attention, 4 journal integrity failure. No traceback reaches the user for a
``FleetlogError``; anything else is a bug and is reported as one (exit 1).
"""

from __future__ import annotations

import os
import sys

import typer

from engine import (
    cli_inventory,
    cli_journal,
    cli_machines,
    cli_provisioner,
    cli_reconcile,
    cli_run,
    cli_worker,
)
from engine.session import BACKENDS, Session, default_journal_url
from fleetlog.errors import FleetlogError

app = typer.Typer(
    name="fleetlog",
    help=(
        "Drive datacenter resources as journaled state machines: every command and backend "
        "event is appended to a journal, state is replayed from it, and interrupted work "
        "resumes where it stopped."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


@app.callback()
def _globals(
    ctx: typer.Context,
    journal: str = typer.Option(
        None,
        "--journal",
        envvar="FLEETLOG_JOURNAL",
        help="Journal: an SQLite file path or a postgresql:// URL. [default: ./fleetlog.db]",
        show_default=False,
    ),
    backend: str = typer.Option(
        "sim",
        "--backend",
        envvar="FLEETLOG_BACKEND",
        help=f"Where steps run: {', '.join(BACKENDS)}. sim is the in-process simulated datacenter.",
    ),
    accept_new_host_keys: bool = typer.Option(
        False,
        "--accept-new-host-keys",
        envvar="FLEETLOG_ACCEPT_NEW_HOST_KEYS",
        help="ssh: trust a host key seen for the first time (like OpenSSH accept-new) and "
        "journal its fingerprint. A changed key is always refused.",
    ),
) -> None:
    ctx.obj = Session(
        journal_url=journal or default_journal_url(),
        backend_name=backend,
        accept_new_host_keys=accept_new_host_keys,
    )
    ctx.call_on_close(ctx.obj.close)


app.add_typer(cli_machines.machines_app, name="machines")
app.add_typer(cli_provisioner.provisioner_app, name="provisioner")
app.add_typer(cli_inventory.inventory_app, name="inventory")
app.command("demo")(cli_inventory.demo)
app.command("graph")(cli_machines.graph)
for _name, _fn in {
    **cli_journal.COMMANDS,
    **cli_run.COMMANDS,
    **cli_reconcile.COMMANDS,
    **cli_worker.COMMANDS,
}.items():
    app.command(_name)(_fn)  # type: ignore[type-var]


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the contract's exit code."""
    try:
        # standalone_mode=False: click returns typer.Exit codes instead of exiting, and
        # raises its usage errors to us, so every exit code is decided here.
        rv = app(args=argv, prog_name="fleetlog", standalone_mode=False)
    except FleetlogError as exc:
        # dsl is already imported whenever a DSLError was raised: importing here is free,
        # and keeps dsl (and lark) out of start-up for commands that never compile.
        from dsl.errors import DSLError

        # A bad machine file gets every diagnostic with its source line and caret; every
        # other error is one line.
        text = exc.format() if isinstance(exc, DSLError) else str(exc)
        sys.stderr.write(f"fleetlog: error: {text}\n")
        code = exc.exit_code
    except SystemExit as exc:  # click usage errors in non-standalone mode still exit
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        sys.stderr.write("fleetlog: interrupted\n")
        code = 130
    except Exception as exc:
        import click

        if isinstance(exc, _click_exceptions()):
            exc.show()  # type: ignore[attr-defined]
            code = exc.exit_code  # type: ignore[attr-defined]
        elif isinstance(exc, click.Abort | typer.Abort):
            sys.stderr.write("fleetlog: aborted\n")
            code = 1
        elif os.environ.get("FLEETLOG_DEBUG"):
            raise
        else:
            # A bug, not bad input: still one line for the operator (the journal is
            # append-only, so nothing it held was changed), the traceback on request.
            sys.stderr.write(
                f"fleetlog: internal error: {type(exc).__name__}: {exc} "
                "(this is a bug; rerun with FLEETLOG_DEBUG=1 for the traceback)\n"
            )
            code = 1
    else:
        code = rv if isinstance(rv, int) else 0
    if argv is None:
        sys.exit(code)
    return code


def _click_exceptions() -> tuple[type[Exception], ...]:
    """``ClickException`` of click and of the copy of click that typer may vendor
    (typer >= 0.2x raises ``typer._click`` exceptions, which click's classes do not
    match). Found through ``typer.BadParameter``'s bases rather than a private import."""
    import click

    found: list[type[Exception]] = [click.ClickException]
    for base in typer.BadParameter.__mro__:
        if base.__name__ == "ClickException" and base not in found:
            found.append(base)
    return tuple(found)
