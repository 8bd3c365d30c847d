"""What a backend listing says, in a form every listing format produces.

A kind that observes through a listing (``observe { list "CMD" … format NAME }``) gets
its resources, and optionally the backend's jobs (``jobs "CMD" … format NAME``), from
text a *format* parses: the engine ships ``table`` (whitespace- or separator-delimited
columns, one resource per line); machine packs add the formats of their systems
(``Pack.listing_formats``: Ganeti's ``gnt-instance list`` and RAPI JSON in the built-in
pack). A format knows its system's conventions (units, booleans, list fields, the
markers that mean "the backend cannot tell"); the engine knows only these dataclasses.

A format raises ``ValueError`` for text it cannot read; the reconciler then treats the
whole listing as *unknown*, never as "nothing there". A row the backend marks as
unknown (Ganeti's ``?`` for a node that does not answer) is a ``Listed`` with
``status`` None and ``unknown`` set: present, state unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import field
from typing import Any, Literal, Protocol, runtime_checkable

from fleetlog import packs
from fleetlog.frozen import frozen

#: How a job ended, as the reconciler reads it: ``pending`` (queued, waiting, running,
#: canceling) or one of the three final outcomes.
JobOutcome = Literal["pending", "success", "error", "canceled"]
FINAL_OUTCOMES: tuple[JobOutcome, ...] = ("success", "error", "canceled")

#: Markers a ``table`` cell may hold when the backend cannot tell the value.
UNKNOWN_CELLS = frozenset({"?", "??", "(unknown)", "(nodata)", "(unavail)"})


@frozen
class Listed:
    """One resource a listing reports.

    ``fields``: every column, keyed by the backend's own field name (``be/vcpus``,
    ``disk.sizes``), normalised by the format (ints for sizes in MiB, lists for list
    fields, bools for flags, None for a missing value). ``status``: the value the kind's
    observe map reads. ``host``: where it runs (evidence only).
    """

    name: str
    status: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)
    host: str | None = None
    unknown: str | None = None


@frozen
class Job:
    """One backend job (Ganeti's job queue): its id, raw status, what it does."""

    id: str
    status: str
    outcome: JobOutcome
    ops: tuple[str, ...] = ()
    received: str | None = None  # ISO times (UTC), evidence only
    started: str | None = None
    ended: str | None = None

    @property
    def final(self) -> bool:
        return self.outcome != "pending"


@frozen
class FormatOptions:
    """What the machine declares about the text: its columns and separator."""

    columns: tuple[str, ...] = ()
    separator: str | None = None


@runtime_checkable
class ResourceFormat(Protocol):
    """Parses a listing of resources."""

    name: str

    def resources(self, text: str, options: FormatOptions) -> list[Listed]:
        """Every resource ``text`` lists; ``ValueError`` (with a line) if unreadable."""
        ...


@runtime_checkable
class JobFormat(Protocol):
    """Parses a listing of jobs."""

    name: str

    def jobs(self, text: str, options: FormatOptions) -> list[Job]:
        """Every job ``text`` lists; ``ValueError`` (with a line) if unreadable."""
        ...


def split_row(line: str, options: FormatOptions, lineno: int) -> list[str]:
    """One row's cells: split on the separator (exactly the column count), or on runs of
    whitespace with the last column taking the rest of the line."""
    n = len(options.columns)
    if options.separator:
        cells = line.split(options.separator)
    else:
        cells = line.split(None, n - 1) if n else line.split()
    if len(cells) != n:
        raise ValueError(f"line {lineno}: {len(cells)} column(s), expected {n} ({line[:60]!r})")
    return [c.strip() for c in cells]


class Table:
    """The engine's own format: one resource per line, columns as declared (``name`` and
    ``status`` among them), ``#`` comments and blank lines skipped. A status cell that
    says the backend cannot tell (``?``, ``(unknown)``) makes the row unknown."""

    name = "table"

    def resources(self, text: str, options: FormatOptions) -> list[Listed]:
        cols = options.columns or ("name", "status")
        if "name" not in cols or "status" not in cols:
            raise ValueError("format table needs a 'name' and a 'status' column")
        opts = FormatOptions(cols, options.separator)
        out: list[Listed] = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            row = dict(zip(cols, split_row(line, opts, lineno), strict=True))
            name = row["name"]
            if not name:
                raise ValueError(f"line {lineno}: empty name")
            status = row["status"]
            if status in UNKNOWN_CELLS:
                out.append(Listed(name, None, row, unknown=f"status {status!r}"))
            else:
                out.append(Listed(name, status, row))
        return out


TABLE = Table()
BUILTIN_FORMATS: dict[str, object] = {TABLE.name: TABLE}


def formats() -> dict[str, object]:
    """Every listing format by name: the engine's, then those the packs declare."""
    found: dict[str, object] = dict(BUILTIN_FORMATS)
    for ref in packs.discover().named("listing_formats"):
        fmt = packs.resolve(ref)
        name = getattr(fmt, "name", None)
        if isinstance(name, str):
            found.setdefault(name, fmt)
    return found


def resource_format(name: str) -> ResourceFormat:
    fmt = formats().get(name)
    if not isinstance(fmt, ResourceFormat):
        raise KeyError(name)
    return fmt


def job_format(name: str) -> JobFormat:
    fmt = formats().get(name)
    if not isinstance(fmt, JobFormat):
        raise KeyError(name)
    return fmt


def text_of(value: Any) -> str:
    """A field value as the journal's params hold it: lists comma-joined, None empty."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(text_of(v) for v in value)
    return str(value)
