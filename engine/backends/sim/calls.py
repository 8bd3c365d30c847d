"""Tool calls applied to the world in batches: one transaction for every call that
arrived while the previous batch was committing.

A call's effect must be committed before the call returns (the executor journals its
outcome next, and a crash test then compares the two). With a hundred fan-out threads
each committing alone, the world's lock was held across seven SQLite statements per
call, and each statement gives up the GIL and waits to get it back: the lock convoy
cost more than everything else a step does. So calls go through the journal's
``GroupCommitter``: the leader runs every queued call's tool, in arrival order, on the
states cached in memory, and writes the whole batch with one statement per table.

A ``CallBatch`` is the in-memory plan of one such transaction: host states and call
counts as the batch leaves them (read through from the world's caches, which the caller
keeps valid with ``PRAGMA data_version``), and the world-log rows to insert.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from fleetlog.engine.backends.sim.registry import ToolFn

#: Rows per multi-row INSERT: far below SQLite's 32,766 bound parameters.
_CHUNK = 500


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One tool call waiting for its batch."""

    host: str
    argv: list[str]
    env: Mapping[str, str]
    fn: ToolFn
    #: The call's number when ``begin_call`` counted it (a fault needed it), else None.
    number: int | None
    seed: int


class CallBatch:
    """Host states, call counts and world-log rows of one transaction, planned in memory."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        states: dict[str, str],
        counts: dict[tuple[str, str], int],
    ) -> None:
        self._conn = conn
        self._state_cache = states
        self._count_cache = counts
        self.states: dict[str, str] = {}  # host -> canonical state text this batch wrote
        self.counts: dict[tuple[str, str], int] = {}
        self.logs: list[tuple[str, str, str, str, str]] = []
        self.faults_hit = False  # a crash_after fault's hit count was written

    def state_text(self, host: str) -> str:
        """The host's state as canonical JSON text, as this batch has left it so far."""
        text = self.states.get(host)
        if text is None:
            text = self._state_cache.get(host)
        if text is None:
            row = self._conn.execute("SELECT state FROM hosts WHERE host = ?", (host,)).fetchone()
            text = row[0] if row else "{}"
            self._state_cache[host] = text
        return text

    def hosts(self) -> list[str]:
        rows = self._conn.execute("SELECT host FROM hosts").fetchall()
        return sorted({r[0] for r in rows} | set(self.states))

    def count(self, host: str, tool: str) -> int:
        """Count one more call of ``tool`` on ``host``; its 1-based number."""
        key = (host, tool)
        n = self.counts.get(key)
        if n is None:
            n = self._count_cache.get(key)
        if n is None:
            row = self._conn.execute(
                "SELECT count FROM tool_calls WHERE host = ? AND tool = ?", key
            ).fetchone()
            n = self._count_cache[key] = int(row[0]) if row else 0
        self.counts[key] = n + 1
        return n + 1

    def write(self) -> None:
        """Write the batch: one multi-row statement per table (per ``_CHUNK`` rows)."""
        _insert(
            self._conn,
            "INSERT INTO tool_calls(host, tool, count) VALUES %s "
            "ON CONFLICT(host, tool) DO UPDATE SET count = excluded.count",
            3,
            [(h, t, n) for (h, t), n in self.counts.items()],
        )
        _insert(
            self._conn,
            "INSERT INTO hosts(host, state) VALUES %s "
            "ON CONFLICT(host) DO UPDATE SET state = excluded.state",
            2,
            list(self.states.items()),
        )
        _insert(
            self._conn,
            "INSERT INTO world_log(host, tool, argv, effect, at) VALUES %s",
            5,
            self.logs,
        )

    def adopt(self) -> None:
        """After the commit: the batch's states and counts are the world's now."""
        self._state_cache.update(self.states)
        self._count_cache.update(self.counts)


class BatchReader:
    """``ctx.world`` for one call: other hosts as the batch has left them so far, plus
    what this call wrote to them (``write_host_state``), which joins the batch only if
    the call succeeds."""

    def __init__(self, batch: CallBatch) -> None:
        self._batch = batch
        self.writes: dict[str, str] = {}

    def host_state(self, host: str) -> Mapping[str, Any]:
        text = self.writes.get(host)
        state: Mapping[str, Any] = json.loads(
            text if text is not None else self._batch.state_text(host)
        )
        return state

    def hosts(self) -> list[str]:
        return sorted(set(self._batch.hosts()) | set(self.writes))

    def write_host_state(self, host: str, state: Mapping[str, Any]) -> None:
        self.writes[host] = json.dumps(state, sort_keys=True, separators=(",", ":"))


def _insert(
    conn: sqlite3.Connection, sql: str, width: int, rows: Iterable[tuple[Any, ...]]
) -> None:
    rows = list(rows)
    one = "(" + ", ".join("?" * width) + ")"
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        conn.execute(sql % ", ".join([one] * len(chunk)), [v for row in chunk for v in row])
