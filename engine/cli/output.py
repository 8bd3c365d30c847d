"""Printing results: JSON for scripts, rich tables for people, plain lines for pipes.

rich is imported only when a table is actually drawn on a terminal, keeping ``--json``
paths and start-up cheap. When stdout is not a terminal (a pipe, a file), a table is one
line per row, columns aligned, never wrapped or truncated, so ``grep`` and ``awk`` see
whole values. Errors go to stderr as one line; data goes to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Collection, Iterable, Sequence
from typing import Any


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


class Encoded:
    """Items for ``emit_json_array`` already encoded, each text exactly what
    ``item_encoder()`` makes of the item: a caller with a faster way to write its items
    (``statusview.json_texts``: 100,000 resources) hands over their texts."""

    __slots__ = ("texts",)

    def __init__(self, texts: Iterable[str]) -> None:
        self.texts = texts


def item_encoder() -> Callable[[Any], str]:
    """How ``emit_json_array`` encodes an item: keys sorted, as ``emit_json``; anything
    JSON has no type for as its ``str``."""
    return json.JSONEncoder(sort_keys=True, default=str).encode


def emit_json_array(items: Iterable[Any] | Encoded, chunk: int = 1_000) -> None:
    """A JSON array written as its items are produced, one item per line (keys sorted,
    as ``emit_json``): a list of 100,000 resources is a stream, not one document built
    in memory, and the C encoder does the work (``indent`` would take the pure-Python
    one, ~4x slower). The output parses to the same list ``emit_json`` writes."""
    if isinstance(items, Encoded):
        texts: Iterable[str] = items.texts
    else:
        encode = item_encoder()
        texts = (encode(item) for item in items)
    write = sys.stdout.write
    opening = "[\n"
    pending: list[str] = []
    for text in texts:
        pending.append(text)
        if len(pending) >= chunk:
            write(opening + ",\n".join(pending))
            opening, pending = ",\n", []
    if pending:
        write(opening + ",\n".join(pending))
        opening = ",\n"
    write("[]\n" if opening == "[\n" else "\n]\n")


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    whole: Collection[str] = (),
) -> None:
    """``whole``: columns never folded (ids, seqs, states), so that on a narrow
    terminal it is the free text that wraps, not the values people scan down. Without a
    terminal the table is ``plain_table``: the title is left out, the header kept."""
    if not sys.stdout.isatty():
        plain_table(columns, rows)
        return
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold", no_wrap=c in whole)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=False).print(t)


def plain_table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A header line, then one line per row: cells separated by two spaces and padded to
    the widest in their column (the last is not padded). A line break or control
    character inside a value is written as an escape (``\\n``), so a row stays one line."""
    from fleetlog.limits import escape

    cells = [[escape("" if v is None else str(v)) for v in row] for row in rows]
    lines = [list(columns), *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    for line in lines:
        padded = [c.ljust(w) for c, w in zip(line[:-1], widths[:-1], strict=True)]
        sys.stdout.write("  ".join([*padded, line[-1]]).rstrip() + "\n")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")


def warn(text: str) -> None:
    sys.stderr.write(text + "\n")
