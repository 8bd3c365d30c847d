"""Every command-line value checked before a command runs (``fleetlog.limits``).

``guarded`` wraps the callback of every command of the app — the engine's own and the
ones machine packs add — so that each string it receives (an argument, an option, a
value from an environment variable such as ``FLEETLOG_JOURNAL``) is refused, naming the
option, when it holds a NUL or another control character or is longer than one program
argument can be. Parameter values (``--param``) and ``--reason`` are free text and may
hold tabs and line breaks. What a value must be beyond that (a name, a seq, a time) is
checked where it is read.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any

import typer
import typer.main

from fleetlog import limits

#: Options whose values are free text (tabs and line breaks allowed).
FREE_TEXT = frozenset({"--param", "--reason"})
_GUARDED = "__fleetlog_guarded__"


class ArgumentError(limits.InputError):
    """A command-line value out of bounds (exit 2), naming the option or argument."""


def label(param: Any) -> str:
    """``--param`` for an option, ``argument PATTERN`` for an argument."""
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")]
    if getattr(param, "param_type_name", "") == "option" and opts:
        return str(opts[0])
    return f"argument {str(param.name or '?').upper()}"


def check_value(value: Any, where: str, *, free_text: bool = False) -> None:
    """``value`` (a string, a path, or a list of them), or ``ArgumentError``."""
    if isinstance(value, list | tuple):
        for item in value:
            check_value(item, where, free_text=free_text)
        return
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        return
    problem = limits.text_problem(value, multiline=free_text, max_bytes=limits.MAX_ARG_BYTES)
    if problem is not None:
        raise ArgumentError(f"{where} {limits.shown(value, 40)}: {problem}")


def _guard(callback: Callable[..., Any], params: dict[str, Any]) -> Callable[..., Any]:
    @functools.wraps(callback)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name, value in kwargs.items():
            param = params.get(name)
            if param is None:
                continue
            where = label(param)
            check_value(value, where, free_text=where in FREE_TEXT)
        return callback(*args, **kwargs)

    setattr(checked, _GUARDED, True)
    return checked


def guard(command: Any) -> Any:
    """Wrap the callback of ``command`` (a click command built by typer) and of every
    sub-command under it; returns ``command``."""
    callback = getattr(command, "callback", None)
    if callback is not None and not getattr(callback, _GUARDED, False):
        params = {p.name: p for p in getattr(command, "params", []) if p.name}
        command.callback = _guard(callback, params)
    for sub in (getattr(command, "commands", None) or {}).values():
        guard(sub)
    return command


def guarded(app: typer.Typer) -> Any:
    """The click command ``app`` builds, every value of every command checked. Built
    once per shape of the app (its commands, groups and callbacks), since building it
    costs more than most commands take to run in-process (tests call ``main`` thousands
    of times); a command added later changes the shape, and the command is rebuilt."""
    key = _shape(app)
    command = _BUILT.get(key)
    if command is None:
        command = guard(typer.main.get_command(app))
        _BUILT.clear()
        _BUILT[key] = command
    return command


_BUILT: dict[tuple[Any, ...], Any] = {}


def _shape(app: typer.Typer) -> tuple[Any, ...]:
    return (
        id(app),
        id(app.registered_callback),
        tuple(id(c) for c in app.registered_commands),
        tuple((id(g), _shape(g.typer_instance)) for g in app.registered_groups if g.typer_instance),
    )
