"""Errors and notices that say what happened and what to type next: a refused guard names
its failed clause and values; a dry run has a header and fills every row; a step in doubt
gives the ``fleetlog resolve`` line to type; resuming under an edited ``.fsm`` says so; a
failure into an error state no transition leaves says how to get out; the simulator
used by default says it ran."""

from __future__ import annotations

import shlex

import pytest

from fleetlog import dsl
from tests.engine.conftest import CRASH_ENV, Fleet

JOB = """
machine job {
    param host: str = "h1"
    param size: int = 3
    param zone: str = "eu"
    secret pw
    initial state new
    state done
    state stuck : error
    transition big : new -> done when zone == "eu" and size > 5 {
        step s1 run "counter s1"
    }
    transition go : new -> done {
        step s1   run "counter s1" idempotent
        step s2   run "counter s2"
        step hand call exascale.setup_wallet(wallet="/w", trust_from=zone, cloud=true,
                                             password=pw)
        step poll wait "escli lsservice" until contains "edv online" timeout 2m every 10s
    }
    transition jam : new -> done {
        step bad run "false"
        on failure -> stuck
    }
}
"""


@pytest.fixture
def jobs(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "job.fsm").write_text(JOB)
    fleet.use_machines(d)
    fleet.monkeypatch.setenv("FLEETLOG_SECRET_PW", "job-pa55")
    assert fleet.cli("add", "job/j1").code == 0
    return fleet


def test_a_refused_guard_names_the_clause_that_failed_and_its_values(jobs: Fleet) -> None:
    res = jobs.cli("fire", "job/j1", "big")
    assert res.code == 2
    assert res.err.strip() == (
        'fleetlog: error: job/j1: big is not allowed: its guard `when (zone == "eu" and '
        "size > 5)` is false (`size > 5` is false: size = 3)"
    )
    assert [e.type for e in jobs.events("job/j1")] == ["resource.created"]


@pytest.mark.parametrize(
    ("guard", "values", "why"),
    [
        (("not", ("name", "egs")), {"egs": True}, "`not egs` is false: egs = true"),
        (
            ("or", ("name", "a"), ("cmp", "==", ("name", "b"), ("lit", "x"))),
            {"a": False, "b": "y"},
            '`(a or b == "x")` is false: a = false, b = "y"',
        ),
        (
            ("and", ("name", "a"), ("cmp", "in", ("name", "c"), ("name", "cs"))),
            {"a": True, "c": "c9", "cs": ["c1", "c2"]},
            '`c in cs` is false: c = "c9", cs = ["c1", "c2"]',
        ),
    ],
)
def test_explain_shows_the_first_false_clause(
    guard: tuple[object, ...], values: dict[str, object], why: str
) -> None:
    assert dsl.explain(guard, lambda name, attr: values[name]) == why


def test_a_dry_run_has_a_header_and_fills_call_and_wait_rows(jobs: Fleet) -> None:
    res = jobs.cli("fire", "job/j1", "go", "--dry-run")
    assert res.code == 0, res.err
    lines = res.out.splitlines()
    assert lines[0] == (
        "job/j1 go: new -> done (dry run: read-only probes only; nothing journaled, "
        "nothing changed)"
    )
    assert lines[1].split() == ["would", "step", "action", "detail"]
    rows = {line.split()[1]: line for line in lines[2:]}
    assert rows["hand"].endswith(
        'exascale.setup_wallet(wallet="/w", trust_from="eu", cloud=true, password=<secret:pw>)'
    )
    assert rows["poll"].endswith(
        'until `escli lsservice` contains "edv online", every 10s, up to 120s'
    )
    assert "job-pa55" not in res.out
    assert [e.type for e in jobs.events("job/j1")] == ["resource.created"]
    data = jobs.cli("fire", "job/j1", "go", "--dry-run", "--json").json()
    assert [s["detail"] != "" for s in data["job/j1"]] == [True] * 4


