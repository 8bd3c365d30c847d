"""Diagnostics: one located problem in a machine definition, and how to show it.

Every error the DSL reports — a syntax error, an unknown state, a bad default — is a
``Diagnostic`` so that the CLI, the tests and an editor integration all read the same
fields (file, 1-based line and column, message, hint) instead of parsing strings. The
one-line form is ``file:line:col: message``, what compilers print and editors jump to;
``format`` adds the offending source line and a caret under the column, like lark's
``UnexpectedInput.get_context``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Literal

from fleetlog.frozen import frozen
from fleetlog.limits import escape

Severity = Literal["error", "warning"]


@frozen
class Diagnostic:
    """A problem at ``file:line:col``; ``length`` is how many columns the caret spans."""

    file: str
    line: int
    col: int
    message: str
    severity: Severity = "error"
    hint: str | None = None
    length: int = 1

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def headline(self) -> str:
        """``file:line:col: message`` (warnings say so, errors need not)."""
        label = "warning: " if self.severity == "warning" else ""
        return f"{self.file}:{self.line}:{self.col}: {label}{self.message}"

    def __str__(self) -> str:
        return self.headline() + (f"; {self.hint}" if self.hint else "")

    def format(self, source_text: str) -> str:
        """The headline, the source line, a caret under the column, then the hint."""
        out = [escape(self.headline())]
        lines = source_text.splitlines()
        if 1 <= self.line <= len(lines):
            text = lines[self.line - 1]
            col = max(1, min(self.col, len(text) + 1))
            # The line as the terminal will show it: control characters escaped (never
            # sent raw), so the caret counts the escapes' columns too.
            before = escape(text[: col - 1], keep="\t")
            span = escape(text[col - 1 : col - 1 + max(1, self.length)], keep="\t")
            # Keep tabs in the caret's indent so the caret lines up however tabs render.
            indent = "".join("\t" if c == "\t" else " " for c in before)
            width = max(1, min(len(span), len(escape(text, keep="\t")) - len(before)))
            out.append("    " + escape(text, keep="\t"))
            out.append("    " + indent + "^" * width)
        if self.hint:
            out.append("    " + escape(self.hint))
        return "\n".join(out)


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the closest candidate, or None when nothing is close."""
    pool = sorted({c for c in candidates if c != name})
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None


def sort_key(d: Diagnostic) -> tuple[str, int, int, str]:
    """Report in reading order: file, then position, then message."""
    return (d.file, d.line, d.col, d.message)
