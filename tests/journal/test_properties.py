"""Property tests of the append/read invariants, run against every backend."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlog.journal import ConcurrencyConflict, NewEvent
from tests.journal.conftest import JournalFactory

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
payloads = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
new_events = st.builds(
    NewEvent,
    type=st.sampled_from(["step.started", "step.succeeded", "backend.observed"]),
    payload=payloads,
)
# (stream, events, use a stale expected_version?)
operations = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "host/ü"]),
        st.lists(new_events, min_size=1, max_size=3),
        st.booleans(),
    ),
    min_size=1,
    max_size=12,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_append_read_invariants(journal_factory: JournalFactory, ops: list[Any]) -> None:
    journal = journal_factory()
    model: dict[str, list[dict[str, Any]]] = {}
    appended = []
    for stream, events, stale in ops:
        current = len(model.get(stream, []))
        if stale:
            try:
                journal.append(stream, events, expected_version=current + 1)
            except ConcurrencyConflict as e:
                assert (e.expected, e.actual) == (current + 1, current)
            else:
                raise AssertionError("a stale expected_version was accepted")
            continue
        got = journal.append(stream, events, expected_version=current)
        assert [e.version for e in got] == list(range(current + 1, current + 1 + len(events)))
        assert [e.payload for e in got] == [e.payload for e in events]
        model.setdefault(stream, []).extend(e.payload for e in events)
        appended.extend(got)

    everything = list(journal.read_all())
    assert everything == appended
    assert [e.seq for e in everything] == list(range(1, len(appended) + 1))
    assert journal.head() == len(appended)
    assert journal.streams() == sorted(model)
    for stream, payloads_ in model.items():
        read = journal.read_stream(stream)
        assert [e.payload for e in read] == payloads_
        assert journal.stream_version(stream) == len(payloads_)
    report = journal.verify()
    assert report.ok and report.events == len(appended)
