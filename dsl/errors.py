"""The DSL layer's exceptions, all under ``FleetlogError``.

``DSLError`` carries every diagnostic of a run (we collect, then raise once, so an
author fixes a file in one pass) and the source texts needed to draw carets. Its
``str`` is one line — the first error and how many more — which is what the CLI prints;
``format()`` is the full report. ``TemplateError`` and ``GuardError`` are raised by the
stand-alone helpers (``interpolate``, ``guards``) when called on data that did not come
through the compiler, e.g. a plan read back from an old journal.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from fleetlog.dsl.diagnostics import Diagnostic, sort_key
from fleetlog.errors import FleetlogError


class DSLError(FleetlogError, ValueError):
    """A machine definition is wrong; ``diagnostics`` says where and why (exit code 2)."""

    exit_code: ClassVar[int] = 2
    diagnostics: tuple[Diagnostic, ...]
    sources: dict[str, str]

    def __init__(
        self,
        message: str | None = None,
        *,
        diagnostics: Iterable[Diagnostic] = (),
        sources: Mapping[str, str] | None = None,
        **fields: Any,
    ) -> None:
        diags = tuple(sorted(diagnostics, key=sort_key))
        if message is None:
            message = _summary(diags)
        super().__init__(message, diagnostics=diags, sources=dict(sources or {}), **fields)

    @classmethod
    def from_diagnostics(
        cls,
        diagnostics: Iterable[Diagnostic],
        source: str | None = None,
        sources: Mapping[str, str] | None = None,
    ) -> DSLError:
        """Build the error for a list of diagnostics; ``source`` is the text of a single
        file (every diagnostic's file), ``sources`` maps file names to texts."""
        diags = list(diagnostics)
        texts = dict(sources or {})
        if source is not None:
            for d in diags:
                texts.setdefault(d.file, source)
        return cls(diagnostics=diags, sources=texts)

    @classmethod
    def merge(cls, errors: Sequence[DSLError]) -> DSLError:
        """One error for several files' errors (diagnostics and sources combined)."""
        diags: list[Diagnostic] = []
        texts: dict[str, str] = {}
        lines: list[str] = []
        for err in errors:
            diags.extend(err.diagnostics)
            texts.update(err.sources)
            if not err.diagnostics:
                lines.append(str(err))
        if diags:
            return cls(diagnostics=diags, sources=texts)
        return cls("; ".join(lines) or "invalid machine definitions")

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    def format(self) -> str:
        """Every diagnostic with its source line and caret; the message if there are none."""
        if not self.diagnostics:
            return self.message
        return "\n".join(d.format(self.sources.get(d.file, "")) for d in self.diagnostics)


def _summary(diags: Sequence[Diagnostic]) -> str:
    errors = [d for d in diags if d.is_error] or list(diags)
    if not errors:
        return "invalid machine definition"
    more = len(errors) - 1
    tail = f" (and {more} more error{'s' if more != 1 else ''})" if more else ""
    return str(errors[0]) + tail


class TemplateError(FleetlogError, ValueError):
    """A ``{param}`` template is malformed (an unclosed or stray brace, a bad name)."""

    msg_fmt = "bad template '%(template)s' at character %(index)d: %(reason)s"
    exit_code: ClassVar[int] = 2
    template: str
    index: int
    reason: str

    def __init__(self, *, template: str, index: int, reason: str) -> None:
        super().__init__(template=template, index=index, reason=reason)


class GuardError(FleetlogError, ValueError):
    """A guard cannot be evaluated: a malformed expression or incomparable values."""

    msg_fmt = "cannot evaluate guard: %(reason)s"
    reason: str

    def __init__(self, *, reason: str) -> None:
        super().__init__(reason=reason)
