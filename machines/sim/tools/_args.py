"""A tiny option parser for fake tools.

argparse prints and calls ``sys.exit`` on errors, which must never happen inside the
sim's transaction; this parser raises :class:`ToolFailure` (exit 2) instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from fleetlog.engine.backends.sim import ToolFailure


@dataclass(slots=True)
class Parsed:
    positional: list[str] = field(default_factory=list)
    values: dict[str, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)


def parse(
    tool: str, args: list[str], *, valued: Iterable[str] = (), flags: Iterable[str] = ()
) -> Parsed:
    """Split ``args`` into ``--opt VALUE`` pairs, bare ``--flag`` s and positionals."""
    valued, flags = set(valued), set(flags)
    out = Parsed()
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" in arg and arg.split("=", 1)[0] in valued:
            key, value = arg.split("=", 1)
            out.values[key] = value
        elif arg in valued:
            if i + 1 >= len(args):
                raise ToolFailure(f"{tool}: option {arg} needs a value", exit_code=2)
            out.values[arg] = args[i + 1]
            i += 1
        elif arg in flags:
            out.flags.add(arg)
        elif arg.startswith("--"):
            raise ToolFailure(f"{tool}: unknown option {arg}", exit_code=2)
        else:
            out.positional.append(arg)
        i += 1
    return out


def attributes(tool: str, text: str) -> dict[str, str]:
    """``a=b,c=d`` (escli's ``--attributes`` syntax) into a dict."""
    attrs: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        if not sep or not key:
            raise ToolFailure(f"{tool}: bad attribute {part!r} (expected name=value)", exit_code=2)
        attrs[key] = value
    return attrs
