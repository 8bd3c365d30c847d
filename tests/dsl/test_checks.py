"""Static checks: each has a test asserting its message, its position and its caret."""

from __future__ import annotations

from fleetlog import dsl
from fleetlog.dsl import DSLError
from fleetlog.errors import FleetlogError
from tests.dsl.helpers import PLUGINS, assert_points_at, compile_ok, diag, failure, machine

STATES = "    initial state ready\n    state busy\n    state failed : error\n"


def with_transition(body: str, head: str = "transition go : ready -> busy", extra: str = "") -> str:
    return machine(extra + STATES + f"    {head} {{\n{body}\n    }}")


# ---- states ----------------------------------------------------------------------------
def test_no_initial_state() -> None:
    text = machine("    state alpha\n    state beta")
    d = diag(text, "has no initial state")
    assert d.message == "machine 'm' has no initial state"
    assert d.hint == "write 'initial state alpha' for the state resources start in"
    assert_points_at(d, text, "alpha")


def test_two_initial_states() -> None:
    text = machine("    initial state a\n    initial state b")
    d = diag(text, "second initial state")
    assert d.message == "'b' is a second initial state (the first is 'a' at line 2)"
    assert_points_at(d, text, "b")


def test_no_states_at_all() -> None:
    assert diag(machine(""), "declares no states").message == "machine 'm' declares no states"


def test_unknown_source_state_with_did_you_mean() -> None:
    text = machine(STATES + "    transition go : redy -> busy")
    d = diag(text, "unknown state")
    assert d.message == "unknown state 'redy' in a source of 'go'"
    assert d.hint == "did you mean 'ready'?"
    assert_points_at(d, text, "redy")
    assert d.format(text).endswith("\n    did you mean 'ready'?")


def test_unknown_destination_and_failure_states() -> None:
    text = with_transition('step s run "x"\non failure -> faild', "transition go : ready -> bsy")
    err = failure(text)
    dest, fail = err.errors
    assert (dest.message, dest.hint) == (
        "unknown state 'bsy' in the destination of 'go'",
        "did you mean 'busy'?",
    )
    assert_points_at(dest, text, "bsy")
    assert (fail.message, fail.hint) == (
        "unknown state 'faild' in the failure state of 'go'",
        "did you mean 'failed'?",
    )
    assert_points_at(fail, text, "faild")


def test_observe_rule_naming_an_unknown_state() -> None:
    text = machine(STATES + '    observe { "running" -> bussy }')
    d = diag(text, "unknown state")
    assert (d.message, d.hint) == (
        "unknown state 'bussy' in an observe rule",
        "did you mean 'busy'?",
    )
    assert_points_at(d, text, "bussy")


def test_duplicate_state() -> None:
    text = machine(STATES + "    state busy")
    d = diag(text, "declared twice")
    assert d.message == "state 'busy' is declared twice (first at line 3)"
    assert_points_at(d, text, "busy", nth=1)


def test_unknown_state_flag() -> None:
    text = machine(STATES + "    state gone : finl")
    d = diag(text, "flag")
    assert (d.message, d.hint) == (
        "unknown state flag 'finl'; flags are error, final",
        "did you mean 'final'?",
    )
    assert_points_at(d, text, "finl")


def test_unreachable_state_is_a_warning_returned_not_raised() -> None:
    text = machine(STATES + "    state lost\n    transition go : ready -> busy")
    spec, warnings = dsl.compile_source(text, "t.fsm")
    assert spec.state("lost").name == "lost"
    lost = [w for w in warnings if "lost" in w.message]
    assert len(lost) == 1 and lost[0].severity == "warning"
    assert lost[0].message == "state 'lost' is unreachable from 'ready'"
    assert lost[0].headline().startswith("t.fsm:5:11: warning: ")
    assert_points_at(lost[0], text, "lost")


def test_states_reached_by_failure_or_observation_are_reachable() -> None:
    text = machine(
        STATES + '    state seen\n    observe { "x" -> seen }\n'
        "    transition go : ready -> busy { on failure -> failed }\n"
        "    transition reset : failed -> ready"
    )
    assert dsl.compile_source(text)[1] == []


def test_an_error_state_no_transition_leaves_is_a_warning_with_the_fix() -> None:
    text = machine(STATES + "    transition go : ready -> busy { on failure -> failed }")
    _spec, warnings = dsl.compile_source(text, "t.fsm")
    assert [w.message for w in warnings] == [
        "error state 'failed' has no transition out: a resource that lands there stays "
        "there for good"
    ]
    assert warnings[0].severity == "warning"
    assert warnings[0].hint == (
        "add a way out, e.g. 'transition reset : failed -> ready', "
        "or flag it 'final' if that is meant"
    )
    assert_points_at(warnings[0], text, "failed")
    # A way out, or a final error state, is what the author meant: no warning.
    out = text.replace("\n}", "\n    transition reset : failed -> ready\n}")
    assert dsl.compile_source(out)[1] == []
    final = text.replace("state failed : error", "state failed : error, final")
    assert dsl.compile_source(final)[1] == []


