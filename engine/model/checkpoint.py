"""The fleet checkpoint: every resource's record as of one event, kept in the journal so
that a fleet-wide read continues from it instead of folding the whole journal again.

``status`` on a 100,000-resource journal folded 500,000 rows every time (2–3 s), most of
them history nobody changes. A writer that appended many events keeps a checkpoint when
it closes (``replay.keep_checkpoint``); a reader folds only the events after it. It is a
cache, never a source of truth: the journal seals it to the event it folds up to (that
event's hash, and a digest or the chain key's HMAC over the exact text), and it counts
only for the machine definitions it was folded with and for this form of the record
(``key``). Anything else and the reader folds from the start, as before.

Records are kept as lists in field order rather than as objects with keys: decoding
100,000 of them is most of a checkpoint's cost to a reader.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from typing import Any

from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.records import InProgress, Resource
from fleetlog.journal.base import Journal

#: The checkpoint's name in the journal; a new form of it gets a new name.
NAME = "fleet-records/1"
#: A writer keeps a checkpoint once this many events followed the last one: fewer cost a
#: reader less to fold than the checkpoint costs the writer to keep.
EVERY = 20_000
#: ... and twice as many as the journal has streams: reading a record from a checkpoint
#: costs a reader about what folding one event does, so a checkpoint after one event per
#: resource (``inventory load`` of a new fleet) would save nothing and cost the writer a
#: second of a 100,000-resource load. After a fire (six events or more per resource) it
#: saves most of the fold.
PER_STREAM = 2.0

_RESOURCE_FIELDS = tuple(f.name for f in fields(Resource))
_IN_PROGRESS_FIELDS = tuple(f.name for f in fields(InProgress))
_IN_PROGRESS_AT = _RESOURCE_FIELDS.index("in_progress")


def key(registry: KindRegistry) -> str:
    """What a checkpoint's records depend on besides the events: every kind's definition
    (a state renamed changes what a fold accepts) and the record's form."""
    parts = [f"{n}={registry.get(n).spec.definition_hash}" for n in sorted(registry.names)]
    parts.append(",".join(_RESOURCE_FIELDS) + ";" + ",".join(_IN_PROGRESS_FIELDS))
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def encode(records: dict[str, Resource], registry: KindRegistry) -> str:
    rows: list[list[Any]] = []
    for rec in records.values():
        row = [getattr(rec, f) for f in _RESOURCE_FIELDS]
        ip = rec.in_progress
        if ip is not None:
            row[_IN_PROGRESS_AT] = [getattr(ip, f) for f in _IN_PROGRESS_FIELDS]
        rows.append(row)
    return json.dumps({"key": key(registry), "records": rows}, separators=(",", ":"))


def load(
    journal: Journal, registry: KindRegistry, to_seq: int | None = None
) -> tuple[int, dict[str, Resource]] | None:
    """(seq, records) of the journal's checkpoint when it can be continued to ``to_seq``
    (None: to the end) under ``registry``; None otherwise."""
    if to_seq is not None and (journal.checkpoint_seq(NAME) or 0) > to_seq:
        return None  # a replay to an earlier point (audit, replay --at): not read at all
    kept = journal.get_checkpoint(NAME)
    if kept is None or (to_seq is not None and kept[0] > to_seq):
        return None
    seq, text = kept
    try:
        body = json.loads(text)
    except ValueError:
        return None  # sealed, so written by fleetlog: a form this one does not read
    if not isinstance(body, dict) or body.get("key") != key(registry):
        return None
    records: dict[str, Resource] = {}
    try:
        for row in body["records"]:
            ip = row[_IN_PROGRESS_AT]
            if ip is not None:
                row[_IN_PROGRESS_AT] = InProgress(*ip)
            rec = Resource(*row)
            records[rec.id] = rec
    except (KeyError, TypeError, IndexError):
        return None
    return seq, records
