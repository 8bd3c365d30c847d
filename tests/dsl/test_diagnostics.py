"""Diagnostic formatting and the DSLError that carries diagnostics."""

from __future__ import annotations

from fleetlog.dsl import Diagnostic, DSLError
from fleetlog.dsl.diagnostics import did_you_mean


def test_format_puts_a_caret_under_the_column_and_keeps_tabs() -> None:
    source = "machine m {\n\tstate\tredy\n}"
    d = Diagnostic("f.fsm", 2, 8, "unknown state 'redy'", hint="did you mean 'ready'?", length=4)
    assert d.format(source) == (
        "f.fsm:2:8: unknown state 'redy'\n"
        "    \tstate\tredy\n"
        "    \t     \t^^^^\n"
        "    did you mean 'ready'?"
    )
    assert str(d) == "f.fsm:2:8: unknown state 'redy'; did you mean 'ready'?"


def test_format_without_a_usable_line() -> None:
    d = Diagnostic("f.fsm", 9, 1, "boom", "warning")
    assert d.format("one line") == "f.fsm:9:1: warning: boom"


def test_caret_never_runs_past_the_line() -> None:
    d = Diagnostic("f", 1, 3, "x", length=50)
    assert d.format("abcd").split("\n")[2] == "      ^^"


def test_did_you_mean() -> None:
    assert did_you_mean("redy", ["ready", "busy"]) == "did you mean 'ready'?"
    assert did_you_mean("zzz", ["ready"]) is None
    assert did_you_mean("ready", ["ready"]) is None


def test_dsl_error_summary_merge_and_format() -> None:
    a = Diagnostic("a.fsm", 3, 1, "first")
    w = Diagnostic("a.fsm", 1, 1, "careful", "warning")
    b = Diagnostic("b.fsm", 2, 2, "second", length=3)
    one = DSLError.from_diagnostics([a, w], source="x\ny\nz")
    two = DSLError.from_diagnostics([b], sources={"b.fsm": "1\n bad"})
    assert str(one) == "a.fsm:3:1: first"
    assert one.diagnostics == (w, a)
    merged = DSLError.merge([one, two])
    assert str(merged) == "a.fsm:3:1: first (and 1 more error)"
    assert merged.format().endswith("b.fsm:2:2: second\n     bad\n     ^^^")
    assert merged.exit_code == 2


def test_dsl_error_with_only_a_message() -> None:
    err = DSLError("pack 'x' cannot be loaded", diagnostics=[])
    assert (str(err), err.format(), err.diagnostics) == (
        "pack 'x' cannot be loaded",
        "pack 'x' cannot be loaded",
        (),
    )
    assert str(DSLError.merge([err, DSLError("other")])) == "pack 'x' cannot be loaded; other"