def test_transition_out_of_a_final_state() -> None:
    text = machine(
        STATES + "    state gone : final\n    transition go : ready -> gone\n"
        "    transition back : gone -> ready"
    )
    d = diag(text, "final")
    assert d.message == "transition 'back' leaves final state 'gone'"
    assert_points_at(d, text, "gone", nth=2)


# ---- triggers, steps, undo -------------------------------------------------------------
def test_duplicate_trigger() -> None:
    text = machine(STATES + "    transition go : ready -> busy\n    transition go : busy -> ready")
    d = diag(text, "declared twice")
    assert d.message == "transition 'go' is declared twice (first at line 5)"
    assert_points_at(d, text, "go", nth=1)


def test_duplicate_step_in_one_transition() -> None:
    text = with_transition('        step dup run "a"\n        step dup run "b"')
    d = diag(text, "declared twice")
    assert d.message == "step 'dup' is declared twice in 'go' (first at line 6)"
    assert_points_at(d, text, "dup", nth=1)


def test_same_step_name_in_two_transitions_is_fine() -> None:
    compile_ok(
        machine(
            STATES + '    transition a1 : ready -> busy { step s run "a" }\n'
            '    transition a2 : busy -> ready { step s run "b" }'
        )
    )


def test_unknown_trigger_in_ensure_self() -> None:
    text = with_transition(
        "        step e ensure self is busy via confgure", "transition configure : ready -> busy"
    )
    d = diag(text, "unknown trigger")
    assert (d.message, d.hint) == (
        "unknown trigger 'confgure' in ensure self",
        "did you mean 'configure'?",
    )
    assert_points_at(d, text, "confgure")


def test_undo_naming_a_step_not_in_the_plan() -> None:
    text = with_transition(
        '        step start_bsw run "x" undo run "y"\n'
        "        on failure -> failed undo [start_bws]",
        "transition go : ready -> busy",
    )
    d = diag(text, "undo names")
    assert d.message == "undo names 'start_bws', which is not a step of 'go'"
    assert d.hint == "did you mean 'start_bsw'?"
    assert_points_at(d, text, "start_bws")


def test_undo_of_a_step_of_another_transition_is_an_error() -> None:
    text = machine(
        STATES + '    transition a1 : ready -> busy { step s run "a" }\n'
        "    transition a2 : busy -> ready { on failure -> failed undo [s] }"
    )
    assert diag(text, "undo names").message == "undo names 's', which is not a step of 'a2'"


def test_undo_of_a_step_without_compensation_warns() -> None:
    text = with_transition('        step s run "x"\n        on failure -> failed undo [s]')
    _spec, warnings = dsl.compile_source(text, "t.fsm")
    assert [w.message for w in warnings if "undo" in w.message] == [
        "undo names 's', which has no 'undo run' or 'undo call' to compensate it"
    ]


def test_unknown_plugin_when_a_plugin_set_is_given() -> None:
    text = with_transition("        step w call exascale.setup_walet(a=1)")
    d = diag(text, "unknown plugin", PLUGINS)
    assert (d.message, d.hint) == (
        "unknown plugin 'exascale.setup_walet'",
        "did you mean 'exascale.setup_wallet'?",
    )
    assert_points_at(d, text, "exascale.setup_walet")
    compile_ok(text)  # without a plugin set, names are not checked
    assert diag(text, "unknown plugin", frozenset()).hint == "no step plugins are registered"


# ---- params and defaults ---------------------------------------------------------------
def test_duplicate_params_and_secrets() -> None:
    text = machine("    param host: str\n    secret host\n" + STATES)
    d = diag(text, "declared twice")
    assert d.message == "param or secret 'host' is declared twice (first at line 2)"
    assert_points_at(d, text, "host", nth=1)


def test_duplicate_transition_param_and_hiding_a_machine_param() -> None:
    text = machine(
        "    param n: int\n" + STATES + "    transition go(a: int, a: str, n: int) : ready -> busy"
    )
    err = failure(text)
    assert [d.message for d in err.errors] == [
        "param 'a' is declared twice in 'go' (first at line 6)",
        "param 'n' of 'go' hides the machine's 'n'",
    ]


