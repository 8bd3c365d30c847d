"""The hash definition, its fast form, ids and timestamps."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from fleetlog.journal.canonical import HASHED_COLUMNS, canonical_json, event_hash, hash_row
from fleetlog.journal.clock import iso_from_us, us_from_iso
from fleetlog.journal.ids import uuid7, uuid7_int

texts = st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=12)
optional = st.none() | texts
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)
rows = st.fixed_dictionaries(
    {
        "seq": st.integers(1, 2**62),
        "event_id": texts,
        "stream": texts,
        "version": st.integers(1, 2**40),
        "type": texts,
        "command_id": optional,
        "causation_id": optional,
        "correlation_id": optional,
        "actor": texts,
        "host": texts,
        "recorded_at": texts,
        "payload": st.dictionaries(texts, json_values, max_size=4),
        "prev_hash": texts,
    }
)


def test_canonical_json_is_sorted_compact_utf8() -> None:
    assert canonical_json({"b": 1, "a": [1, {"d": "é", "c": None}]}) == (
        '{"a":[1,{"c":null,"d":"é"}],"b":1}'
    )


def test_the_hash_definition_spelled_out() -> None:
    row = {c: f"v-{c}" for c in HASHED_COLUMNS}
    row.update(seq=1, version=1, payload={"k": 1}, command_id=None)
    text = row["prev_hash"] + json.dumps(
        row, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    assert event_hash(row) == hashlib.sha256(text.encode()).hexdigest()


@given(row=rows)
def test_fast_hash_equals_the_definition(row: dict[str, Any]) -> None:
    args = [row[c] for c in HASHED_COLUMNS]
    args[HASHED_COLUMNS.index("payload")] = canonical_json(row["payload"])
    assert hash_row(*args) == event_hash(row)


def test_uuid7_layout_and_monotonic_across_threads() -> None:
    found: list[str] = []
    lock = threading.Lock()

    def make() -> None:
        ids = [uuid7() for _ in range(2000)]
        assert ids == sorted(ids)
        with lock:
            found.extend(ids)

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == len(found)
    pattern = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
    assert all(pattern.match(i) for i in found)
    assert uuid7_int() >> 76 & 0xF == 7


@given(us=st.integers(0, 253402300799999999))
def test_timestamps_round_trip(us: int) -> None:
    text = iso_from_us(us)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$", text)
    assert us_from_iso(text) == us


def test_parse_accepts_common_iso_forms() -> None:
    assert us_from_iso("1970-01-01T00:00:01Z") == 1_000_000
    assert us_from_iso("1970-01-01T00:00:01.5+00:00") == 1_500_000
