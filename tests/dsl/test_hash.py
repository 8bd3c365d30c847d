"""The definition hash: same meaning, same hash; formatting and comments do not count."""

from __future__ import annotations

import json
from pathlib import Path

from fleetlog import dsl
from fleetlog.dsl.spec import definition_hash, step_from_data, step_to_data
from tests.dsl.helpers import compile_ok

ROOT = Path(__file__).resolve().parents[2]
VM = (ROOT / "machines" / "vm.fsm").read_text()


def test_same_text_same_hash() -> None:
    a, b = compile_ok(VM), compile_ok(VM)
    assert a.definition_hash == b.definition_hash == definition_hash(a)
    assert len(a.definition_hash) == 64 and a == b


def test_whitespace_and_comments_do_not_change_the_hash() -> None:
    reformatted = "\n".join(
        line.replace("    ", "\t") + "   # a new comment"
        if line.strip() and not line.lstrip().startswith("#") and '"' not in line
        else line
        for line in VM.splitlines()
    )
    reformatted = "# header\n\n" + reformatted.replace(" -> ", "->\n      ")
    before, after = compile_ok(VM), compile_ok(reformatted)
    assert after.source != before.source
    assert after.params[0].pos != before.params[0].pos or after.source != before.source
    assert after.definition_hash == before.definition_hash


def test_filename_does_not_change_the_hash() -> None:
    a, _ = dsl.compile_source(VM, "a.fsm")
    b, _ = dsl.compile_source(VM, "b.fsm")
    assert a.definition_hash == b.definition_hash


def test_any_change_of_meaning_changes_the_hash() -> None:
    base = compile_ok(VM).definition_hash
    for old, new in [
        ("timeout 1h", "timeout 2h"),
        ('"Guest VM"', '"Guest"'),
        ("retry 2 every 10s", "retry 3 every 10s"),
        ("idempotent", ""),
    ]:
        assert old in VM
        assert compile_ok(VM.replace(old, new, 1)).definition_hash != base, old


def test_recorded_steps_round_trip() -> None:
    for name in ("kvm_host", "vm"):
        spec = compile_ok((ROOT / "machines" / f"{name}.fsm").read_text())
        for t in spec.transitions:
            for step in t.steps:
                assert step_from_data(json.loads(json.dumps(step_to_data(step)))) == step