def test_params_may_not_use_builtin_names() -> None:
    text = machine("    param state: str\n" + STATES)
    d = diag(text, "builtin")
    assert d.message == "'state' is a builtin name; call the param something else"
    assert_points_at(d, text, "state")


def test_unknown_type() -> None:
    text = machine("    param n: integer\n" + STATES)
    d = diag(text, "unknown type")
    assert d.message == "unknown type 'integer'; types are str, int, float, bool, enum, ref"
    assert d.hint == "did you mean 'int'?"
    assert_points_at(d, text, "integer")


def test_default_of_the_wrong_type() -> None:
    text = machine(
        '    param n: int = "three"\n    param b: bool = 1\n'
        "    param f: float = true\n    param s: str = word\n" + STATES
    )
    n, b, f, s = failure(text).errors
    assert n.message == "default of 'n' is the string \"three\", but 'n' is an int"
    assert_points_at(n, text, '"three"')
    assert b.message == "default of 'b' is the int 1, but 'b' is a bool"
    assert f.message == "default of 'f' is the bool true, but 'f' is a float"
    assert (s.message, s.hint) == (
        "default 'word' of str param 's' is a bare word",
        'quote it: "word"',
    )
    assert_points_at(s, text, "word")


def test_enum_default_not_among_choices() -> None:
    text = machine("    param storage: enum(exascale, asm) = exascle\n" + STATES)
    d = diag(text, "choices")
    assert d.message == "default 'exascle' of 'storage' is not one of its choices (exascale, asm)"
    assert d.hint == "did you mean 'exascale'?"
    assert_points_at(d, text, "exascle")


def test_duplicate_enum_choice() -> None:
    text = machine("    param s: enum(a, b, a)\n" + STATES)
    nth = text.count("a", 0, text.index("a)"))
    assert_points_at(diag(text, "listed twice"), text, "a", nth=nth)


# ---- names in templates, guards, arguments ---------------------------------------------
def test_placeholder_naming_nothing() -> None:
    text = with_transition(
        '        step s run "dbmcli -e alter {hots}"', extra="    param host: str\n"
    )
    d = diag(text, "unknown name")
    assert (d.message, d.hint) == ("unknown name 'hots' in a {placeholder}", "did you mean 'host'?")
    assert_points_at(d, text, "hots")


def test_placeholders_may_name_builtins_secrets_and_transition_params() -> None:
    compile_ok(
        with_transition(
            '        step s run "x {name} {kind} {state} {pw} {n} {r.name}"',
            "transition go(n: int, r: ref m) : ready -> busy",
            extra="    secret pw\n",
        )
    )


def test_malformed_placeholder() -> None:
    text = with_transition("        step s run \"awk '{print $1}'\"")
    d = diag(text, "not a param name")
    assert d.message == (
        "'{print $1}' is not a param name or ref.param; write '{{' and '}}' for literal braces"
    )
    assert (d.line, d.col) == (6, text.split("\n")[5].index("{") + 1)


def test_attribute_of_a_param_that_is_not_a_ref() -> None:
    text = with_transition('        step s run "x {host.name}"', extra="    param host: str\n")
    d = diag(text, "only ref params")
    assert d.message == (
        "'host.name' reads an attribute of 'host', which is a str param; "
        "only ref params have attributes"
    )
    assert_points_at(d, text, "host.name")


def test_guard_naming_nothing() -> None:
    text = with_transition(
        '        step s run "x" when not has_app_vm', extra="    param has_app_vms: bool = false\n"
    )
    d = diag(text, "unknown name")
    assert (d.message, d.hint) == (
        "unknown name 'has_app_vm' in a guard",
        "did you mean 'has_app_vms'?",
    )
    assert_points_at(d, text, "has_app_vm", nth=1)


def test_guard_bare_word_that_should_be_a_string() -> None:
    text = with_transition('        step s run "x" when state == failed')
    d = diag(text, "unknown name")
    assert d.hint == 'write "failed" for the string'


def test_transition_guard_names_are_checked() -> None:
    text = machine(STATES + "    transition go : ready -> busy when not eggs")
    assert diag(text, "unknown name").message == "unknown name 'eggs' in a guard"


def test_guard_may_not_read_a_secret() -> None:
    text = with_transition('        step s run "x" when pw == "x"', extra="    secret pw\n")
    d = diag(text, "secret")
    assert d.message == "a guard cannot read secret 'pw'"
    assert_points_at(d, text, "pw", nth=1)


def test_guard_comparing_an_enum_with_a_string_that_is_not_a_choice() -> None:
    text = with_transition(
        '        step s run "x" when storage == "exascle" or storage in ["asm"]',
        extra="    param storage: enum(exascale, asm) = asm\n",
    )
    d = diag(text, "not a choice")
    assert (d.message, d.hint) == (
        "'exascle' is not a choice of 'storage' (exascale, asm)",
        "did you mean 'exascale'?",
    )
    assert_points_at(d, text, '"exascle"')


