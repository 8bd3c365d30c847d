"""``{param}`` templates in commands: parsed once, rendered shell-safe.

Every substituted value is passed through ``shlex.quote``, so a VM named
``x; rm -rf /`` becomes one shell word, never a second command. Consequently a
placeholder must stand where a whole shell word may stand: do not wrap it in quotes
yourself. Secrets interpolate too, but ``redact=True`` renders ``<secret:NAME>`` instead,
which is the form that reaches the journal, logs and output.

Syntax: ``{name}`` or ``{ref.attr}`` (identifiers), ``{{`` and ``}}`` for literal braces.

The rendered text is POSIX shell on every backend (``/bin/sh -c`` locally, the login
shell over ssh), so the quoting means the same wherever it runs. ``misquoted`` finds the
placeholders an author put inside shell quotes, which ``machines check`` refuses.
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
        # Literal text runs to the next brace: taken whole, not a character at a time
        # (every command of every machine is parsed each time the kinds are checked).
        brace = min(b for b in (template.find("{", i), template.find("}", i), n) if b >= 0)
        if brace > i:
            text.append(template[i:brace])
            i = brace
            continue
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
        else:  # c == "}"
            raise TemplateError(
                template=template, index=i, reason="single '}'; write '}}' for a literal brace"
            )
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


class Misquoted(NamedTuple):
    """A placeholder the shell would not read as a word of its own, and why: it stands
    inside ``single quotes`` or ``double quotes``, or right after ``a backslash``."""

    placeholder: Placeholder
    where: str


def misquoted(template: str) -> list[Misquoted]:
    """The placeholders of ``template`` that an author wrapped in shell quoting.

    A value is substituted already single-quoted, so inside ``'...'`` it closes the
    author's quote and its text is read unquoted, and inside ``"..."`` its quotes are
    literal while ``$(...)`` and backquotes in it still run: both make a value a command.
    A backslash before it escapes the value's opening quote, and a ``$`` before it makes
    ``$'...'``, whose backslash escapes would rewrite the value. The template is read as
    POSIX shell text: ``\\`` escapes outside single quotes, and ``$(...)`` or backquotes
    (even within double quotes) start a fresh command in which quoting begins anew, so
    ``"$(cat {file})"`` is fine. Raises ``TemplateError`` like :func:`parse`.
    """
    found: list[Misquoted] = []
    # The shell contexts open at this point, innermost last: "sh" (words), "(" (a
    # subshell or nested parens), "$(" and "`" (a command substitution), "'" and '"'.
    frames = ["sh"]
    escaped = dollar = False
    for seg in parse(template):
        if isinstance(seg, Placeholder):
            if escaped:
                found.append(Misquoted(seg, "a backslash"))
            elif frames[-1] == "'":
                found.append(Misquoted(seg, "single quotes"))
            elif frames[-1] == '"':
                found.append(Misquoted(seg, "double quotes"))
            elif dollar:
                found.append(Misquoted(seg, "a '$'"))
            escaped = dollar = False  # the value is a complete quoted word
        else:
            escaped, dollar = _scan(seg, frames, escaped)
    return found


def _scan(text: str, frames: list[str], escaped: bool) -> tuple[bool, bool]:
    """Advance the shell quoting state ``frames`` over literal ``text``; return whether
    it ends in an escaping backslash, and whether in a ``$`` that is not quoted."""
    i, n = 0, len(text)
    dollar = False
    while i < n:
        c, top = text[i], frames[-1]
        dollar = False
        if escaped:
            escaped = False
        elif top == "'":
            if c == "'":
                frames.pop()
        elif c == "\\":
            escaped = True
        elif top == '"':
            if c == '"':
                frames.pop()
            elif c == "`":
                frames.append("`")
            elif text.startswith("$(", i):
                frames.append("$(")
                i += 1
        elif c in "'\"":
            frames.append(c)
        elif c == "`":
            if top == "`":
                frames.pop()
            else:
                frames.append("`")
        elif text.startswith("$(", i):
            frames.append("$(")
            i += 1
        elif c == "(":
            frames.append("(")
        elif c == ")" and top in ("(", "$("):
            frames.pop()
        elif c == "$":
            dollar = True
        i += 1
    return escaped, dollar


def to_text(value: Any) -> str:
    """How a param value reads on a command line: DSL literals, not Python reprs."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
