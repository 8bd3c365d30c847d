"""Fuzzing: every input either compiles or raises DSLError — never anything else.

At least 5,000 inputs per run under the default ``fuzz-ci`` profile (shipped machines
mutated by character and by token, token soups, generated machines). Set
``FLEETLOG_FUZZ=fuzz-quick`` for a fast local loop or ``fuzz-deep`` to dig.
"""

from __future__ import annotations

import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlog import dsl
from fleetlog.dsl import DSLError
from fleetlog.limits import unsafe_chars

MACHINES = Path(__file__).resolve().parents[2] / "machines"
SHIPPED = [p.read_text() for p in sorted(MACHINES.glob("*.fsm"))]

for name, scale in (("fuzz-quick", 0.1), ("fuzz-ci", 1.0), ("fuzz-deep", 10.0)):
    settings.register_profile(
        name,
        max_examples=int(1000 * scale),
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
PROFILE = settings.get_profile(os.environ.get("FLEETLOG_FUZZ", "fuzz-ci"))


# per-test multipliers of the profile's 1,000: 2 + 1.5 + 1 + 0.5 = 5,000 inputs in CI
def budget(share: float) -> settings:
    return settings(PROFILE, max_examples=max(1, int(PROFILE.max_examples * share)))


TOKENS = [
    "machine",
    "param",
    "secret",
    "initial",
    "state",
    "observe",
    "transition",
    "step",
    "run",
    "call",
    "ensure",
    "each",
    "reversed",
    "list",
    "is",
    "via",
    "wait",
    "until",
    "timeout",
    "every",
    "retry",
    "backoff",
    "check",
    "idempotent",
    "when",
    "lock",
    "skip",
    "if",
    "probe",
    "on",
    "on failure",
    "undo",
    "contains",
    "equals",
    "fails",
    "succeeds",
    "not",
    "and",
    "or",
    "in",
    "true",
    "false",
    "none",
    "self",
    "enum",
    "ref",
    "str",
    "int",
    "{",
    "}",
    "(",
    ")",
    "[",
    "]",
    ":",
    ",",
    ".",
    "=",
    "==",
    "!=",
    "<",
    "<=",
    "->",
    "#",
    "\n",
    '"x {name}"',
    '"{bad"',
    "'q'",
    '"',
    "3",
    "-1",
    "2.5",
    "1e999",
    "500ms",
    "3s",
    "10m",
    "9" * 30,
    "a",
    "b",
    "ready",
    "host",
    "é",
    "\x00",
    "\x1b[31m",
    "\x7f",
    "\u202e",
    "\ufeff",
    "\r\n",
]


def check(text: str) -> None:
    try:
        spec, warnings = dsl.compile_source(text, "fuzz.fsm", {"exascale.setup_wallet"})
    except DSLError as err:
        assert err.diagnostics and all(d.file == "fuzz.fsm" for d in err.diagnostics)
        assert any(d.is_error for d in err.diagnostics)
        # What the operator sees never carries a raw control character.
        assert not unsafe_chars(err.format(), "\t\n")
    else:
        assert spec.definition_hash and all(w.severity == "warning" for w in warnings)


@st.composite
def char_mutations(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(SHIPPED))
    for _ in range(draw(st.integers(1, 5))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        if op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 12)) :]
        else:
            chunk = draw(st.one_of(st.text(max_size=4), st.sampled_from(TOKENS)))
            cut = draw(st.integers(0, 8)) if op == "replace" else 0
            text = text[:at] + chunk + text[at + cut :]
    return text


@st.composite
def token_mutations(draw: st.DrawFn) -> str:
    words = draw(st.sampled_from(SHIPPED)).split(" ")
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(words) - 1))
        op = draw(st.sampled_from(["drop", "swap", "dup", "insert"]))
        if op == "drop":
            del words[at]
        elif op == "swap":
            other = draw(st.integers(0, len(words) - 1))
            words[at], words[other] = words[other], words[at]
        elif op == "dup":
            words.insert(at, words[at])
        else:
            words.insert(at, draw(st.sampled_from(TOKENS)))
    return " ".join(words)


@st.composite
def generated_machines(draw: st.DrawFn) -> str:
    """Grammatical machines with random names, so the checks (not just the parser) run."""
    names = st.sampled_from(["a", "b", "c", "ready", "busy", "redy", "self", "x", "each"])
    states = draw(st.lists(names, min_size=0, max_size=4))
    types = st.sampled_from(
        ["str", "int", "bool", "ref m", "enum(a, b)", "flt", "list[ref m]", "list[ref q]"]
    )
    defaults = st.sampled_from(["", " = 1", " = a", ' = "s"', " = true", " = none", " = []"])
    lines = [f"param {n}: {draw(types)}{draw(defaults)}" for n in draw(st.lists(names, max_size=3))]
    lines += [
        f"{draw(st.sampled_from(['', 'initial ']))}state {s}"
        f"{draw(st.sampled_from(['', ' : error', ' : final', ' : eror']))}"
        for s in states
    ]
    for trigger in draw(st.lists(names, max_size=3)):
        steps = [
            f"step {draw(names)} "
            + draw(
                st.sampled_from(
                    [
                        f'run "cmd {{{draw(names)}}}" on {draw(names)}',
                        f"call exascale.setup_wallet(k={draw(names)})",
                        f"ensure {draw(names)} is {draw(names)} via {draw(names)}",
                        f"ensure each {draw(names)}"
                        + draw(st.sampled_from(["", " reversed"]))
                        + f" is {draw(names)} via {draw(names)}",
                        'wait "p" until contains "x" timeout '
                        + draw(st.sampled_from(["1s", "0s"])),
                    ]
                )
            )
            + draw(
                st.sampled_from(
                    [
                        "",
                        " idempotent",
                        f' when {draw(names)} == "a"',
                        f' undo run "u {{{draw(names)}}}"',
                    ]
                )
            )
            for _ in range(draw(st.integers(0, 3)))
        ]
        failure = draw(st.sampled_from(["", f"on failure -> {draw(names)} undo [{draw(names)}]"]))
        lines.append(
            f"transition {trigger} : {draw(names)} -> {draw(names)} {{ "
            + " ".join(steps)
            + f" {failure} }}"
        )
    return "machine m {\n" + "\n".join(lines) + "\n}"


@budget(2.0)
@given(char_mutations())
def test_character_mutations_of_shipped_machines(text: str) -> None:
    check(text)


@budget(1.5)
@given(token_mutations())
def test_token_mutations_of_shipped_machines(text: str) -> None:
    check(text)


@budget(1.0)
@given(generated_machines())
def test_generated_machines(text: str) -> None:
    check(text)


@budget(0.5)
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map(" ".join))
def test_token_soup(text: str) -> None:
    check(text)


def test_profile_runs_at_least_5000_inputs_in_ci() -> None:
    ci = settings.get_profile("fuzz-ci").max_examples
    assert int(ci * 2.0) + int(ci * 1.5) + int(ci * 1.0) + int(ci * 0.5) >= 5000
