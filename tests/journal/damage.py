"""Damaging a journal as someone with write access to its database would: around the
append-only triggers (SQLite: dropped; PostgreSQL: ``session_replication_role``), with
plain SQL, and, for a *rehash*, recomputing every later hash with fleetlog's own
definition so the chain is sound in itself again."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from fleetlog.journal.base import Event
from fleetlog.journal.canonical import hash_row

_COLS = ", ".join("payload::text" if c == "payload" else c for c in Event.COLUMNS)


class Raw:
    """A connection to the journal at ``url`` (a file path or ``postgresql://…``) whose
    writes pass the append-only triggers."""

    def __init__(self, url: str) -> None:
        self.pg = url.startswith("postgresql://")
        self.P = "%s" if self.pg else "?"
        if self.pg:
            import psycopg

            from fleetlog.journal.postgres.conninfo import split_url

            conninfo, schema = split_url(url)
            self.conn: Any = psycopg.connect(
                conninfo, autocommit=True, options=f"-c search_path={schema}"
            )
            self.conn.execute("SET session_replication_role = replica")
        else:
            self.conn = sqlite3.connect(url, isolation_level=None)
            self.conn.execute("DROP TRIGGER IF EXISTS events_no_update")
            self.conn.execute("DROP TRIGGER IF EXISTS events_no_delete")

    def __enter__(self) -> Raw:
        return self

    def __exit__(self, *exc: object) -> None:
        self.conn.close()

    def q(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        cur = self.conn.execute(sql.replace("?", self.P), params)
        return list(cur.fetchall()) if cur.description else []

    def rows(self, from_seq: int = 1) -> list[tuple[Any, ...]]:
        cols = _COLS if self.pg else ", ".join(Event.COLUMNS)
        return [
            tuple(r)
            for r in self.q(f"SELECT {cols} FROM events WHERE seq >= ? ORDER BY seq", (from_seq,))
        ]

    def head(self) -> int:
        return int(self.q("SELECT coalesce(max(seq), 0) FROM events")[0][0])


def edit_payload(raw: Raw, seq: int, old: str, new: str) -> None:
    """Change the payload of the event at ``seq`` and nothing else (its hash stays)."""
    (text,) = raw.q(
        "SELECT payload" + ("::text" if raw.pg else "") + " FROM events WHERE seq = ?", (seq,)
    )[0]
    assert old in text, (old, text)
    cast = "::json" if raw.pg else ""
    raw.q(f"UPDATE events SET payload = ?{cast} WHERE seq = ?", (text.replace(old, new, 1), seq))


def delete_rows(raw: Raw, *seqs: int) -> None:
    for seq in seqs:
        raw.q("DELETE FROM events WHERE seq = ?", (seq,))


def truncate_tail(raw: Raw, keep: int, rewind_verified: bool = False) -> None:
    """Remove every event after ``keep``; ``rewind_verified``: also move the verified
    head back to the new tail (an attacker who knows about it)."""
    raw.q("DELETE FROM events WHERE seq > ?", (keep,))
    if rewind_verified:
        (hash_,) = raw.q("SELECT hash FROM events WHERE seq = ?", (keep,))[0]
        raw.q("UPDATE verified_head SET seq = ?, hash = ?", (keep, hash_))


def rehash(raw: Raw, seq: int, edit: Callable[[str], str], fix_verified: bool = False) -> None:
    """Edit the payload at ``seq`` with ``edit`` and recompute every hash from there on,
    as ``hash_row`` does: the chain verifies again. ``fix_verified``: also give the
    verified head its new hash (an attacker who knows about it, but not the key)."""
    rows = raw.rows(seq)
    prev = rows[0][12]
    new_hashes: dict[int, str] = {}
    cast = "::json" if raw.pg else ""
    for row in rows:
        payload = edit(row[11]) if row[0] == seq else row[11]
        body = (*row[:11], payload, prev)
        prev = hash_row(*body)
        new_hashes[row[0]] = prev
        raw.q(
            f"UPDATE events SET payload = ?{cast}, prev_hash = ?, hash = ? WHERE seq = ?",
            (payload, body[12], prev, row[0]),
        )
    if fix_verified:
        for (at,) in raw.q("SELECT seq FROM verified_head"):
            if at in new_hashes:
                raw.q("UPDATE verified_head SET hash = ?", (new_hashes[at],))


def forge_snapshot(raw: Raw, stream: str, version: int, state_text: str) -> None:
    cast = "::json" if raw.pg else ""
    raw.q("DELETE FROM snapshots WHERE stream = ?", (stream,))
    raw.q(
        f"INSERT INTO snapshots (stream, version, state) VALUES (?, ?, ?{cast})",
        (stream, version, state_text),
    )
