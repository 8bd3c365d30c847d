"""A ``{placeholder}`` inside shell quotes is refused: values arrive already quoted.

``render`` single-quotes every value. Inside the author's ``'...'`` that quote closes the
author's and the value is read unquoted; inside ``"..."`` its quotes are literal and a
``$(...)`` in it runs. Either way a value becomes a command, so ``machines check``
refuses the placeholder, at its own line and column, in every kind of command.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog.dsl import Diagnostic
from fleetlog.dsl.interpolate import misquoted
from fleetlog.engine.cli import main
from tests.dsl.helpers import assert_points_at, compile_ok, failure, machine, where

HINT = "interpolated values are already shell-quoted; write {value} outside quotes"
STATES = "    initial state ready\n    state busy\n    state failed : error\n"
PARAMS = '    param value: str = ""\n    param out: str = ""\n    param host: ref m = none\n'


def with_step(line: str, extra: str = "") -> str:
    return machine(
        PARAMS + extra + STATES + "    transition go : ready -> busy {\n" + line + "\n    }"
    )


def quoting_errors(text: str) -> list[Diagnostic]:
    return [d for d in failure(text).diagnostics if d.message.startswith("placeholder {")]


def only_quoting_error(text: str) -> Diagnostic:
    found = quoting_errors(text)
    assert len(found) == 1, [d.message for d in failure(text).diagnostics]
    return found[0]


# ---- refused ---------------------------------------------------------------------------
def test_the_example_from_the_report_is_refused_at_the_placeholder() -> None:
    text = with_step("        step s run \"sh -c 'printf %s {value}'\"")
    d = only_quoting_error(text)
    assert d.message == "placeholder {value} is inside single quotes in a command"
    assert d.hint == HINT
    assert d.severity == "error"
    assert_points_at(d, text, "{value}")
    assert d.format(text).endswith("\n    " + HINT)


def test_double_quotes_are_refused_too() -> None:
    # The DSL string escapes its own quote: the column must still be the placeholder's.
    text = with_step('        step s run "echo \\"name: {value}\\" > /tmp/x"')
    d = only_quoting_error(text)
    assert d.message == "placeholder {value} is inside double quotes in a command"
    assert_points_at(d, text, "{value}")


def test_a_single_quoted_dsl_string_is_read_the_same() -> None:
    text = with_step("        step s run 'echo \"{value}\"'")
    d = only_quoting_error(text)
    assert "inside double quotes" in d.message
    assert_points_at(d, text, "{value}")


@pytest.mark.parametrize(
    "line",
    [
        pytest.param("        step s run \"x '{value}'\"", id="run"),
        pytest.param('        step s run "x" undo run "y \'{value}\'"', id="undo-run"),
        pytest.param(
            '        step s run "x" check "y \'{value}\'" contains "ok"', id="check-probe"
        ),
        pytest.param("        step s wait \"y '{value}'\" until succeeds timeout 1m", id="wait"),
        pytest.param("        skip if probe \"y '{value}'\"", id="skip-if-probe"),
        pytest.param("        step s run \"x '{host.name}'\" on host", id="ref-attribute"),
    ],
)
def test_every_transition_command_is_checked(line: str) -> None:
    text = with_step(line)
    d = only_quoting_error(text)
    needle = "{host.name}" if "host.name" in line else "{value}"
    assert d.message == f"placeholder {needle} is inside single quotes in a command"
    assert_points_at(d, text, needle)


def test_the_observe_command_is_checked() -> None:
    text = machine(PARAMS + STATES + '    observe "status-of \'{value}\'" { "up" -> busy }')
    d = only_quoting_error(text)
    assert_points_at(d, text, "{value}")


def test_a_listing_command_is_checked() -> None:
    # A listing cannot read a value at all; the quoting is reported as well, in place.
    text = machine(
        PARAMS
        + STATES
        + '    observe {\n        list "ls \'{value}\'" format table\n        "up" -> busy\n    }'
    )
    d = only_quoting_error(text)
    assert_points_at(d, text, "{value}")


def test_a_backslash_before_a_placeholder_is_refused() -> None:
    text = with_step('        step s run "printf %s \\\\{value}"')
    assert "\\\\{value}" in text  # the DSL escape: the command text is `printf %s \{value}`
    d = only_quoting_error(text)
    assert d.message == "placeholder {value} follows a backslash in a command"
    assert d.hint == (
        "interpolated values are already shell-quoted; write {value} as a word of its own, "
        "without the backslash"
    )
    assert_points_at(d, text, "{value}")


def test_a_dollar_before_a_placeholder_is_refused() -> None:
    # `${value}` would render $'...': ANSI-C quoting rewrites backslashes in the value.
    text = with_step('        step s run "echo ${value}"')
    d = only_quoting_error(text)
    assert d.message == "placeholder {value} follows a '$' in a command"
    assert_points_at(d, text, "{value}")


def test_every_misquoted_placeholder_is_reported_in_one_run() -> None:
    text = with_step(
        "        step a run \"sh -c 'printf %s {value} > {out}'\"\n"
        '        step b run "echo \\"{name}\\""\n'
        '        step c run "printf %s {value} > {out}"'
    )
    found = quoting_errors(text)
    assert [(d.line, d.col) for d in found] == [
        where(text, "{value}"),
        where(text, "{out}"),
        where(text, "{name}"),
    ]


def test_machines_check_refuses_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "q.fsm"
    path.write_text(with_step("        step s run \"sh -c 'printf %s {value}'\""))
    code = main(["machines", "check", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    line, col = where(path.read_text(), "{value}")
    assert f"q.fsm:{line}:{col}: placeholder {{value}} is inside single quotes" in out + err
    assert HINT in out + err


# ---- accepted --------------------------------------------------------------------------
@pytest.mark.parametrize(
    "command",
    [
        "printf '%s' {value} > {out}",
        "true && touch {out}",
        "awk '{{print $1}}' {out}",
        "sh -c 'printf %s \\\"$1\\\"' sh {value}",
        'echo \\"$(cat {out})\\"',
        "echo `cat {out}`",
        "x{value}y",
        "'a'{value}'b'",
        "echo 'it'\\\\''s' {value}",
        'echo \\"a\\\\\\"b\\" {value}',
        "echo \\\\\\\\{value}",
        "(cd /tmp; ls {out})",
        "echo $HOME {value}",
        "echo '{{value}}' {{}}",
    ],
)
def test_placeholders_outside_quotes_are_accepted(command: str) -> None:
    compile_ok(with_step(f'        step s run "{command}"'))


def test_shipped_style_commands_still_compile() -> None:
    compile_ok(
        with_step(
            "        step s run \"gnt-instance list --no-headers --separator='|' -o name {value}\""
        )
    )


# ---- the scanner itself ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("a {v}", []),
        ("'{v}'", [("v", "single quotes")]),
        ('"{v}"', [("v", "double quotes")]),
        ("'a' {v} 'b'", []),
        ('"$(echo {v})"', []),
        ("'$(echo {v})'", [("v", "single quotes")]),
        ('"`echo {v}`"', []),
        ('"a $(echo "{v}") b"', [("v", "double quotes")]),
        ("\\{v}", [("v", "a backslash")]),
        ("\\\\{v}", []),
        ("${v}", [("v", "a '$'")]),
        ("$ {v}", []),
        ("'\\' {v}", []),  # a backslash is literal inside single quotes
        ('"\\"" {v}', []),
        ("{a} '{b}' \"{c}\" {d}", [("b", "single quotes"), ("c", "double quotes")]),
    ],
)
def test_misquoted(template: str, expected: list[tuple[str, str]]) -> None:
    assert [(m.placeholder.name, m.where) for m in misquoted(template)] == expected
