"""``{param}`` templates in commands: parsed once, rendered shell-safe.

Every substituted value is passed through ``shlex.quote``, so a VM named
``x; rm -rf /`` becomes one shell word, never a second command. Consequently a
placeholder must stand where a whole shell word may stand: do not wrap it in quotes
yourself. Secrets interpolate too, but ``redact=True`` renders ``<secret:NAME>`` instead,
which is the form that reaches the journal, logs and output.

Syntax: ``{name}`` or ``{ref.attr}`` (identifiers), ``{{`` and ``}}`` for literal braces.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Collection
from typing import Any, NamedTuple

from fleetlog.dsl.errors import TemplateError

Lookup = Callable[[str, str | None], Any]

_PLACEHOLDER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)?\Z")


class Placeholder(NamedTuple):
    """A placeholder and the index of its ``{`` in the template (for error positions)."""

    name: str
    attr: str | None
    offset: int


Segment = str | Placeholder


def parse(template: str) -> list[Segment]:
    """Split a template into literal text and placeholders; raise ``TemplateError``."""
    if "{" not in template and "}" not in template:
        return [template] if template else []
    out: list[Segment] = []
    text: list[str] = []
    i, n = 0, len(template)
    while i < n:
        c = template[i]
        if c == "{" and template.startswith("{{", i):
            text.append("{")
            i += 2
        elif c == "}" and template.startswith("}}", i):
            text.append("}")
            i += 2
        elif c == "{":
            end = template.find("}", i + 1)
            if end < 0:
                raise TemplateError(
                    template=template, index=i, reason="'{' is never closed; write '{{' for a brace"
                )
            body = template[i + 1 : end]
            if not _PLACEHOLDER.match(body):
                raise TemplateError(
                    template=template,
                    index=i,
                    reason=f"'{{{body}}}' is not a param name or ref.param; "
                    "write '{{' and '}}' for literal braces",
                )
            if text:
                out.append("".join(text))
                text = []
            name, _, attr = body.partition(".")
            out.append(Placeholder(name, attr or None, i))
            i = end + 1
        elif c == "}":
            raise TemplateError(
                template=template, index=i, reason="single '}'; write '}}' for a literal brace"
            )
        else:
            text.append(c)
            i += 1
    if text:
        out.append("".join(text))
    return out


def placeholders(template: str) -> list[tuple[str, str | None]]:
    """The ``(name, attr)`` pairs a template reads, in order of appearance."""
    return [(s.name, s.attr) for s in parse(template) if isinstance(s, Placeholder)]


def render(
    template: str,
    lookup: Lookup,
    secrets: Collection[str] = (),
    redact: bool = False,
) -> str:
    """Substitute every placeholder, shell-quoted; with ``redact``, secrets show as
    ``<secret:NAME>``. Errors raised by ``lookup`` propagate unchanged."""
    parts: list[str] = []
    for seg in parse(template):
        if not isinstance(seg, Placeholder):
            parts.append(seg)
        elif redact and seg.attr is None and seg.name in secrets:
            parts.append(f"<secret:{seg.name}>")
        else:
            parts.append(shlex.quote(to_text(lookup(seg.name, seg.attr))))
    return "".join(parts)


def to_text(value: Any) -> str:
    """How a param value reads on a command line: DSL literals, not Python reprs."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
