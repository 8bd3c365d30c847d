"""Turning ``--param k=v`` strings (and inventory values) into typed parameter values.

Every problem is a ``ParamError`` naming the parameter, what was given and what was
expected, so a typo in a 1,000-node command line fails before anything is journaled.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from fleetlog import limits
from fleetlog.dsl.spec import ParamSpec
from fleetlog.engine.model.kinds import did_you_mean
from fleetlog.errors import UsageError


class ParamError(UsageError):
    msg_fmt = "%(where)s: parameter %(param)r: %(problem)s"


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_assignments(items: Iterable[str], where: str) -> dict[str, str]:
    """``["a=1", "b=x=y"]`` -> ``{"a": "1", "b": "x=y"}``. A name given twice with two
    values is refused, naming it, rather than keeping the last one silently (as git and
    kubectl refuse conflicting flags); the same value twice is no conflict."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{where}: bad --param {item!r}: expected NAME=VALUE")
        if key in out and out[key] != value:
            raise ParamError(
                where=where,
                param=key,
                problem=f"given twice, as {_shown(out[key])} and as {_shown(value)}: "
                "give --param once per name",
            )
        out[key] = value
    return out


def coerce(spec: ParamSpec, value: Any, where: str) -> Any:
    """``value`` (a string from the command line, or a TOML/JSON value) as ``spec.type``."""

    def bad(expected: str) -> ParamError:
        return ParamError(
            where=where, param=spec.name, problem=f"expected {expected}, got {_shown(value)}"
        )

    def out_of_bounds(problem: str | None) -> None:
        if problem is not None:
            raise ParamError(where=where, param=spec.name, problem=problem)

    if isinstance(value, str):
        # Every value from outside, whatever its type: no NUL or control character (a
        # value is free text: tabs and line breaks are allowed), at most 64 KiB.
        out_of_bounds(limits.text_problem(value, multiline=True))
    t = spec.type
    if t == "str":
        if isinstance(value, bool | dict | list):
            raise bad("a string")
        return str(value)
    if t == "int":
        if isinstance(value, bool):
            raise bad("an integer")
        if isinstance(value, int):
            number = value
        else:
            try:
                number = int(str(value).strip())
            except ValueError:
                raise bad("an integer") from None
        out_of_bounds(limits.int_problem(number))
        return number
    if t == "float":
        if isinstance(value, bool):
            raise bad("a number")
        try:
            real = float(value)
        except (TypeError, ValueError, OverflowError):
            raise bad("a number") from None
        out_of_bounds(limits.float_problem(real))
        return real
    if t == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise bad("true or false")
    if t == "enum":
        text = str(value)
        if text not in spec.choices:
            raise ParamError(
                where=where,
                param=spec.name,
                problem=f"{limits.shown(text)} is not one of {', '.join(spec.choices)}"
                + did_you_mean(text, spec.choices),
            )
        return text
    if t == "ref":
        text = str(value)
        kind = spec.ref_kind or ""
        if "/" not in text:
            text = f"{kind}/{text}"
        ref_kind, _, name = text.partition("/")
        if ref_kind != kind or not name or "/" in name:
            raise bad(f"a {kind} resource (NAME or {kind}/NAME)")
        out_of_bounds(limits.name_problem(name))
        return text
    if t == "refs":
        return _refs(spec, value, bad)
    raise bad(f"a value of type {t}")


def _shown(value: Any) -> str:
    """A given value for a message: quoted, control characters escaped, cut short."""
    if isinstance(value, str):
        return limits.shown(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _refs(spec: ParamSpec, value: Any, bad: Any) -> list[str]:
    """A ``list[ref KIND]`` value: a list of names or ids, or one string of them
    separated by commas, each piece a name or a node set (``cell[1-3],cell7``). Order is
    kept as written (it is the order ``ensure each`` follows); a name listed twice is an
    error."""
    kind = spec.ref_kind or ""
    expected = f"{kind} resources (a list, or NAME,NAME or a node set such as {kind}[1-3])"
    if value is None:
        return []
    if isinstance(value, str):
        try:
            names = expand_names(value)
        except limits.InputError:
            raise  # a node set over the cap says so itself
        except ValueError:
            raise bad(expected) from None
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        names = list(value)
    else:
        raise bad(expected)
    out: list[str] = []
    seen: set[str] = set()
    for name in names:
        rid = name if "/" in name else f"{kind}/{name}"
        ref_kind, _, bare = rid.partition("/")
        if ref_kind != kind or not bare or "/" in bare:
            raise bad(expected)
        problem = limits.name_problem(bare)
        if problem is not None:
            raise bad(f"{expected}: {problem}")
        if rid in seen:
            raise bad(f"each resource once ({rid} is listed twice)")
        seen.add(rid)
        out.append(rid)
    return out


def expand_names(text: str) -> list[str]:
    """``"cell[1-3],c7"`` -> ``["cell1", "cell2", "cell3", "c7"]``, or ``ValueError``.
    Split at the commas outside brackets and expand each piece on its own: a whole
    NodeSet would sort the pieces, and the order written is the order wanted. The whole
    is counted before any piece is expanded (``limits.NodeSetTooLarge``)."""
    from ClusterShell.NodeSet import NodeSetParseError

    limits.check_nodeset(text)
    pieces: list[str] = []
    depth, start = 0, 0
    for i, c in enumerate(text):
        depth += (c == "[") - (c == "]")
        if c == "," and depth == 0:
            pieces.append(text[start:i])
            start = i + 1
    pieces.append(text[start:])
    names: list[str] = []
    for piece in (p.strip() for p in pieces):
        if not piece:
            continue
        kind, slash, rest = piece.rpartition("/")
        try:
            expanded = limits.expand_nodeset(rest) if "[" in rest else [rest]
        except limits.InputError:
            raise
        except (NodeSetParseError, ValueError) as exc:
            raise ValueError(f"bad node set {piece!r}: {exc}") from None
        names.extend(f"{kind}/{n}" if slash else n for n in expanded)
    return names


def resolve(
    specs: Iterable[ParamSpec], given: Mapping[str, Any], where: str, *, partial: bool = False
) -> dict[str, Any]:
    """Typed values for every declared param: given, else default; unknown or missing
    names are errors (``partial`` allows missing ones)."""
    by_name = {p.name: p for p in specs}
    for key in given:
        if key not in by_name:
            raise ParamError(
                where=where,
                param=key,
                problem="no such parameter"
                + (did_you_mean(key, by_name) or f" (parameters: {', '.join(by_name) or 'none'})"),
            )
    out: dict[str, Any] = {}
    for name, spec in by_name.items():
        if name in given:
            out[name] = coerce(spec, given[name], where)
        elif spec.has_default:
            out[name] = coerce(spec, spec.default, where) if spec.type == "refs" else spec.default
        elif not partial:
            raise ParamError(where=where, param=name, problem="is required and has no default")
    return out
