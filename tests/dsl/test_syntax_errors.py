"""Syntax errors: a friendly, located message for every example in the table, and never
a lark exception or traceback for any input."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog import dsl
from fleetlog.dsl import DSLError
from fleetlog.dsl.syntax_errors import EXACT_EXAMPLES, EXAMPLES
from tests.dsl.helpers import failure

CASES = [(message, text) for message, texts in EXAMPLES + EXACT_EXAMPLES for text in texts]


@pytest.mark.parametrize(("message", "text"), CASES)
def test_every_example_gets_its_message(message: str, text: str) -> None:
    err = failure(text)
    (d,) = err.diagnostics
    if d.message.startswith("unexpected end of file"):
        assert message != EXAMPLES[0][0] or text.strip() == ""
        return
    assert d.message.startswith(message + " (found "), d.message


def test_message_says_what_was_found_and_points_at_it() -> None:
    text = (
        "machine m {\n  initial state a\n  transition t : a -> a {\n"
        '    step s run "x" timeout 30\n  }\n}'
    )
    (d,) = failure(text).diagnostics
    assert d.message == "expected a duration with a unit: 500ms, 3s, 10m or 1h (found '30')"
    assert (d.line, d.col, d.length) == (4, 28, 2)
    assert d.format(text).split("\n")[1:] == [
        '        step s run "x" timeout 30',
        "                               ^^",
    ]


def test_equals_instead_of_double_equals() -> None:
    text = 'machine m { initial state a transition t : a -> a { step s run "x" when n = 1 } }'
    (d,) = failure(text).diagnostics
    assert d.message == "'=' assigns; compare with '==' (found '=')"
    assert d.col == text.index(" = ") + 2


def test_unknown_token_falls_back_to_the_expected_set() -> None:
    text = 'machine m { initial state a transition t : a -> a { step s run "x" frobnicate } }'
    (d,) = failure(text).diagnostics
    assert d.message.startswith("unexpected name 'frobnicate'; expected ")
    assert "'retry'" in d.message and "'step'" in d.message and "'}'" in d.message


def test_unterminated_string() -> None:
    text = 'machine m {\n  initial state a\n  observe "escli lsservice {\n}'
    (d,) = failure(text).diagnostics
    assert (d.line, d.col) == (3, 11)
    assert d.message == 'unterminated string: the closing " is missing'


def test_missing_closing_brace_points_after_the_last_token() -> None:
    text = "machine m {\n  initial state a\n\n"
    (d,) = failure(text).diagnostics
    assert d.message == "unexpected end of file: a '}' is missing"
    assert (d.line, d.col) == (2, 18)


def test_stray_character() -> None:
    text = "machine m { initial state a ; }"
    (d,) = failure(text).diagnostics
    assert d.message.startswith("unexpected character ';'; expected ")
    assert d.col == text.index(";") + 1


def test_control_characters_are_shown_escaped() -> None:
    (d,) = failure("machine m {\x00}").diagnostics
    assert "'\\x00'" in d.message


@pytest.mark.parametrize(
    "text",
    [
        "",
        "}",
        "machine",
        "machine m { { } }",
        "\x00\x01",
        "machine m { state a : }" * 3,
        "'''",
        '"',
        "machine m { param x: enum(a, b) = }",
        "{{{{{{{{",
        "é",
    ],
)
def test_bad_input_raises_dsl_error_only(text: str) -> None:
    with pytest.raises(DSLError) as info:
        dsl.compile_source(text, "t.fsm")
    assert info.value.exit_code == 2
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert str(info.value).startswith("t.fsm:")


def test_unreadable_file_is_a_dsl_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.fsm"
    with pytest.raises(DSLError, match="cannot read machine file"):
        dsl.compile_file(missing)
    binary = tmp_path / "bin.fsm"
    binary.write_bytes(b"\xff\xfe\x00machine")
    with pytest.raises(DSLError, match="cannot read machine file"):
        dsl.compile_file(binary)
