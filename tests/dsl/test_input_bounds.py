"""Machine files as text: a UTF-8 byte-order mark is not content, a raw control character
is an error at its line and column, and no diagnostic sends one raw to the terminal."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog import dsl
from fleetlog.dsl import DSLError
from fleetlog.limits import unsafe_chars

MACHINES = Path(__file__).resolve().parents[2] / "machines"
SHIPPED = sorted(MACHINES.glob("*.fsm"))


def failure(text: str) -> DSLError:
    with pytest.raises(DSLError) as err:
        dsl.compile_source(text, "t.fsm")
    return err.value


@pytest.mark.parametrize("path", SHIPPED[:3], ids=lambda p: p.name)
def test_a_byte_order_mark_changes_nothing(path: Path, tmp_path: Path) -> None:
    plain, _ = dsl.compile_file(path)
    copy = tmp_path / path.name
    copy.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    marked, _ = dsl.compile_file(copy)
    assert marked.definition_hash == plain.definition_hash
    assert dsl.compile_source("\ufeff" + path.read_text())[0].definition_hash == (
        plain.definition_hash
    )


def test_crlf_tabs_and_form_feeds_are_whitespace() -> None:
    spec, _ = dsl.compile_source("machine m {\r\n\tinitial state a\f\r\n}\r\n")
    assert spec.initial == "a"


@pytest.mark.parametrize(
    ("text", "line", "col", "what"),
    [
        ("machine m {\x00}", 1, 12, "a NUL character ('\\x00')"),
        ("machine m {\n  initial state a # \x1b[2J\n}", 2, 21, "an escape character ('\\x1b')"),
        ('machine m {\n  initial state a\n  state "\u202eb"\n}', 3, 10, "('\\u202e')"),
        ("machine m {\n\n\x7f\n}", 3, 1, "a DEL character ('\\x7f')"),
        ("\ufeff\ufeffmachine m {}", 1, 1, "found '\\ufeff'"),  # only the first is a mark
    ],
)
def test_a_raw_control_character_is_an_error_at_its_place(
    text: str, line: int, col: int, what: str
) -> None:
    (d,) = failure(text).diagnostics
    assert (d.line, d.col) == (line, col)
    assert d.message == f"{what} cannot be in a machine file" or what in d.message


def test_the_source_line_is_shown_escaped_with_the_caret_under_the_character() -> None:
    shown = failure("machine m {\n  initial state a # \x1b[2J here\n}").format()
    assert not unsafe_chars(shown, "\t\n")
    _, line, caret, _ = shown.split("\n")
    assert line == "      initial state a # \\x1b[2J here"
    assert caret.index("^") == line.index("\\x1b") and caret.count("^") == 4


def test_every_control_character_on_a_few_lines_is_reported_once_per_line() -> None:
    text = "machine m {\n" + "".join(f"  # {chr(c)}\n" for c in range(1, 9)) + "}"
    err = failure(text)
    assert [d.line for d in err.diagnostics] == [2, 3, 4, 5, 6]  # the first five
