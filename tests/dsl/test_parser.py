"""The grammar and compiler: each construct compiles to the spec value it means."""

from __future__ import annotations

import pytest

from fleetlog.dsl.literals import decode_string, parse_duration, parse_int
from fleetlog.dsl.spec import (
    CallAction,
    EnsureAction,
    ProbeSpec,
    RetrySpec,
    RunAction,
    WaitAction,
)
from tests.dsl.helpers import compile_ok, failure, machine

STATES = "initial state a\nstate b\nstate f : error\nstate gone : final\n"


def one_step(step: str, params: str = "param host: ref m\nparam n: int = 1\n"):
    spec = compile_ok(machine(params + STATES + f"transition t : a -> b {{\n{step}\n}}"))
    return spec.transition("t").steps[0]


def test_header_params_secrets_and_states() -> None:
    spec = compile_ok(
        """# leading comment
machine kvm "KVM host" {
    param host: str
    param egs: bool = false
    param storage: enum(exascale, "asm") = exascale
    param ratio: float = 2
    param cluster: ref cluster = none
    secret pw
    initial state a
    state f : error
    state z : error, final
    transition t : a -> z
}"""
    )
    assert (spec.name, spec.title) == ("kvm", "KVM host")
    host, egs, storage, ratio, cluster = spec.params
    assert (host.type, host.has_default) == ("str", False)
    assert (egs.default, egs.has_default) == (False, True)
    assert (storage.choices, storage.default) == (("exascale", "asm"), "exascale")
    assert ratio.default == 2.0 and isinstance(ratio.default, float)
    assert (cluster.type, cluster.ref_kind, cluster.default, cluster.has_default) == (
        "ref",
        "cluster",
        None,
        True,
    )
    assert [s.name for s in spec.secrets] == ["pw"]
    assert spec.initial == "a"
    assert spec.state("f").error and not spec.state("f").final
    assert spec.state("z").error and spec.state("z").final
    assert spec.transition("t").steps == ()
    assert spec.params[0].pos.line == 3 and spec.params[0].pos.col == 11


def test_title_is_optional_and_newlines_do_not_matter() -> None:
    spec = compile_ok("machine m { initial state a state b transition t : a -> b { } }")
    assert spec.title == "" and spec.transition("t").dest == "b"


def test_run_with_every_option() -> None:
    step = one_step(
        'step s run "echo {host.name}" on host retry 3 every 3s backoff 2 timeout 500ms '
        'idempotent check "probe" contains "ok" when n >= 2'
    )
    assert step.action == RunAction("echo {host.name}", on="host")
    assert step.retry == RetrySpec(3, 3.0, 2.0)
    assert step.timeout == 0.5
    assert step.idempotent
    assert step.check == ProbeSpec("probe", "contains", "ok")
    assert step.when == ("cmp", ">=", ("name", "n"), ("lit", 2))


def test_on_self_means_the_resource_itself() -> None:
    assert one_step('step s run "x" on self').action == RunAction("x", on=None)


@pytest.mark.parametrize(
    ("probe", "expected"),
    [
        ('"c"', ProbeSpec("c")),
        ('"c" fails', ProbeSpec("c", "fails")),
        ('"c" succeeds', ProbeSpec("c", "succeeds")),
        ('"c" equals "v"', ProbeSpec("c", "equals", "v")),
        ('"c" on host contains "v"', ProbeSpec("c", "contains", "v", "host")),
        ('"c" contains "v" on host', ProbeSpec("c", "contains", "v", "host")),
        ('"c" on host', ProbeSpec("c", on="host")),
    ],
)
def test_probe_forms(probe: str, expected: ProbeSpec) -> None:
    assert one_step(f'step s run "x" check {probe}').check == expected


def test_call_with_literal_and_name_arguments() -> None:
    step = one_step(
        'step w call exascale.setup_wallet(a="egs", b=3, c=1.5, d=true, e=none, f=pw, g=host.name)',
        params="param host: ref m\nsecret pw\n",
    )
    assert step.action == CallAction(
        "exascale.setup_wallet",
        (
            ("a", "egs"),
            ("b", 3),
            ("c", 1.5),
            ("d", True),
            ("e", None),
            ("f", ("name", "pw")),
            ("g", ("attr", "host", "name")),
        ),
    )


def test_call_without_arguments() -> None:
    assert one_step("step w call p()").action == CallAction("p", ())


def test_ensure_and_wait() -> None:
    spec = compile_ok(
        machine(
            "param host: ref m\n" + STATES + "transition go : a -> b {\n"
            "  step e ensure host is b via go\n"
            '  step w wait "lsservice" on host until contains "edv online" timeout 5m every 10s\n'
            '  step v wait "x" until fails timeout 1h\n'
            "}"
        )
    )
    e, w, v = spec.transition("go").steps
    assert e.action == EnsureAction("host", "b", "go")
    assert w.action == WaitAction(
        ProbeSpec("lsservice", "contains", "edv online", "host"), 300.0, 10.0
    )
    assert isinstance(v.action, WaitAction)
    assert (v.action.probe.op, v.action.timeout, v.action.every) == ("fails", 3600.0, 5.0)


