"""The ``fleetlog`` command line (typer).

Errors are turned into one line on stderr and the contract's exit code in exactly one
place, ``main``: 0 ok, 1 an operation failed, 2 usage error, 3 drift found or needs
attention, 4 journal integrity failure, 130 interrupted (Ctrl-C, saying what was left:
``engine.cli.interrupt``). No traceback reaches the user for a ``FleetlogError``;
anything else is a bug and is reported as one (exit 1). docs/output.md is the contract.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

import typer

from fleetlog import __version__, packs
from fleetlog.engine.backends import BACKENDS
from fleetlog.engine.cli import backend as backend_cmds
from fleetlog.engine.cli import completion as completion_cmds
from fleetlog.engine.cli import inventory as inventory_cmds
from fleetlog.engine.cli import journal as journal_cmds
from fleetlog.engine.cli import machines as machines_cmds
from fleetlog.engine.cli import metrics as metrics_cmds
from fleetlog.engine.cli import output
from fleetlog.engine.cli import reconcile as reconcile_cmds
from fleetlog.engine.cli import rehearse as rehearse_cmds
from fleetlog.engine.cli import run as run_cmds
from fleetlog.engine.cli import worker as worker_cmds
from fleetlog.engine.cli.inputs import guarded, unusable_arg
from fleetlog.engine.cli.integrity import Guard
from fleetlog.engine.cli.interrupt import EXIT_CODE as INTERRUPTED
from fleetlog.engine.cli.interrupt import Interrupted, Interrupts
from fleetlog.engine.cli.session import Session, default_journal_url, notifier_for
from fleetlog.engine.model.gcpause import fewer_collections
from fleetlog.errors import FleetlogError
from fleetlog.limits import escape

if TYPE_CHECKING:
    from fleetlog.engine.runtime import Runner

app = typer.Typer(
    name="fleetlog",
    help=(
        "Drive datacenter resources as journaled state machines: every command and backend "
        "event is appended to a journal, state is replayed from it, and interrupted work "
        "resumes where it stopped."
    ),
    no_args_is_help=True,
    add_completion=False,  # `fleetlog completion SHELL` prints the script instead
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        output.say(f"fleetlog {__version__}")
        raise typer.Exit()


@app.callback()
def _globals(
    ctx: typer.Context,
    _version: bool = typer.Option(
        False,
        "--version",
        is_eager=True,
        expose_value=False,
        callback=_print_version,
        help="Print fleetlog's version and exit.",
    ),
    journal: str = typer.Option(
        None,
        "--journal",
        envvar="FLEETLOG_JOURNAL",
        help="Journal: an SQLite file path or a postgresql:// URL. [default: ./fleetlog.db]",
        show_default=False,
    ),
    backend: str = typer.Option(
        None,
        "--backend",
        envvar="FLEETLOG_BACKEND",
        help=f"Where steps run: {', '.join(BACKENDS)}. sim is the in-process simulated "
        "datacenter. [default: the backend the journal is bound to (the first command "
        "that runs a step binds it; `fleetlog backend set` changes it), else sim]",
        show_default=False,
    ),
    accept_new_host_keys: bool = typer.Option(
        False,
        "--accept-new-host-keys",
        envvar="FLEETLOG_ACCEPT_NEW_HOST_KEYS",
        help="ssh: trust a host key seen for the first time (like OpenSSH accept-new) and "
        "journal its fingerprint. A changed key is always refused.",
    ),
    witness: str = typer.Option(
        None,
        "--witness",
        envvar="FLEETLOG_WITNESS",
        help="A witness file, kept on another disk or host: every write command appends "
        "the journal's head to it, and every command checks the journal still holds the "
        "heads it recorded (`verify`: all of them), so removed or rewritten history shows.",
        show_default=False,
    ),
    chain_key_file: str = typer.Option(
        None,
        "--chain-key-file",
        envvar="FLEETLOG_CHAIN_KEY_FILE",
        help="A file (mode 0600, kept away from the journal) holding the chain key: the "
        "journal's verified head, its snapshots and witness lines are sealed with it "
        "(HMAC-SHA256), so history cannot be rewritten unseen without it. Or give the key "
        "itself in FLEETLOG_CHAIN_KEY.",
        show_default=False,
    ),
    notify: str = typer.Option(
        None,
        "--notify",
        envvar="FLEETLOG_NOTIFY",
        help="A webhook URL: POST a signed JSON event for each needs-attention, failed "
        "transition, drift finding and finished fan-out plan this command journals "
        "(docs/notifications.md). Sent in the background with retries; never blocks a "
        "step or changes the exit code.",
        show_default=False,
    ),
    notify_secret_file: str = typer.Option(
        None,
        "--notify-secret-file",
        envvar="FLEETLOG_NOTIFY_SECRET_FILE",
        help="A file (mode 0600) holding the secret that signs notifications "
        "(X-Fleetlog-Signature: sha256=HMAC of the body). Or give the secret itself in "
        "FLEETLOG_NOTIFY_SECRET.",
        show_default=False,
    ),
) -> None:
    ctx.obj = Session(
        journal_url=journal or default_journal_url(),
        backend_given=backend,
        accept_new_host_keys=accept_new_host_keys,
        guard=Guard(witness_path=witness, key_file=chain_key_file),
        notifier=notifier_for(notify, notify_secret_file),
    )
    _SESSIONS.append(ctx.obj)
    ctx.call_on_close(ctx.obj.close)


#: The sessions of the command running, for ``main`` to add what integrity says.
_SESSIONS: list[Session] = []


for _module in (
    machines_cmds,
    inventory_cmds,
    journal_cmds,
    run_cmds,
    reconcile_cmds,
    worker_cmds,
    backend_cmds,
    completion_cmds,
    metrics_cmds,
    rehearse_cmds,
):
    _module.register(app)


def _pack_commands(target: typer.Typer) -> list[str]:
    """Commands machine packs contribute (``Pack.commands``); a pack whose commands
    cannot be added is named in a warning, and every other command still works."""
    problems = [str(f) for f in packs.discover().failed]
    for pack in packs.discover().loaded:
        for ref in pack.commands:
            try:
                packs.resolve(ref)(target)
            except Exception as exc:  # one broken pack must not take the CLI down
                problems.append(
                    f"machine pack {pack.name!r}: its commands ({ref}) cannot be added: "
                    f"{type(exc).__name__}: {exc}"
                )
    return problems


PACK_PROBLEMS = _pack_commands(app)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the contract's exit code."""
    for problem in PACK_PROBLEMS:
        sys.stderr.write(f"fleetlog: warning: {problem}\n")
    _SESSIONS.clear()
    raised: BaseException | None = None
    completion_cmds.answering()
    interrupts = Interrupts(_runners)
    try:
        # standalone_mode=False: click returns typer.Exit codes instead of exiting, and
        # raises its usage errors to us, so every exit code is decided here.
        # Every value of every command is checked first (engine.cli.inputs).
        with interrupts.installed(), fewer_collections():
            rv = guarded(app, argv)(args=argv, prog_name="fleetlog", standalone_mode=False)
    except Interrupted as exc:  # the command said what it left itself
        sys.stderr.write(f"fleetlog: {escape(str(exc))}\n")
        code = exc.exit_code
        raised = exc
    except FleetlogError as exc:
        # dsl is already imported whenever a DSLError was raised: importing here is free,
        # and keeps dsl (and lark) out of start-up for commands that never compile.
        from fleetlog.dsl import DSLError

        # A bad machine file gets every diagnostic with its source line and caret; every
        # other error is one line.
        text = exc.format() if isinstance(exc, DSLError) else str(exc)
        # A value echoed in a message never sends a raw control character to the terminal.
        text = escape(text, keep="\t\n" if isinstance(exc, DSLError) else "")
        sys.stderr.write(f"fleetlog: error: {text}\n")
        code = exc.exit_code
        raised = exc
    except SystemExit as exc:  # click usage errors in non-standalone mode still exit
        code = exc.code if isinstance(exc.code, int) else 1
    except KeyboardInterrupt:
        code = INTERRUPTED
    except Exception as exc:
        import click

        if _stopped(exc):
            code = INTERRUPTED  # a transition stopped before its next step, on Ctrl-C
        elif isinstance(exc, _click_exceptions()):
            exc.show()  # type: ignore[attr-defined]
            code = exc.exit_code  # type: ignore[attr-defined]
        elif isinstance(exc, click.Abort | typer.Abort):
            sys.stderr.write("fleetlog: aborted\n")
            code = 1
        elif (fault := _environment_fault(exc)) is not None:
            sys.stderr.write(f"fleetlog: error: {fault}\n")
            code = 1
        elif (bad := unusable_arg(argv, exc)) is not None:
            sys.stderr.write(f"fleetlog: error: {escape(str(bad))}\n")
            code = bad.exit_code
        elif os.environ.get("FLEETLOG_DEBUG"):
            raise
        else:
            # A bug, not bad input: still one line for the operator (the journal is
            # append-only, so nothing it held was changed), the traceback on request.
            sys.stderr.write(
                f"fleetlog: internal error: {type(exc).__name__}: {escape(str(exc))} "
                "(this is a bug; rerun with FLEETLOG_DEBUG=1 for the traceback)\n"
            )
            code = 1
    else:
        code = rv if isinstance(rv, int) else 0
    if (code == INTERRUPTED or interrupts.count) and not isinstance(raised, Interrupted):
        # typer turns KeyboardInterrupt into exit 130; say what was left, and where.
        sys.stderr.write(f"fleetlog: {interrupts.message()}\n")
        code = INTERRUPTED
    for session in _SESSIONS:  # a damaged journal's warning, a failed seal or witness
        code = session.guard.outcome(code, raised)
    _SESSIONS.clear()
    if argv is None:
        sys.exit(code)
    return code


def _runners() -> list[Runner]:
    """The runners this command has made so far (Ctrl-C stops them between steps)."""
    return [r for s in _SESSIONS if (r := s.active_runner) is not None]


def _stopped(exc: Exception) -> bool:
    """A runner's ``Stopping``: runtime is imported whenever one was raised."""
    runtime = sys.modules.get("fleetlog.engine.runtime")
    stopping = getattr(runtime, "Stopping", None)
    return isinstance(stopping, type) and isinstance(exc, stopping)


def _environment_fault(exc: Exception) -> str | None:
    """An OS error no command mapped that still says the environment refused — disk
    full writing stdout, permission denied, read-only media, an I/O error — as one line:
    not a bug. The journal and output files map their own (``journal.environment``,
    ``cli.paths``), with the path."""
    import errno

    if not isinstance(exc, OSError) or exc.errno not in (
        errno.ENOSPC,
        errno.EDQUOT,
        errno.EROFS,
        errno.EACCES,
        errno.EPERM,
        errno.EIO,
    ):
        return None
    where = f" {exc.filename}" if exc.filename else ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full writing{where or ' output'}: {exc.strerror}"
    return f"{exc.strerror or exc}{':' + where if where else ''}"


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
