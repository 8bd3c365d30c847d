"""Human messages for syntax errors, found by example (lark's ``match_examples`` idea).

A raw LALR error says "unexpected token X, expected one of {...}", which is accurate and
unhelpful. Instead, ``EXAMPLES`` lists, for each friendly message, malformed inputs that
fail at the point the message explains. Each example's failure is recorded once per
process as (parser state, token type); a real error is looked up the same way — exact
token type first, then the parser state alone. ``EXACT_EXAMPLES`` match only on the
exact token type, for messages about what was *found* (``=`` instead of ``==``).
``tests/dsl/test_syntax_errors.py`` loops over the tables, so each entry stays true.

Lark's own ``match_examples`` re-parses every example on every error and compares parser
states including stack depth; caching by state number makes the fuzz suite's thousands
of errors cheap and lets examples be shallower than real files.
"""

from __future__ import annotations

import functools
from typing import Any

from lark import Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken
from lark.lexer import PatternStr
from lark.parsers.lalr_analysis import Shift

from fleetlog.dsl.diagnostics import Diagnostic
from fleetlog.dsl.lalr import get_parser, parse_raw

_M = "machine m { "
_T = "machine m { state a transition t : a -> a { "
_S = _T + 'step s run "x" '

EXAMPLES: list[tuple[str, list[str]]] = [
    (
        "expected a name after ','",
        [_M + "state a : error, }", _T + "lock self, } }", _M + "transition t : a, -> b }"],
    ),
    (
        'contains and equals take a quoted string: contains "TEXT"',
        [_S + 'check "y" contains } }', _T + 'step w wait "x" until equals } }'],
    ),
    (
        'a file holds one machine: machine NAME "title" { ... }',
        ["", "state a", "param x: str", "# a comment\n", '"m"'],
    ),
    (
        'the machine needs a name: machine NAME "title" { ... }',
        ["machine", "machine {}", 'machine "t" {}'],
    ),
    ("expected '{' to open the machine's body", ["machine m", 'machine m "t"', "machine m x"]),
    ("only one machine per file", ["machine m { } machine n { }", "machine m { } }"]),
    (
        "expected a declaration: param, secret, state, observe, transition (or '}')",
        [_M + "foo }", _M + 'step s run "x" }', _M + "secret w 3 }"],
    ),
    (
        "a param is declared: param NAME: TYPE [= DEFAULT]",
        [_M + "param }", _M + "param x }", _M + "param x str }", _M + 'param "x": str }'],
    ),
    (
        "expected a type: str, int, float, bool, enum(a, b) or ref KIND",
        [_M + "param x: }", _M + 'param x: "str" }', _M + "param x: 3 }"],
    ),
    (
        "enum choices are names or strings in parentheses: enum(a, b)",
        [
            _M + "param x: enum }",
            _M + "param x: enum() }",
            _M + "param x: enum(a b) }",
            _M + "param x: enum(a,) }",
        ],
    ),
    ("a ref type names a kind: ref KIND", [_M + "param x: ref }", _M + 'param x: ref "vm" }']),
    (
        'a default is a literal: "text", 3, 1.5, true, false, none (or an enum choice)',
        [_M + "param x: str = }", _M + "param x: int = [1] }"],
    ),
    ("a secret needs a name: secret NAME", [_M + "secret }", _M + 'secret "w" }']),
    (
        "a state is declared: [initial] state NAME [: error, final]",
        [
            _M + "state }",
            _M + "initial state }",
            _M + 'state "a" }',
            _M + "initial }",
            _M + "initial a }",
        ],
    ),
    (
        "state flags follow a colon: state NAME : error, final",
        [_M + "state a : }"],
    ),
    (
        'an observe block is: observe ["COMMAND"] { "STATUS" -> STATE ... }',
        [_M + "observe }", _M + 'observe "cmd" }', _M + "observe running }"],
    ),
    (
        'an observe rule is: "STATUS" -> STATE, with the status quoted',
        [
            _M + "observe { running -> a } }",
            _M + 'observe { "x" a } }',
            _M + 'observe { "x" -> } }',
            _M + 'observe { "x" -> "a" } }',
        ],
    ),
    (
        "a transition is: transition NAME[(PARAMS)] : SOURCES -> DEST [when GUARD] { ... }",
        [
            _M + "transition }",
            _M + "transition t }",
            _M + "transition t { } }",
            _M + "transition t : { } }",
            _M + "transition t : a { } }",
            _M + "transition t : a -> { } }",
            _M + "transition t a -> b }",
        ],
    ),
    (
        "transition params are: (NAME: TYPE [= DEFAULT], ...)",
        [
            _M + "transition t( : a -> b }",
            _M + "transition t(x) : a -> b }",
            _M + "transition t(x: str, ) : a -> b }",
        ],
    ),
    (
        "expected step, lock, skip if probe, on failure, or '}' to close the transition",
        [_T + "foo } }", _T + 'run "x" } }', _T + "state b } }"],
    ),
    (
        'a step is: step NAME ACTION [OPTIONS], the action one of run "CMD", '
        'call PLUGIN(...), ensure REF is STATE via TRIGGER, wait "CMD" until ...',
        [
            _T + "step } }",
            _T + "step s } }",
            _T + 'step s "x" } }',
            _T + "step s timeout 3s } }",
            _T + 'step "s" run "x" } }',
        ],
    ),
    (
        'run takes a quoted command: run "CMD" [on REF]',
        [_T + "step s run } }", _T + "step s run ls } }"],
    ),
    (
        "expected a duration with a unit: 500ms, 3s, 10m or 1h",
        [
            _S + "timeout 30 } }",
            _S + "timeout } }",
            _S + "retry 3 every 3 } }",
            _T + 'step w wait "x" until succeeds timeout 5 } }',
            _T + 'step w wait "x" until succeeds timeout 5m every 10 } }',
        ],
    ),
    (
        "retry takes a whole number of extra attempts: retry N [every DURATION] [backoff FACTOR]",
        [_S + "retry } }", _S + "retry x } }", _S + "retry 1.5 } }"],
    ),
    (
        "backoff takes a number: backoff 2",
        [_S + "retry 3 backoff } }", _S + "retry 3 backoff x } }"],
    ),
    (
        "call names a plugin and its arguments: call PLUGIN(NAME=VALUE, ...)",
        [
            _T + "step s call } }",
            _T + "step s call p } }",
            _T + "step s call p(x) } }",
            _T + "step s call p(x=) } }",
            _T + "step s call p(x=1,) } }",
            _T + 'step s call "p"() } }',
            _T + "step s call p. } }",
        ],
    ),
    (
        "ensure is: ensure REF is STATE via TRIGGER",
        [
            _T + "step s ensure } }",
            _T + "step s ensure t } }",
            _T + "step s ensure t is } }",
            _T + "step s ensure t is a } }",
            _T + "step s ensure t is a via } }",
            _T + "step s ensure t a } }",
        ],
    ),
    (
        'wait is: wait "CMD" [on REF] until CONDITION timeout DURATION [every DURATION]',
        [
            _T + "step w wait } }",
            _T + 'step w wait "x" } }',
            _T + 'step w wait "x" until } }',
            _T + 'step w wait "x" until succeeds } }',
        ],
    ),
    (
        'a probe is: "CMD" [on REF] [contains "TEXT" | equals "TEXT" | succeeds | fails]',
        [
            _S + "check } }",
            _T + "skip if probe } }",
            _T + "skip } }",
            _T + "skip if } }",
            _T + 'skip probe "x" } }',
        ],
    ),
    ("on takes a ref param or self: on REF", [_S + "on } }", _S + 'on "h" } }']),
    (
        "on failure is: on failure -> STATE [undo [STEP, ...]]",
        [
            _T + "on failure } }",
            _T + "on failure -> } }",
            _T + "on failure -> a undo } }",
            _T + "on failure -> a undo [ } }",
            _T + "on failure -> a undo [x y] } }",
            _T + "on failure -> a undo x } }",
        ],
    ),
    ("lock takes self and ref params: lock self, REF", [_T + "lock } }"]),
    (
        "expected a guard: a comparison, a name, a literal, not/and/or or ( )",
        [
            _S + "when } }",
            _S + "when x == } }",
            _S + "when not } }",
            _S + "when x and } }",
            _S + "when x or } }",
            _S + "when x in } }",
            _M + "state a transition t : a -> a when { } }",
        ],
    ),
    ("a list is: [ITEM, ...]", [_S + "when x in [1 } }", _S + "when x in [1, } }"]),
    ("a parenthesis is never closed", [_S + "when (x } }", _S + "when (x == 1 } }"]),
]

