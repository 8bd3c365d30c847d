"""Text -> lark parse tree, with every syntax error turned into a ``DSLError``.

The Lark LALR parser is built once per process (``get_parser`` is cached): building it
costs tens of milliseconds, parsing a machine file well under ten. Lark's exceptions
never leave this module — ``parse`` maps them to a ``Diagnostic`` whose message comes
from ``dsl.syntax_errors``.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Tree
from lark.exceptions import LarkError, UnexpectedInput

from dsl.diagnostics import Diagnostic
from dsl.errors import DSLError

GRAMMAR_PATH = Path(__file__).with_name("grammar.lark")


@functools.cache
def get_parser() -> Lark:
    """The one Lark instance: LALR(1), contextual lexer, no ``[]`` placeholders."""
    return Lark(
        GRAMMAR_PATH.read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        maybe_placeholders=False,
        start="start",
    )


def parse_raw(text: str) -> Tree:
    """Parse with lark's own exceptions (for ``syntax_errors``, which studies them)."""
    return get_parser().parse(text)


def parse(text: str, filename: str = "<string>") -> Tree:
    """The parse tree of one machine definition, or ``DSLError`` with a located message."""
    # Imported here: syntax_errors imports this module for parse_raw.
    from dsl.syntax_errors import diagnose

    try:
        return parse_raw(text)
    except UnexpectedInput as exc:
        diag = diagnose(exc, text, filename)
    except LarkError as exc:  # not raised for a grammar this simple, but never leak one
        diag = Diagnostic(filename, 1, 1, f"cannot parse: {exc}")
    except RecursionError:
        diag = Diagnostic(filename, 1, 1, "input is nested too deeply to parse")
    raise DSLError.from_diagnostics([diag], source=text)
