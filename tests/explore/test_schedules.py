"""Fault schedules (engine/ops/schedules.py): drawn from a seed, shrunk, kept as JSON."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlog.engine.ops.schedules import (
    FAULT_KINDS,
    Call,
    Flow,
    Profile,
    Schedule,
    ScheduleError,
    from_json,
    generate,
    parse_kinds,
    shrink,
    to_json,
)

PROFILE = Profile(
    appends=20,
    calls=(
        Call("node3", "escli lsuser", "escli lsuser", "escli", False),
        Call("node3", "escli mkuser kvmnode", "escli mkuser kvmnode", "escli", True),
        Call(
            "node4", "vm_maker --clone a --name b", "vm_maker --clone a --name b", "vm_maker", True
        ),
    ),
)
FLOW = Flow("clone", "vm/b", {"source": "a"})


@given(
    st.integers(min_value=0, max_value=2**31),
    st.sets(st.sampled_from(list(FAULT_KINDS)), min_size=1),
)
def test_a_seed_gives_one_schedule_which_a_file_keeps(seed: int, kinds: set[str]) -> None:
    chosen = tuple(sorted(kinds))
    schedule = generate(PROFILE, seed, chosen)
    assert schedule == generate(PROFILE, seed, chosen)
    assert 1 <= len(schedule.faults) <= 3
    assert {f.kind for f in schedule.faults} <= kinds
    assert all(1 <= f.at <= max(PROFILE.appends, len(PROFILE.calls)) for f in schedule.faults)
    assert from_json(to_json(FLOW, schedule), "t") == (FLOW, schedule)


@given(st.integers(min_value=0, max_value=2**31))
def test_shrinking_keeps_only_what_fails(seed: int) -> None:
    schedule = generate(PROFILE, seed, tuple(FAULT_KINDS))
    culprit = schedule.faults[-1]

    def fails(s: Schedule) -> bool:
        return any(f.kind == culprit.kind and f.at == culprit.at for f in s.faults)

    shrunk = shrink(schedule, fails)
    assert fails(shrunk) and len(shrunk.faults) == 1
    assert shrunk.faults[0].kind == culprit.kind


def test_unknown_kinds_are_refused_by_name() -> None:
    assert parse_kinds(None) == tuple(FAULT_KINDS)
    assert parse_kinds("crash, drop") == ("crash", "drop")
    with pytest.raises(ScheduleError, match="meteor"):
        parse_kinds("crash,meteor")