EXACT_EXAMPLES: list[tuple[str, list[str]]] = [
    (
        "expected a name after ','",
        [_M + "state a : error, }", _T + "lock self, } }", _M + "transition t : a, -> b }"],
    ),
    (
        'contains and equals take a quoted string: contains "TEXT"',
        [_S + 'check "y" contains } }', _T + 'step w wait "x" until equals } }'],
    ),
    ("'=' assigns; compare with '=='", [_S + "when x = 1 } }"]),
    (
        "comparisons do not chain; combine them with 'and'",
        [_S + "when x == 1 == 2 } }", _S + "when x < y < z } }"],
    ),
    ("'not in' is written after the value: x not in [a, b]", [_S + "when x not [1] } }"]),
    ("only one machine per file", ["machine m { } machine n { }"]),
]

_FRIENDLY = {
    "NAME": "a name",
    "STRING": "a quoted string",
    "INT": "a whole number",
    "FLOAT": "a number",
    "DURATION": "a duration (500ms, 3s, 10m, 1h)",
    "CMP": "a comparison (==, !=, <, <=, >, >=)",
    "ON_FAILURE": "'on failure'",
    "EACH": "'each'",
    "REVERSED": "'reversed'",
    "$END": "end of file",
    "<END-OF-FILE>": "end of file",
}

