"""The journal's floor under a fan-out: what recording the transitions alone costs.

``bench/scale.py`` runs this beside each ``fire`` (with the same interpreter and install)
to show how much of a node-step is the journal's own work. It copies the events that one
resource's transition journaled in that run (``noop/r1``: command.accepted, lock.acquired,
transition.started, step.started, then step.succeeded, transition.completed,
lock.released) and appends the same events for ``N`` fresh resources to a fresh journal,
the way the engine does at best: the start (four events) and the end (three) of each
transition as two appends with their expected versions, 512 resources' appends per
``append_many`` (one transaction each), the payload objects shared, no event read back.
No engine, no lease rows, no backend, one thread. Whatever a transition costs above
``floor_us_per_node_step`` is the engine's; a goal below it needs fewer or cheaper events,
not a faster engine.

Usage (prints one JSON object)::

    python bench/journal_floor.py RESULT_DB N WORK_DIR
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

from fleetlog.journal import NewEvent
from fleetlog.journal.ids import uuid7
from fleetlog.journal.sqlite import SQLiteJournal

CHUNK = 512


def template(db: str, stream: str = "noop/r1") -> tuple[list[NewEvent], list[NewEvent]]:
    """The transition's events as ``NewEvent``s: (its start, up to the first
    ``step.started``; its end)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute(
            "SELECT type, command_id, causation_id, correlation_id, payload FROM events "
            "WHERE stream = ? AND type != 'resource.created' ORDER BY version",
            (stream,),
        ).fetchall()
    finally:
        conn.close()
    events = [NewEvent(t, json.loads(p), cid, cause, corr) for t, cid, cause, corr, p in rows]
    cut = next(i for i, e in enumerate(events) if e.type == "step.started") + 1
    return events[:cut], events[cut:]


def floor(db: str, n: int, work: Path) -> dict[str, Any]:
    start, end = template(db)
    path = work / "floor.db"
    for suffix in ("", "-wal", "-shm"):
        (work / f"floor.db{suffix}").unlink(missing_ok=True)
    with SQLiteJournal(str(path)) as j:
        streams = [f"noop/f{i}" for i in range(1, n + 1)]
        created = [NewEvent("resource.created", {"kind": "noop"})]
        for k in range(0, n, CHUNK):  # untimed: the resources exist before the fire
            j.append_many([(s, created) for s in streams[k : k + CHUNK]])
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for k in range(0, n, CHUNK):
            chunk = streams[k : k + CHUNK]
            # Each transition has its own command and correlation ids, as in the engine
            # (a command id is unique per command.accepted).
            ids = [(uuid7(), uuid7()) for _ in chunk]
            _append(
                j, [(s, _own(start, *i)) for s, i in zip(chunk, ids, strict=True)], [1] * len(chunk)
            )
            _append(
                j,
                [(s, _own(end, *i)) for s, i in zip(chunk, ids, strict=True)],
                [1 + len(start)] * len(chunk),
            )
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        events = j.head()
    return {
        "floor_us_per_node_step": round(wall / n * 1e6, 1),
        "floor_cpu_us_per_node_step": round(cpu / n * 1e6, 1),
        "floor_events_per_node_step": len(start) + len(end),
        "floor_events": events,
    }


def _own(events: list[NewEvent], command_id: str, correlation_id: str) -> list[NewEvent]:
    return [
        NewEvent(
            e.type,
            e.payload,
            command_id if e.command_id else None,
            None,
            correlation_id if e.correlation_id else None,
        )
        for e in events
    ]


def _append(
    j: SQLiteJournal, appends: list[tuple[str, list[NewEvent]]], versions: list[int]
) -> None:
    try:
        j.append_many(appends, versions, returning=False)
    except TypeError:  # an older install (bench/scale.py --python): no ``returning``
        j.append_many(appends, versions)


if __name__ == "__main__":
    print(json.dumps(floor(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))))
