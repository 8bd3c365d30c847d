"""What ``fleetlog status`` prints: resources folded into node sets, one row each, or JSON.

By default rows that would read the same fold into one, the way ``clush -b`` folds the
identical output of many nodes: ``noop/r[1-100000]  100000  done  3``. A row folds with
another when kind, state and the transition in progress (trigger, target, current step)
are the same; the version column then shows the range of versions. A resource that needs
attention is never folded: it keeps a row of its own with its step and reason, since it
is the row an operator must act on. ``--all`` prints one row per resource.

``--json`` is never folded: one object per resource with the same keys as ever, written
as it is produced (one object per line inside the array) rather than as one document
built in memory, so 100,000 resources cost a stream, not a giant ``dumps``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii
from typing import Any

from fleetlog.engine.cli import output
from fleetlog.engine.model.patterns import fold_nodes
from fleetlog.engine.model.records import Resource

FOLDED_COLUMNS = ("resources", "count", "state", "version", "in progress", "attention")
ALL_COLUMNS = ("resource", "state", "version", "in progress", "attention")
#: Above this many rows a table is written as plain lines even on a terminal: rich
#: takes ~0.3 ms per row to lay out, half a minute for 100,000.
RICH_ROWS = 2_000


def in_progress(rec: Resource) -> str:
    ip = rec.in_progress
    if ip is None:
        return ""
    return f"{ip.source} → {ip.target} ({ip.trigger}{' @ ' + ip.step if ip.step else ''})"


def attention(rec: Resource) -> str:
    a = rec.attention
    return f"step {a['step']}: {a['reason']}" if a else ""


def status_row(rec: Resource) -> dict[str, Any]:
    """One resource as ``status --json`` and ``replay --json`` show it."""
    ip = rec.in_progress
    return {
        "id": rec.id,
        "kind": rec.kind,
        "name": rec.name,
        "state": rec.state,
        "version": rec.version,
        "in_progress": None
        if ip is None
        else {
            "trigger": ip.trigger,
            "target": ip.target,
            "step": ip.step,
            "source": ip.source,
        },
        "needs_attention": rec.attention,
        "observed": rec.observed,
        "params": rec.params,
        "updated_at": rec.updated_at,
    }


@dataclass
class Fold:
    """Resources of one kind that read the same: one row of the folded table."""

    kind: str
    state: str
    in_progress: str
    attention: str
    names: list[str] = field(default_factory=list)
    low: int = 0
    high: int = 0

    def add(self, rec: Resource) -> None:
        if not self.names:
            self.low = self.high = rec.version
        else:
            self.low = min(self.low, rec.version)
            self.high = max(self.high, rec.version)
        self.names.append(rec.name)

    def cells(self) -> list[Any]:
        version = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return [
            f"{self.kind}/{fold_nodes(self.names)}",
            len(self.names),
            self.state,
            version,
            self.in_progress,
            self.attention,
        ]


def fold(records: Iterable[Resource]) -> list[Fold]:
    """Records grouped into folds, in the order of each fold's first member (records
    come in natural order, so the table reads like the unfolded one, compressed)."""
    folds: dict[tuple[str, ...], Fold] = {}
    for rec in records:
        shown = in_progress(rec)
        if rec.attention:
            # Never folded away: each resource needing attention is a row of its own.
            key: tuple[str, ...] = ("attention", rec.id)
        else:
            key = (rec.kind, rec.state, shown)
        f = folds.get(key)
        if f is None:
            f = folds[key] = Fold(rec.kind, rec.state, shown, attention(rec))
        f.add(rec)
    return list(folds.values())


def show_table(records: Sequence[Resource], *, every: bool) -> None:
    """The status table: folded, or with ``every`` one row per resource."""
    if every:
        columns: Sequence[str] = ALL_COLUMNS
        rows: list[list[Any]] = [
            [r.id, r.state, r.version, in_progress(r), attention(r)] for r in records
        ]
        whole: tuple[str, ...] = ("resource", "state", "version")
    else:
        columns = FOLDED_COLUMNS
        rows = [f.cells() for f in fold(records)]
        whole = ("resources", "count", "state", "version")
    if len(rows) > RICH_ROWS:
        output.plain_table(columns, rows)
    else:
        output.table(None, columns, rows, whole=whole)


def json_rows(records: Iterable[Resource]) -> Iterator[dict[str, Any]]:
    return (status_row(r) for r in records)


def json_texts(records: Iterable[Resource]) -> Iterator[str]:
    """Each record's ``status_row`` as ``output.emit_json_array`` encodes it, written out
    field by field, keys in order: building the dictionary and sorting its keys for
    each of 100,000 resources cost more than the rest of the encoding. The strings go
    through the encoder's own quoting, params and attention through the encoder. A
    record holding a value of another type than replay gives it (a version that is not
    an int, a step or an observed status that is not a string: ``quote`` refuses it) is
    encoded from its ``status_row``, so the text is the same either way
    (``tests/engine/cli/test_statusview.py``)."""
    encode = output.item_encoder()
    quote = encode_basestring_ascii  # what the encoder writes a str as (ensure_ascii)
    for rec in records:
        ip = rec.in_progress
        try:
            if type(rec.version) is not int:
                raise TypeError(rec.version)
            progress = (
                "null"
                if ip is None
                else f'{{"source": {quote(ip.source)}, '
                f'"step": {"null" if ip.step is None else quote(ip.step)}, '
                f'"target": {quote(ip.target)}, "trigger": {quote(ip.trigger)}}}'
            )
            attention = "null" if rec.attention is None else encode(rec.attention)
            observed = "null" if rec.observed is None else quote(rec.observed)
            updated = "null" if rec.updated_at is None else quote(rec.updated_at)
            text = (
                f'{{"id": {quote(rec.id)}, "in_progress": {progress}, '
                f'"kind": {quote(rec.kind)}, "name": {quote(rec.name)}, '
                f'"needs_attention": {attention}, "observed": {observed}, '
                f'"params": {encode(rec.params)}, "state": {quote(rec.state)}, '
                f'"updated_at": {updated}, "version": {rec.version}}}'
            )
        except TypeError:  # a value not of the usual type: the encoder decides
            text = encode(status_row(rec))
        yield text
