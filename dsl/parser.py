"""Text -> lark parse tree, with every syntax error turned into a ``DSLError``.

Lark's exceptions never leave this module — ``parse`` maps them to a ``Diagnostic`` whose
message comes from ``dsl.syntax_errors``.
"""

from __future__ import annotations

from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedInput

from fleetlog.dsl.diagnostics import Diagnostic
from fleetlog.dsl.errors import DSLError
from fleetlog.dsl.lalr import GRAMMAR_PATH, get_parser, parse_raw
from fleetlog.dsl.syntax_errors import diagnose

__all__ = ["GRAMMAR_PATH", "get_parser", "parse", "parse_raw"]


def parse(text: str, filename: str = "<string>") -> Tree[Token]:
    """The parse tree of one machine definition, or ``DSLError`` with a located message."""
    try:
        return parse_raw(text)
    except UnexpectedInput as exc:
        diag = diagnose(exc, text, filename)
    except LarkError as exc:  # not raised for a grammar this simple, but never leak one
        diag = Diagnostic(filename, 1, 1, f"cannot parse: {exc}")
    except RecursionError:
        diag = Diagnostic(filename, 1, 1, "input is nested too deeply to parse")
    raise DSLError.from_diagnostics([diag], source=text)
