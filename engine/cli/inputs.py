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

import copy
import functools
import inspect
import math
import os
import sys
from collections.abc import Callable, Sequence
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
    """``value`` (a string, a path, a number, or a list of them), or ``ArgumentError``."""
    if isinstance(value, list | tuple):
        for item in value:
            check_value(item, where, free_text=free_text)
        return
    if isinstance(value, float) and not math.isfinite(value):
        # click's FloatRange compares, and every comparison with nan is false: a range
        # check alone lets "nan" (and, without a bound, "inf") through.
        raise ArgumentError(f"{where} {value!r}: a finite number is needed")
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


def unusable_arg(argv: list[str] | None, exc: BaseException) -> ArgumentError | None:
    """The usage error for ``exc`` when it is the ``ValueError`` of a value no file name
    can hold (a NUL, a lone surrogate) reaching ``os.stat``: click's path type stats a
    value before our checks see it. No shell passes a NUL (argv is C strings), but
    ``main`` can be called with a list. The value is named by the option before it when
    there is one."""
    if not isinstance(exc, ValueError):
        return None
    args = list(sys.argv[1:] if argv is None else argv)
    for i, arg in enumerate(args):
        if not isinstance(arg, str):
            continue
        problem = limits.text_problem(arg, multiline=True, max_bytes=limits.MAX_ARG_BYTES)
        if problem is None:
            continue
        name, eq, value = arg.partition("=")
        if eq and name.startswith("--"):
            where, shown = name, value
        elif i and str(args[i - 1]).startswith("-"):
            where, shown = str(args[i - 1]), arg
        else:
            where, shown = "argument", arg
        return ArgumentError(f"{where} {limits.shown(shown, 40)}: {problem}")
    return None


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


def guarded(app: typer.Typer, argv: Sequence[str] | None = None) -> Any:
    """The click command ``app`` builds, every value of every command checked.

    Building it costs typer an inspection of every command's signature (~20 ms, an
    eighth of a short command's start-up), so only the command ``argv`` invokes is built
    when that is clear; help at the top, an unknown name or no command at all build the
    whole app (its help lists every command, its errors suggest close names). Built once
    per shape of the app (its commands, groups and callbacks) and command, since tests
    call ``main`` thousands of times; a command added later changes the shape."""
    target = _invoked(app, list(sys.argv[1:] if argv is None else argv))
    shape = _shape(app)
    if _BUILT.get("shape") != shape:
        _BUILT.clear()
        _BUILT["shape"] = shape
    command = _BUILT.get(target)
    if command is None:
        command = guard(typer.main.get_command(_only(app, target) if target else app))
        _BUILT[target] = command
    return command


_BUILT: dict[Any, Any] = {}


def _invoked(app: typer.Typer, args: list[str]) -> str | None:
    """The command or group ``args`` names after the global options, or None."""
    names = {c.name for c in app.registered_commands if c.name}
    names |= {g.name for g in app.registered_groups if g.name}
    valued = _valued_globals(app)
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "--help", "--"):
            return None
        if arg.startswith("-"):
            i += 2 if arg in valued else 1
            continue
        return arg if arg in names else None
    return None


def _valued_globals(app: typer.Typer) -> set[str]:
    """The global options that take a value (``--journal PATH``), from the callback."""
    info = app.registered_callback
    if info is None or info.callback is None:
        return set()
    valued: set[str] = set()
    for param in inspect.signature(info.callback).parameters.values():
        decls = getattr(param.default, "param_decls", None) or ()
        if param.annotation not in (bool, "bool"):
            valued.update(d for d in decls if d.startswith("-"))
    return valued


def _only(app: typer.Typer, name: str) -> typer.Typer:
    """``app`` with its callback and the one command or group ``name``."""
    only = copy.copy(app)
    only.registered_commands = [c for c in app.registered_commands if c.name == name]
    only.registered_groups = [g for g in app.registered_groups if g.name == name]
    return only


def _shape(app: typer.Typer) -> tuple[Any, ...]:
    return (
        id(app),
        id(app.registered_callback),
        tuple(id(c) for c in app.registered_commands),
        tuple((id(g), _shape(g.typer_instance)) for g in app.registered_groups if g.typer_instance),
    )
