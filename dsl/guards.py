"""Evaluate ``when`` guards: a tiny interpreter over the tuple ``Expr`` form of spec.py.

Guards decide whether a step runs, and replay must reach the same decision years later,
so they are data, not code: no ``eval``, no attribute access, no calls. The only inputs
are what ``lookup`` returns for a name (a param, a builtin such as ``state``) or a
dotted ``ref.attr``. A malformed expression or an impossible comparison (``None < 3``)
raises ``GuardError`` rather than a bare ``TypeError``.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterator
from typing import Any

from fleetlog.dsl.errors import GuardError
from fleetlog.dsl.spec import Expr
from fleetlog.errors import FleetlogError

Lookup = Callable[[str, str | None], Any]
"""``lookup(name, None)`` reads a param or builtin; ``lookup(ref, attr)`` reads ``ref.attr``."""

_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}

OPERATORS = frozenset(_COMPARE)


def evaluate(expr: Expr, lookup: Lookup) -> Any:
    """The value of ``expr``; ``not``/``and``/``or`` and comparisons give booleans."""
    match expr:
        case ("lit", value):
            return value
        case ("name", str() as name):
            return lookup(name, None)
        case ("attr", str() as ref, str() as attr):
            return lookup(ref, attr)
        case ("list", tuple() | list() as items):
            return [evaluate(item, lookup) for item in items]
        case ("not", operand):
            return not evaluate(operand, lookup)
        case ("and", left, right):
            return bool(evaluate(left, lookup)) and bool(evaluate(right, lookup))
        case ("or", left, right):
            return bool(evaluate(left, lookup)) or bool(evaluate(right, lookup))
        case ("cmp", str() as op, left, right) if op in _COMPARE:
            return _compare(op, evaluate(left, lookup), evaluate(right, lookup))
    raise GuardError(reason=f"malformed expression {_describe(expr)}")


def holds(expr: Expr | None, lookup: Lookup) -> bool:
    """Whether a guard allows its step; no guard always holds."""
    return True if expr is None else bool(evaluate(expr, lookup))


def names(expr: Expr) -> Iterator[tuple[str, str | None]]:
    """Every ``(name, attr)`` an expression reads, in order (for checks and audits)."""
    match expr:
        case ("name", str() as name):
            yield (name, None)
        case ("attr", str() as ref, str() as attr):
            yield (ref, attr)
        case ("list", tuple() | list() as items):
            for item in items:
                yield from names(item)
        case ("not", operand):
            yield from names(operand)
        case ("and" | "or", left, right) | ("cmp", _, left, right):
            yield from names(left)
            yield from names(right)


def _compare(op: str, left: Any, right: Any) -> bool:
    if op in ("in", "not in") and not isinstance(right, list | tuple | str | frozenset | set):
        raise GuardError(reason=f"'{op}' needs a list or a string on its right, not {_kind(right)}")
    try:
        return bool(_COMPARE[op](left, right))
    except TypeError as exc:
        raise GuardError(reason=f"cannot compare {_kind(left)} {op} {_kind(right)}") from exc


def _kind(value: Any) -> str:
    return "none" if value is None else type(value).__name__


def _describe(expr: Any) -> str:
    text = str(expr)
    return text if len(text) <= 60 else text[:57] + "..."


def to_text(expr: Expr) -> str:
    """A guard back in DSL syntax, for messages ("its guard `when not egs` is false")."""
    op = expr[0]
    if op == "lit":
        value = expr[1]
        if isinstance(value, str):
            return '"' + value.replace('"', '\\"') + '"'
        if value is None or isinstance(value, bool):
            return str(value).lower()
        return str(value)
    if op == "name":
        return str(expr[1])
    if op == "attr":
        return f"{expr[1]}.{expr[2]}"
    if op == "list":
        return "[" + ", ".join(to_text(e) for e in expr[1]) + "]"
    if op == "not":
        return f"not {to_text(expr[1])}"
    if op in ("and", "or"):
        return f"({to_text(expr[1])} {op} {to_text(expr[2])})"
    if op == "cmp":
        return f"{to_text(expr[2])} {expr[1]} {to_text(expr[3])}"
    return _describe(expr)


def explain(expr: Expr, lookup: Lookup) -> str:
    """Why a guard that does not hold is false: the clause that failed and the values it
    read, e.g. ```size > 5` is false: size = 3``. For ``a and b`` the first operand that
    is false is explained; an ``or`` or a ``not`` is shown whole."""
    clause = _false_clause(expr, lookup)
    values = []
    for name, attr in dict.fromkeys(names(clause)):
        label = name if attr is None else f"{name}.{attr}"
        try:
            values.append(f"{label} = {_value_text(lookup(name, attr))}")
        except FleetlogError as exc:  # a dangling ref: say so rather than fail again
            values.append(f"{label} cannot be read ({exc})")
    head = f"`{to_text(clause)}` is false"
    return head + (": " + ", ".join(values) if values else "")


def _false_clause(expr: Expr, lookup: Lookup) -> Expr:
    if expr[0] == "and":
        left = expr[1]
        try:
            left_holds = bool(evaluate(left, lookup))
        except FleetlogError:  # an impossible comparison: shown whole
            return expr
        return _false_clause(left if not left_holds else expr[2], lookup)
    return expr


def _value_text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value_text(v) for v in value) + "]"
    if isinstance(value, str | bool | int | float) or value is None:
        return to_text(("lit", value))
    return repr(value)
