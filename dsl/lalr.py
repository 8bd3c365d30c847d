"""The one Lark LALR(1) parser of the machine grammar, with lark's own exceptions.

Built once per process (``get_parser`` is cached): building it costs tens of
milliseconds, parsing a machine file well under ten. ``parser`` turns its exceptions
into diagnostics; ``syntax_errors`` studies them (it re-parses variants of the text to
find the friendliest message), so both sit above this module.
"""

from __future__ import annotations

import functools
from pathlib import Path

from lark import Lark, Token, Tree

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


def parse_raw(text: str) -> Tree[Token]:
    """Parse with lark's own exceptions."""
    return get_parser().parse(text)
