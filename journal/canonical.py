"""Canonical JSON and the event hash: the one definition of what the chain covers.

An event's hash is::

    hash = sha256_hex( prev_hash + canonical_json({column: value for every column but hash}) )

with ``canonical_json(x) = json.dumps(x, sort_keys=True, separators=(",", ":"),
ensure_ascii=False, allow_nan=False)``, UTF-8 encoded, the payload included as a JSON
object (not as text), and ``prev_hash`` of the first event equal to ``GENESIS_HASH``.

Every backend, ``verify``, ``export`` and ``import_`` hash through this module, so the
chain means the same thing everywhere. ``event_hash`` states the definition directly;
``hash_row`` computes the identical value from a stored row whose payload is already
canonical JSON text, without decoding it — that is what makes ``verify`` fast. A test
checks the two agree on arbitrary rows.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from json.encoder import encode_basestring
from typing import Any

from fleetlog.journal.base import Event

# The C encoder behind json.dumps (None on interpreters without _json); not in typeshed.
c_make_encoder: Any = getattr(json.encoder, "c_make_encoder", None)

# Every column except ``hash``, i.e. the keys hashed; their sorted order is the order of
# the keys in the canonical text.
HASHED_COLUMNS: tuple[str, ...] = Event.COLUMNS[:-1]

_sha256 = hashlib.sha256


def _canonical_json_py(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


_default = json.JSONEncoder().default  # raises the same TypeError json.dumps does


def _canonical_json_c(value: Any) -> str:
    # Exactly what json.dumps does for these options (its one-shot C encoder path),
    # minus building a JSONEncoder and its wrapper calls on every event: ~1.1 µs less.
    # A fresh markers dict per call keeps circular-reference detection.
    return "".join(
        c_make_encoder({}, _default, encode_basestring, None, ":", ",", True, False, False)(
            value, 0
        )
    )


canonical_json: Callable[[Any], str] = (
    _canonical_json_py if c_make_encoder is None else _canonical_json_c
)
canonical_json.__doc__ = (
    "The one JSON text for ``value``: sorted keys, no spaces, UTF-8, no NaN "
    "(identical to ``json.dumps(value, sort_keys=True, separators=(',', ':'), "
    "ensure_ascii=False, allow_nan=False)``)."
)


def event_hash(row: Mapping[str, Any]) -> str:
    """The hash of an event given as a mapping of its columns (payload as an object).

    This is the definition; ``hash_row`` is the fast equivalent.
    """
    body = {column: row[column] for column in HASHED_COLUMNS}
    text = str(row["prev_hash"]) + canonical_json(body)
    return _sha256(text.encode("utf-8")).hexdigest()


# The canonical text of a row, keys in sorted order, with the already-canonical payload
# text spliced in. ``encode_basestring`` is the quoting json.dumps itself uses when
# ensure_ascii=False, so the bytes are identical to ``canonical_json(body)``.
_ROW_FMT = (
    '%s{"actor":%s,"causation_id":%s,"command_id":%s,"correlation_id":%s,'
    '"event_id":%s,"host":%s,"payload":%s,"prev_hash":%s,"recorded_at":%s,'
    '"seq":%d,"stream":%s,"type":%s,"version":%d}'
)


def _q(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def hash_row(
    seq: int,
    event_id: str,
    stream: str,
    version: int,
    type: str,
    command_id: str | None,
    causation_id: str | None,
    correlation_id: str | None,
    actor: str,
    host: str,
    recorded_at: str,
    payload_text: str,
    prev_hash: str,
) -> str:
    """``event_hash`` of a row whose payload is given as its canonical JSON text.

    Arguments follow ``Event.COLUMNS`` so a stored row can be passed as ``*row[:13]``.
    A payload text that is not canonical gives a different hash, which ``verify``
    reports: the writer only ever stores canonical text.
    """
    q = encode_basestring
    text = _ROW_FMT % (
        prev_hash,
        q(actor),
        "null" if causation_id is None else q(causation_id),
        "null" if command_id is None else q(command_id),
        "null" if correlation_id is None else q(correlation_id),
        q(event_id),
        q(host),
        payload_text,
        q(prev_hash),
        q(recorded_at),
        seq,
        q(stream),
        q(type),
        version,
    )
    return _sha256(text.encode("utf-8")).hexdigest()
