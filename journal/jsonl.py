"""The export format: one canonical JSON object per line, every column, payload as an
object. Parsing validates the shape of each line so ``import_`` can name the bad line
before anything is written; the chain itself is checked by ``journal.chain``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import IO, Any

from fleetlog import limits
from fleetlog.journal.base import Event, JournalIntegrityError
from fleetlog.journal.canonical import canonical_json
from fleetlog.journal.chain import check_rows

_COLUMNS = Event.COLUMNS
_COLUMN_SET = frozenset(_COLUMNS)
_INT_COLUMNS = frozenset({"seq", "version"})
_OPTIONAL = frozenset({"command_id", "causation_id", "correlation_id"})


def export_line(row: Sequence[Any]) -> str:
    """One line (without newline) for a stored row: a tuple in ``Event.COLUMNS`` order
    whose payload is canonical JSON text."""
    record = dict(zip(_COLUMNS, row, strict=True))
    record["payload"] = json.loads(record["payload"])
    return canonical_json(record)


def _bad(line: int, reason: str, seq: object = None) -> JournalIntegrityError:
    return JournalIntegrityError(
        f"import refused: line {line}: {reason}", line=line, seq=seq, reason=reason
    )


def parse_lines(fp: IO[str]) -> Iterator[tuple[int, tuple[Any, ...]]]:
    """Yield (line number, row tuple with canonical payload text) for each non-blank line,
    raising ``JournalIntegrityError`` naming the line for anything malformed."""
    for lineno, line in enumerate(fp, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as e:
            raise _bad(lineno, f"not valid JSON ({e})") from e
        if not isinstance(record, dict):
            raise _bad(lineno, "not a JSON object")
        keys = set(record)
        if keys != _COLUMN_SET:
            missing = sorted(_COLUMN_SET - keys)
            extra = sorted(keys - _COLUMN_SET)
            raise _bad(lineno, f"columns differ (missing {missing}, unexpected {extra})")
        seq = record["seq"]
        for column in _COLUMNS:
            value = record[column]
            if column in _INT_COLUMNS:
                ok = isinstance(value, int) and not isinstance(value, bool)
            elif column == "payload":
                ok = isinstance(value, dict)
            elif column in _OPTIONAL:
                ok = value is None or isinstance(value, str)
            else:
                ok = isinstance(value, str)
            if not ok:
                raise _bad(lineno, f"column {column} has the wrong type", seq)
        _check_bounds(lineno, record)
        row = tuple(canonical_json(record[c]) if c == "payload" else record[c] for c in _COLUMNS)
        yield lineno, row


def _check_bounds(lineno: int, record: dict[str, Any]) -> None:
    """What fleetlog refuses at every other entry it refuses here too (``fleetlog.limits``,
    exit 2): a seq or version beyond SQLite's INTEGER, a control character in a column
    (a stream, an actor, an id), and in a created resource a name or parameter value
    that ``fleetlog add`` would refuse. Step output in payloads is left as it was."""

    def refuse(problem: str) -> limits.InputError:
        return limits.InputError(f"import refused: line {lineno}: {problem}", line=lineno)

    for column in _INT_COLUMNS:
        if not 0 <= record[column] <= limits.MAX_SEQ:
            raise refuse(f"{column} {record[column]} is out of range (0..{limits.MAX_SEQ})")
    for column in _COLUMNS:
        value = record[column]
        if isinstance(value, str):
            problem = limits.text_problem(value, max_bytes=limits.MAX_ARG_BYTES)
            if problem is not None:
                raise refuse(f"{column} {limits.shown(value, 40)}: {problem}")
    if record["type"] == "resource.created":
        name = record["stream"].partition("/")[2]
        problem = limits.name_problem(name)
        if problem is not None:
            raise refuse(f"resource {limits.shown(record['stream'])}: {problem}")
        params = record["payload"].get("params")
        for key, value in params.items() if isinstance(params, dict) else ():
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, str):
                    problem = limits.text_problem(item, multiline=True)
                    if problem is not None:
                        raise refuse(f"{record['stream']}: parameter {key!r}: {problem}")


def rewindable(fp: IO[str]) -> IO[str]:
    """``fp`` itself when it can seek, else a private temporary copy that can."""
    try:
        if fp.seekable():
            return fp
    except (AttributeError, ValueError):
        pass
    import tempfile

    copy = tempfile.TemporaryFile("w+", encoding="utf-8")
    for line in fp:
        copy.write(line)
    copy.seek(0)
    return copy


def check_file_chain(fp: IO[str]) -> None:
    """Verify an export file as the journal it would become; name the first bad line."""
    line = [0]

    def rows() -> Iterator[tuple[Any, ...]]:
        for lineno, row in parse_lines(fp):
            line[0] = lineno
            yield row

    result = check_rows(rows())
    if not result.ok:
        raise JournalIntegrityError(
            f"import refused: line {line[0]}: seq {result.first_bad_seq}: {result.reason}",
            line=line[0],
            seq=result.first_bad_seq,
            reason=result.reason,
        )