_DISTINCT = 3
"""An accepted set this large is specific enough to identify a place in the grammar; a
smaller one (just ``NAME``, say) is shared by too many places to mean anything."""


def _keys(exc: UnexpectedInput) -> list[object]:
    """Lookup keys, most specific first: (LR state, found token), (accepted set, found
    token), LR state, accepted set. The accepted set is needed because the contextual
    lexer fails before pending reductions, so one place in the grammar can be reached in
    several LR states; the LR state is needed because small accepted sets are ambiguous."""
    state = getattr(exc, "state", None)
    position = getattr(state, "position", None)
    found = exc.token.type if isinstance(exc, UnexpectedToken) else "<char>"
    accepts = _accepts(exc)
    distinct = len(accepts) >= _DISTINCT or accepts == {"$END"}
    keys: list[object] = [("exact", position, found)]
    if distinct:
        keys.append(("exact", accepts, found))
    keys.append(("state", position))
    if distinct:
        keys.append(("state", accepts))
    return keys


@functools.cache
def _table() -> dict[object, str]:
    """Lookup key -> message, built once per process by failing every example."""
    table: dict[object, str] = {}
    for examples, exact_only in ((EXACT_EXAMPLES, True), (EXAMPLES, False)):
        for message, texts in examples:
            for text in texts:
                try:
                    parse_raw(text)
                except UnexpectedInput as exc:
                    for key in _keys(exc):
                        if exact_only and key[0] != "exact":  # type: ignore[index]
                            continue
                        table.setdefault(key, message)
    return table


@functools.cache
def _display() -> dict[str, str]:
    """Terminal name -> how to say it: keywords and punctuation quoted, others described."""
    names = dict(_FRIENDLY)
    for term in get_parser().terminals:
        if isinstance(term.pattern, PatternStr):
            names.setdefault(term.name, f"'{term.pattern.value}'")
    return names


def friendly_message(exc: UnexpectedInput) -> str | None:
    """The table's message for this error, if an example failed the same way."""
    table = _table()
    for key in _keys(exc):
        if key in table:
            return table[key]
    return None


def expected_text(names: frozenset[str]) -> str:
    """``'{' or a name`` — the expected terminals, said the way people write them."""
    display = _display()
    shown = sorted({display.get(n, n.lower()) for n in names})
    if len(shown) <= 1:
        return "".join(shown) or "nothing"
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def found_text(token: Token) -> str:
    if token.type in ("$END", "<END-OF-FILE>"):
        return "end of file"
    value = str(token)
    short = value if len(value) <= 30 else value[:27] + "..."
    if token.type in ("NAME",):
        return f"name '{short}'"
    if token.type == "STRING":
        return f"string {short}"
    if token.type in ("INT", "FLOAT", "DURATION"):
        return f"'{short}'"
    return _display().get(token.type, f"'{short}'")