def test_a_step_in_doubt_gives_the_resolve_line_to_type(jobs: Fleet) -> None:
    res = jobs.sub("fire", "job/j1", "go", **{CRASH_ENV: "5"})  # killed during s2
    assert res.code != 0
    res = jobs.cli("resume", "--all")
    assert res.code == 3
    typed = "fleetlog resolve job/j1 --step s2 --as done --reason 'it took effect'"
    assert typed in res.out
    # The line as printed is a command that works, as typed.
    argv = shlex.split(typed)[1:]
    res = jobs.cli(*argv, "--no-run")
    assert res.code == 0, res.err
    assert "resolved as done" in res.out


def test_resuming_under_an_edited_definition_says_so_once(jobs: Fleet) -> None:
    res = jobs.sub("fire", "job/j1", "go", **{CRASH_ENV: "3"})  # killed during s1
    assert res.code != 0
    fsm = jobs.machines[0] / "job.fsm"
    fsm.write_text(JOB.replace('step s2   run "counter s2"', 'step s2   run "counter s2b"'))
    res = jobs.cli("resume", "--all")
    warnings = [line for line in res.err.splitlines() if "warning" in line]
    assert len(warnings) == 1, res.err
    assert warnings[0].startswith(f"fleetlog: warning: job/j1: {fsm} changed since its go ")
    assert warnings[0].endswith(
        "resuming the plan recorded then (4 steps, to done), not the file's"
    )
    # The recorded plan ran: s2 as it was when the transition started.
    effects = {effect for _host, effect in jobs.effects()}
    assert "counter s2 = 1" in effects
    assert not any("s2b" in effect for effect in effects)
    # Unchanged definitions resume without a word.
    assert jobs.cli("add", "job/j2").code == 0
    assert jobs.sub("fire", "job/j2", "go", **{CRASH_ENV: "3"}).code != 0
    res = jobs.cli("resume", "--all")
    assert "warning" not in res.err


def test_a_failure_into_an_error_state_no_transition_leaves_says_what_to_add(
    jobs: Fleet,
) -> None:
    res = jobs.cli("fire", "job/j1", "jam")
    assert res.code == 1
    assert res.out.strip() == "job/j1 (1): failed at step bad -> stuck: exit 1 on h1"
    fsm = jobs.machines[0] / "job.fsm"
    assert res.err.splitlines()[-1] == (
        f"fleetlog: warning: job/j1 is now in 'stuck', which no transition of job leaves: "
        f"add one to {fsm} (e.g. `transition reset : stuck -> new`), then "
        "`fleetlog fire job/j1 reset`"
    )
    # Said once per kind and state, however many resources land there.
    assert jobs.cli("add", "job/j2").code == 0
    assert jobs.cli("add", "job/j3").code == 0
    res = jobs.cli("fire", "job/j[2-3]", "jam")
    assert res.code == 1
    assert res.err.count("which no transition of job leaves") == 1
    # The hint is for the operator: the journal keeps the step's own error.
    [failed] = [e for e in jobs.events("job/j1") if e.type == "transition.failed"]
    assert "no transition" not in str(failed.payload)
    # And `machines check` said so before anything ran.
    res = jobs.cli("machines", "check", "--strict", str(fsm))
    assert res.code == 2
    assert "warning: error state 'stuck' has no transition out" in res.err


def test_the_simulator_used_by_default_says_so_and_how_to_choose(jobs: Fleet) -> None:
    res = jobs.cli("fire", "job/j1", "jam")
    assert res.err.splitlines()[0] == (
        "fleetlog: note: simulated: the simulated datacenter (backend sim, the default) ran "
        "these steps; no real host was contacted. For real hosts use --backend local "
        "(this machine) or --backend ssh; this journal now stays on sim "
        "(`fleetlog backend set` changes that)"
    )
    # Chosen on purpose, it is only noted.
    assert jobs.cli("add", "job/j2").code == 0
    res = jobs.cli("--backend", "sim", "fire", "job/j2", "jam")
    assert "(the default)" not in res.err
    assert "the simulated datacenter ran these steps" in res.err
