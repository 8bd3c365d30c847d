"""The DSL's entry points: compile a file or a string, link a set of machines.

This is the whole pipeline in one place — parse (``dsl.parser``), lower
(``dsl.compiler``), check (``dsl.checks``) — and the one place that decides what is
raised: any error-severity diagnostic, from any stage, ends in a single ``DSLError``
listing all of them; warnings are returned alongside the spec.
"""

from __future__ import annotations

import os
from collections.abc import Collection

from fleetlog import limits
from fleetlog.dsl.checks import check_machine
from fleetlog.dsl.compiler import compile_tree
from fleetlog.dsl.diagnostics import Diagnostic, sort_key
from fleetlog.dsl.errors import DSLError
from fleetlog.dsl.linking import link_check
from fleetlog.dsl.parser import parse
from fleetlog.dsl.spec import MachineSpec

__all__ = ["compile_file", "compile_source", "link_check"]


def compile_source(
    text: str,
    filename: str = "<string>",
    plugins: Collection[str] | None = None,
    formats: Collection[str] | None = None,
) -> tuple[MachineSpec, list[Diagnostic]]:
    """Compile one machine definition; return (spec, warnings) or raise ``DSLError``.

    ``plugins`` is the set of registered step plugin names; when given, a ``call`` to
    any other name is an error (when None, plugin names are not checked). ``formats``
    likewise names the listing formats an observe block may use.
    """
    text = text.removeprefix("\ufeff")  # a UTF-8 byte-order mark (Windows editors) is not content
    unsafe = _control_characters(text, filename)
    if unsafe:
        raise DSLError.from_diagnostics(unsafe, source=text)
    tree = parse(text, filename)
    try:
        lowered = compile_tree(tree, text, filename)
    except RecursionError:  # guards are depth-limited; this is a last line of defence
        raise DSLError.from_diagnostics(
            [Diagnostic(filename, 1, 1, "definition is nested too deeply")], source=text
        ) from None
    diagnostics = sorted(
        [*lowered.diagnostics, *check_machine(lowered.spec, lowered.uses, plugins, formats)],
        key=sort_key,
    )
    if any(d.is_error for d in diagnostics):
        raise DSLError.from_diagnostics(diagnostics, source=text)
    return lowered.spec, diagnostics


def _control_characters(text: str, filename: str) -> list[Diagnostic]:
    """A diagnostic for the first raw control character (NUL, ESC, ...: never in a
    machine file, and not to be echoed to a terminal) on each of the first few lines that
    hold one; tabs, form feeds and line ends are whitespace."""
    if text.isprintable():
        return []
    found: list[Diagnostic] = []
    for lineno, line in enumerate(text.split("\n"), 1):
        bad = limits.unsafe_chars(line, "\t\f\r")
        if bad:
            col = line.index(bad[0]) + 1
            found.append(
                Diagnostic(
                    filename,
                    lineno,
                    col,
                    f"{limits.describe(bad[:1])} cannot be in a machine file",
                    hint="a machine file is text: remove it, or write what it stands for",
                )
            )
            if len(found) == 5:
                break
    return found


def compile_file(
    path: str | os.PathLike[str],
    plugins: Collection[str] | None = None,
    formats: Collection[str] | None = None,
) -> tuple[MachineSpec, list[Diagnostic]]:
    """Read and compile ``path`` (UTF-8); an unreadable file is a ``DSLError`` too."""
    filename = os.fspath(path)
    try:
        with open(filename, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise DSLError.from_diagnostics(
            [Diagnostic(filename, 1, 1, f"cannot read machine file: {reason}")]
        ) from exc
    return compile_source(text, filename, plugins, formats)