def diagnose(exc: UnexpectedInput, text: str, filename: str) -> Diagnostic:
    """One diagnostic for a lark error: where it is and, in words, what was expected."""
    if isinstance(exc, UnexpectedToken):
        return _unexpected_token(exc, text, filename)
    if isinstance(exc, UnexpectedCharacters):
        return _unexpected_char(exc, text, filename)
    line, col = _valid(getattr(exc, "line", None), getattr(exc, "column", None), text)
    return Diagnostic(filename, line, col, "unexpected end of file")


def _unexpected_token(exc: UnexpectedToken, text: str, filename: str) -> Diagnostic:
    token = exc.token
    found = found_text(token)
    if token.type == "$END":
        line, col = _end_of(text)
        length = 1
    else:
        line, col = _valid(token.line, token.column, text)
        length = max(1, len(str(token).split("\n", 1)[0]))
    expected = _accepts(exc) or frozenset(exc.expected)
    if token.type == "$END" and "RBRACE" in expected:
        message = "unexpected end of file: a '}' is missing"
    else:
        friendly = friendly_message(exc)
        if friendly:
            message = f"{friendly} (found {found})"
        else:
            message = f"unexpected {found}; expected {expected_text(expected)}"
    return Diagnostic(filename, line, col, message, length=length)


def _unexpected_char(exc: UnexpectedCharacters, text: str, filename: str) -> Diagnostic:
    line, col = _valid(exc.line, exc.column, text)
    at = exc.pos_in_stream
    pos = at if isinstance(at, int) and 0 <= at < len(text) else len(text) - 1
    char = text[pos] if text else ""
    if char in "\"'":
        rest = text[pos + 1 :].split("\n", 1)[0]
        what = "string" if char == '"' else "single-quoted string"
        if char not in rest.replace("\\" + char, ""):
            return Diagnostic(
                filename, line, col, f"unterminated {what}: the closing {char} is missing"
            )
    shown = repr(char)[1:-1] if not char.isprintable() else char
    friendly = friendly_message(exc)
    if friendly:
        message = f"{friendly} (found '{shown}')"
    else:
        expected = _accepts(exc) or frozenset(exc.allowed)
        message = f"unexpected character '{shown}'; expected {expected_text(expected)}"
    return Diagnostic(filename, line, col, message)


def _accepts(exc: UnexpectedInput) -> frozenset[str]:
    """The terminals the parser would really take next.

    Lark's ``expected`` is the lexer's LALR lookahead set, which lists tokens that fail one
    reduction later; its ``accepts`` deep-copies the parse tree once per candidate. This
    replays each candidate on a copy of the state stack alone, which is cheap.
    """
    state = getattr(exc, "state", None)
    stack = getattr(state, "state_stack", None)
    conf = getattr(state, "parse_conf", None)
    if not stack or conf is None:
        return frozenset()
    table = conf.states
    return frozenset(
        t for t in table[stack[-1]] if t.isupper() and _takes(table, stack, t, conf.end_state)
    )


def _takes(table: Any, stack: list[Any], terminal: str, end_state: Any) -> bool:
    states = list(stack)
    for _ in range(10_000):  # reductions are finite; the bound only guards a bad table
        action = table[states[-1]].get(terminal)
        if action is None:
            return False
        kind, arg = action
        if kind is Shift:
            return True
        size = len(arg.expansion)
        if size:
            del states[-size:]
        states.append(table[states[-1]][arg.origin.name][1])
        if terminal == "$END" and states[-1] == end_state:
            return True
    return False


def _end_of(text: str) -> tuple[int, int]:
    """Line and column just after the last non-blank character."""
    stripped = text.rstrip()
    if not stripped:
        return 1, 1
    lines = stripped.split("\n")
    return len(lines), len(lines[-1]) + 1


def _valid(line: int | None, col: int | None, text: str) -> tuple[int, int]:
    if not isinstance(line, int) or line < 1:
        return _end_of(text)
    return line, col if isinstance(col, int) and col >= 1 else 1
