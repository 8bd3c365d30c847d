"""Guards evaluate purely: only what ``lookup`` returns, no eval, clear errors."""

from __future__ import annotations

from typing import Any

import pytest

from fleetlog.dsl import GuardError, evaluate, holds
from fleetlog.dsl.guards import names
from tests.dsl.helpers import compile_ok, machine

VALUES: dict[tuple[str, str | None], Any] = {
    ("storage", None): "exascale",
    ("n", None): 3,
    ("has_app_vms", None): False,
    ("state", None): "ready",
    ("target", "state"): "exascale_ready",
    ("nothing", None): None,
}


def lookup(name: str, attr: str | None) -> Any:
    return VALUES[(name, attr)]


@pytest.mark.parametrize(
    ("expr", "value"),
    [
        (("lit", 5), 5),
        (("name", "storage"), "exascale"),
        (("attr", "target", "state"), "exascale_ready"),
        (("not", ("name", "has_app_vms")), True),
        (("and", ("lit", True), ("name", "has_app_vms")), False),
        (("or", ("lit", 0), ("lit", "x")), True),
        (("cmp", "==", ("name", "storage"), ("lit", "exascale")), True),
        (("cmp", "!=", ("name", "n"), ("lit", 3)), False),
        (("cmp", "<", ("name", "n"), ("lit", 4)), True),
        (("cmp", "<=", ("name", "n"), ("lit", 3)), True),
        (("cmp", ">", ("name", "n"), ("lit", 3)), False),
        (("cmp", ">=", ("name", "n"), ("lit", 3.5)), False),
        (("cmp", "in", ("name", "state"), ("list", (("lit", "ready"), ("lit", "busy")))), True),
        (("cmp", "not in", ("name", "state"), ("list", [("lit", "busy")])), True),
        (("cmp", "in", ("lit", "exa"), ("name", "storage")), True),
        (("list", (("name", "n"), ("lit", 1))), [3, 1]),
    ],
)
def test_evaluate(expr: tuple[Any, ...], value: Any) -> None:
    assert evaluate(expr, lookup) == value


def test_and_or_short_circuit_so_unread_names_are_never_looked_up() -> None:
    seen: list[str] = []

    def spy(name: str, attr: str | None) -> Any:
        seen.append(name)
        return False

    assert evaluate(("and", ("name", "a"), ("name", "b")), spy) is False
    assert evaluate(("or", ("lit", True), ("name", "c")), spy) is True
    assert seen == ["a"]


def test_holds_treats_no_guard_as_true() -> None:
    assert holds(None, lookup) is True
    assert holds(("name", "nothing"), lookup) is False


@pytest.mark.parametrize(
    ("expr", "reason"),
    [
        (("cmp", "<", ("name", "nothing"), ("lit", 3)), "cannot compare none < int"),
        (
            ("cmp", "in", ("lit", 1), ("lit", 3)),
            "'in' needs a list or a string on its right, not int",
        ),
        (("cmp", "~", ("lit", 1), ("lit", 3)), "malformed expression"),
        (("call", "os.system", "rm -rf /"), "malformed expression"),
        (("name",), "malformed expression"),
        ("name", "malformed expression"),
    ],
)
def test_bad_expressions_raise_guard_error(expr: Any, reason: str) -> None:
    with pytest.raises(GuardError, match="cannot evaluate guard: ") as info:
        evaluate(expr, lookup)
    assert reason in info.value.reason


def test_names_lists_every_read() -> None:
    expr = (
        "or",
        ("not", ("name", "a")),
        ("cmp", "in", ("attr", "r", "state"), ("list", (("name", "b"), ("lit", 1)))),
    )
    assert list(names(expr)) == [("a", None), ("r", "state"), ("b", None)]


def test_a_compiled_guard_evaluates_like_the_source_reads() -> None:
    spec = compile_ok(
        machine(
            "param storage: enum(exascale, asm) = asm\nparam n: int = 0\nparam target: ref m\n"
            "initial state ready\nstate b\ntransition t : ready -> b {\n"
            '  step s run "x" when storage == "exascale" and not (n > 5) and '
            'target.state in ["exascale_ready"] and state == "ready"\n}'
        )
    )
    guard = spec.transition("t").steps[0].when
    assert guard is not None
    assert evaluate(guard, lookup) is True
    assert evaluate(guard, lambda name, attr: {**VALUES, ("n", None): 6}[(name, attr)]) is False


def test_to_text_renders_a_guard_back_in_dsl_syntax() -> None:
    from fleetlog.dsl import compile_source, to_text

    spec, _ = compile_source(
        'machine m "m" { param a: bool = false param s: str = "x" initial state i state j '
        'transition t : i -> j when not a and (s == "exa" or s in ["b", none]) }'
    )
    assert to_text(spec.transitions[0].when) == '(not a and (s == "exa" or s in ["b", none]))'