def test_transition_params_guard_lock_skip_failure_and_undo_actions() -> None:
    spec = compile_ok(
        machine(
            "param host: ref m\n"
            + STATES
            + "transition t(src: ref m, count: int = 2) : a, b -> b when not (count > 3) {\n"
            "  lock self, src, self\n"
            '  skip if probe "check" contains "done"\n'
            '  step one run "x" undo run "undo-x" on src\n'
            "  step two call p(k=1) undo call p.undo(k=src)\n"
            "  on failure -> f undo [one, two]\n"
            "}"
        )
    )
    t = spec.transition("t")
    assert t.sources == ("a", "b") and t.dest == "b"
    assert [(p.name, p.type, p.default) for p in t.params] == [
        ("src", "ref", None),
        ("count", "int", 2),
    ]
    assert t.when == ("not", ("cmp", ">", ("name", "count"), ("lit", 3)))
    assert t.locks == ("self", "src")
    assert t.skip_if == ProbeSpec("check", "contains", "done")
    assert t.steps[0].compensate == RunAction("undo-x", on="src")
    assert t.steps[1].compensate == CallAction("p.undo", (("k", ("name", "src")),))
    assert t.on_failure is not None
    assert (t.on_failure.state, t.on_failure.undo) == ("f", ("one", "two"))


@pytest.mark.parametrize(
    ("guard", "expr"),
    [
        ("a and b or c", ("or", ("and", ("name", "a"), ("name", "b")), ("name", "c"))),
        ("a or b and c", ("or", ("name", "a"), ("and", ("name", "b"), ("name", "c")))),
        ("not a == 1", ("not", ("cmp", "==", ("name", "a"), ("lit", 1)))),
        (
            'a in [1, "x", b]',
            ("cmp", "in", ("name", "a"), ("list", (("lit", 1), ("lit", "x"), ("name", "b")))),
        ),
        ("a not in []", ("cmp", "not in", ("name", "a"), ("list", ()))),
        ("(a or b) and c", ("and", ("or", ("name", "a"), ("name", "b")), ("name", "c"))),
        ("r.state != none", ("cmp", "!=", ("attr", "r", "state"), ("lit", None))),
        ("a < -1.5", ("cmp", "<", ("name", "a"), ("lit", -1.5))),
        ("state == 'x'", ("cmp", "==", ("name", "state"), ("lit", "x"))),
        ("kind == name", ("cmp", "==", ("name", "kind"), ("name", "name"))),
        ("true", ("lit", True)),
    ],
)
def test_guard_expressions(guard: str, expr: tuple[object, ...]) -> None:
    params = "param a: int = 0\nparam b: bool = false\nparam c: bool = false\nparam r: ref m\n"
    assert one_step(f'step s run "x" when {guard}', params).when == expr


def test_keywords_are_only_reserved_where_they_can_appear() -> None:
    spec = compile_ok(
        machine(
            'param timeout: int = 3\nparam step: str = "s"\n'
            + STATES
            + 'transition t : a -> b { step run run "x" when timeout > 1 }'
        )
    )
    assert spec.transition("t").steps[0].name == "run"


def test_observe_with_and_without_command() -> None:
    spec = compile_ok(machine(STATES + 'observe "lsservice" { "on*" -> b "x" -> a }'))
    assert spec.observe is not None
    assert spec.observe.command == "lsservice"
    assert [(r.pattern, r.state, r.is_glob) for r in spec.observe.rules] == [
        ("on*", "b", True),
        ("x", "a", False),
    ]
    assert compile_ok(machine(STATES + "observe { }")).observe.command is None  # type: ignore[union-attr]


def test_strings_single_quoted_and_escapes() -> None:
    step = one_step(r"""step s run 'dbmcli -e "list" \'q\' \n' check "a \"b\" \\ c\d" """)
    assert isinstance(step.action, RunAction)
    assert step.action.command == "dbmcli -e \"list\" 'q' \\n"
    assert step.check == ProbeSpec('a "b" \\ c\\d')


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("3s", 3.0), ("1.5s", 1.5), ("10m", 600.0), ("1h", 3600.0), ("0s", 0.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["3", "3d", "s", "1e9s", "9" * 400 + "s"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_decode_string_keeps_offsets_for_carets() -> None:
    assert decode_string(r'"a\"b"') == ('a"b', [1, 3, 4])


def test_parse_int_refuses_numbers_a_journal_cannot_hold() -> None:
    assert parse_int("-9223372036854775807") == -(2**63 - 1)
    for text in ("9223372036854775808", "9" * 5000):
        with pytest.raises(ValueError, match="too large"):
            parse_int(text)


def test_too_large_numbers_are_errors_not_crashes() -> None:
    err = failure(machine(STATES + f"param n: int = {'9' * 5000}\nparam x: float = 1e999"))
    assert [d.message for d in err.errors] == [
        "number '99999999999999999999...' is too large",
        "number '1e999' is too large",
    ]


def test_deep_guards_are_refused_without_recursion_error() -> None:
    deep = ("not " * 5000 + "n", " and ".join(["n"] * 3000), "n in " + "[" * 3000 + "]" * 3000)
    for guard in deep:
        err = failure(
            machine(
                "param n: int = 1\n"
                + STATES
                + f'transition t : a -> b {{ step s run "x" when {guard} }}'
            )
        )
        assert any("nested more than 64 levels" in d.message for d in err.diagnostics)
