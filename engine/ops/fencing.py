"""Checking, after the fact, that no event was journaled under a superseded lease.

The journal refuses such appends as they happen (``Fence``); this reads the record to
prove it for any journal, including one written by an older fleetlog or imported from
elsewhere. Per resource, the fencing token only grows: ``lock.acquired`` and
``lock.broken`` say which token is current from then on, and an event that records the
token it was made under (``step.started``, ``transition.started``, ``lock.released``)
must carry the current one, never an older one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from fleetlog.engine.model import events as ev
from fleetlog.journal import Journal

_TAKEN = (ev.LOCK_ACQUIRED, ev.LOCK_BROKEN)
_UNDER_A_LEASE = (ev.STEP_STARTED, ev.TRANSITION_STARTED, ev.LOCK_RELEASED)


@dataclass(frozen=True)
class FencingViolation:
    seq: int
    stream: str
    type: str
    token: int
    current: int

    def __str__(self) -> str:
        return (
            f"fencing violation at seq {self.seq}: {self.stream} {self.type} was made under "
            f"token {self.token} after token {self.current} had been taken"
        )


def check(journal: Journal, to_seq: int | None = None) -> list[FencingViolation]:
    """Every event under a superseded token, in journal order."""
    current: dict[str, int] = {}
    found: list[FencingViolation] = []
    rows = journal.read_all_rows(
        to_seq=to_seq,
        types=(*_TAKEN, *_UNDER_A_LEASE),
        columns=("seq", "stream", "type", "payload"),
    )
    for seq, stream, type_, payload in rows:
        token = json.loads(payload).get("token")
        if not isinstance(token, int) or isinstance(token, bool):
            continue
        if type_ in _TAKEN:
            current[stream] = max(current.get(stream, 0), token)
        elif token < current.get(stream, 0):
            found.append(FencingViolation(seq, stream, type_, token, current[stream]))
    return found
