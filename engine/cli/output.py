"""Printing results: JSON for scripts, rich tables for people.

rich is imported only when a table is actually drawn, keeping ``--json`` paths and
start-up cheap. Errors go to stderr as one line; data goes to stdout.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection, Iterable, Sequence
from typing import Any


def emit_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def table(
    title: str | None,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    whole: Collection[str] = (),
) -> None:
    """``whole``: columns never folded (ids, seqs, states), so that on a narrow
    terminal it is the free text that wraps, not the values people scan down."""
    from rich.console import Console
    from rich.table import Table

    t = Table(title=title, show_lines=False, header_style="bold")
    for c in columns:
        t.add_column(c, overflow="fold", no_wrap=c in whole)
    for row in rows:
        t.add_row(*("" if v is None else str(v) for v in row))
    Console(soft_wrap=False).print(t)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")


def warn(text: str) -> None:
    sys.stderr.write(text + "\n")