def test_call_argument_naming_nothing() -> None:
    text = with_transition(
        "        step w call p(password=wallet_pasword)", extra="    secret wallet_password\n"
    )
    d = diag(text, "unknown name")
    assert (d.message, d.hint) == (
        "unknown name 'wallet_pasword' in an argument",
        "did you mean 'wallet_password'?",
    )


# ---- on / lock / ensure ----------------------------------------------------------------
def test_lock_naming_something_that_is_not_a_ref() -> None:
    text = with_transition("        lock self, host", extra="    param host: str\n")
    d = diag(text, "needs self or a ref param")
    assert d.message == "lock needs self or a ref param, but 'host' is a str param"
    assert_points_at(d, text, "host", nth=1)


def test_on_naming_an_unknown_ref() -> None:
    text = with_transition(
        '        step s run "x" on targt', "transition go(target: ref m) : ready -> busy"
    )
    d = diag(text, "unknown ref")
    assert (d.message, d.hint) == (
        "unknown ref 'targt' in on; expected self or a ref param",
        "did you mean 'target'?",
    )
    assert_points_at(d, text, "targt")


def test_ensure_naming_an_unknown_ref() -> None:
    text = with_transition(
        "        step e ensure hots is busy via go", extra="    param host: ref m\n"
    )
    d = diag(text, "unknown ref")
    assert d.message == "unknown ref 'hots' in ensure; expected self or a ref param"
    assert d.hint == "did you mean 'host'?"


def test_ensure_self_checks_state_and_trigger() -> None:
    text = with_transition("        step e ensure self is bussy via go")
    assert diag(text, "unknown state").message == "unknown state 'bussy' in ensure self"


# ---- structure ---------------------------------------------------------------------------
def test_repeated_step_option() -> None:
    text = with_transition('        step s run "x" timeout 3s retry 1 timeout 4s')
    d = diag(text, "more than one")
    assert d.message == "step 's' has more than one 'timeout'"
    assert_points_at(d, text, "4s")


def test_two_on_failure_and_two_skip_and_two_observe() -> None:
    text = machine(
        STATES + "    observe { }\n    observe { }\n"
        '    transition go : ready -> busy { skip if probe "a" skip if probe "b"\n'
        "      on failure -> failed on failure -> failed }"
    )
    messages = [d.message for d in failure(text).errors]
    assert messages == [
        "a machine has one observe block",
        "transition 'go' has two 'skip if'",
        "transition 'go' has two 'on failure'",
    ]


def test_bad_numbers_in_options() -> None:
    text = with_transition('        step s run "x" retry -1 every 1s backoff 0.5 timeout 0s')
    assert [d.message for d in failure(text).errors] == [
        "retry count must be 0 or more",
        "backoff must be at least 1 (the interval never shrinks)",
        "duration '0s' must be more than zero",
    ]


def test_duplicate_call_argument() -> None:
    text = with_transition("        step w call p(a=1, a=2)")
    nth = text.count("a", 0, text.index("a=2"))
    assert_points_at(diag(text, "given twice"), text, "a", nth=nth)


# ---- reporting -----------------------------------------------------------------------------
def test_misspelt_state_and_bad_default_are_reported_together() -> None:
    text = machine('    param retries: int = "3"\n' + STATES + "    transition go : ready -> bsy")
    err = failure(text)
    assert isinstance(err, DSLError) and isinstance(err, FleetlogError)
    assert isinstance(err, ValueError) and err.exit_code == 2
    first, second = err.errors
    assert first.message == "default of 'retries' is the string \"3\", but 'retries' is an int"
    assert second.message == "unknown state 'bsy' in the destination of 'go'"
    assert str(err) == "t.fsm:2:26: " + first.message + " (and 1 more error)"
    report = err.format()
    assert '        param retries: int = "3"\n                             ^^^\n' in report
    assert report.endswith("                                 ^^^\n    did you mean 'busy'?")


def test_errors_come_in_source_order_with_warnings_kept() -> None:
    text = machine(
        STATES + "    state lost\n    transition b : bsy -> busy\n    transition a : redy -> busy"
    )
    err = failure(text)
    # line 3: busy is unreachable; line 4: failed is too, and no transition leaves it
    assert [(d.line, d.severity) for d in err.diagnostics] == [
        (3, "warning"),
        (4, "warning"),
        (4, "warning"),
        (5, "warning"),
        (6, "error"),
        (7, "error"),
    ]
