"""The observe block's reconciliation clauses and a step's ``set``: what compiles, what
is refused with its position, and that machines using none of it keep their hash."""

from __future__ import annotations

from fleetlog.dsl.spec import step_from_data, step_to_data, to_data
from tests.dsl.helpers import compile_ok, diag, machine, where

STATES = """
    param cluster: ref m = none
    param job: str = ""
    param size: int = 1
    param flavor: enum(small, large) = small
    initial state defined
    state BUILD
    state up
    state broken : error
    state gone : final
    transition create : defined -> BUILD {
        step s run "add" set job = output matching "J: ([0-9]+)"
    }
    transition destroy : defined, BUILD, up, broken -> gone
"""

FULL = machine(
    STATES
    + """
    observe "probe {name}" on cluster {
        absent if exit 1 contains "not found"
        list "lister" on cluster format table columns "name,status,size" separator "|"
        jobs "jobs" on cluster format table
        owned "snf-"
        job id in job
        building BUILD grace 90s
        absent ok in broken unless action destroy
        compare flavor: size = "be/vcpus", flavor = "x"
        job "OP_CREATE" success -> up
        job "OP_CREATE" error, canceled -> broken
        delete orphans via destroy
        unknown "ERROR_nodedown", "?*"
        "running" -> up
    }
"""
)


def test_every_clause_compiles_into_the_spec() -> None:
    obs = compile_ok(FULL).observe
    assert obs is not None
    assert (obs.command, obs.on) == ("probe {name}", "cluster")
    assert (obs.absent.exit, obs.absent.op, obs.absent.expected) == (1, "contains", "not found")
    assert obs.listing is not None and obs.listing.columns == ("name", "status", "size")
    assert (obs.listing.separator, obs.listing.on, obs.listing.format) == ("|", "cluster", "table")
    assert obs.jobs is not None and obs.jobs.command == "jobs"
    assert (obs.owned, obs.job_attr, obs.building, obs.grace) == ("snf-", "job", ("BUILD",), 90.0)
    assert [(a.states, a.unless) for a in obs.absent_ok] == [(("broken",), ("destroy",))]
    assert obs.compared() == {"size": "be/vcpus", "flavor": "x"}
    assert [(r.operation, r.statuses, r.state) for r in obs.job_rules] == [
        ("OP_CREATE", ("success",), "up"),
        ("OP_CREATE", ("error", "canceled"), "broken"),
    ]
    assert obs.delete_orphans == "destroy" and obs.unknown == ("ERROR_nodedown", "?*")


def test_set_round_trips_through_the_journals_step_record() -> None:
    step = compile_ok(FULL).transition("create").steps[0]
    [st] = step.sets
    assert (st.name, st.output, st.pattern) == ("job", True, "J: ([0-9]+)")
    assert step_from_data(step_to_data(step)) == step


def test_machines_without_the_new_clauses_keep_their_data_form() -> None:
    plain = compile_ok(
        machine(
            'initial state a\nstate b\nobserve { "x" -> b }\n'
            'transition t : a -> b { step s run "x" }'
        )
    )
    assert set(to_data(plain.observe)) == {"command", "rules"}
    assert "sets" not in to_data(plain.transitions[0].steps[0])


def _swap(old: str, new: str) -> str:
    assert old in FULL
    return FULL.replace(old, new)


def test_clauses_that_need_each_other_are_refused() -> None:
    text = _swap('"probe {name}" on cluster {', "{")
    assert "'absent if' judges the observe command" in diag(text, "absent if").message
    text = _swap("job id in job", "")
    assert diag(text, "'building' judges").message.startswith("'building' judges a build")
    text = _swap('jobs "jobs" on cluster format table', "")
    diag(text, "need the backend's jobs")


def test_names_in_clauses_are_checked_where_they_are_written() -> None:
    d = diag(_swap("job id in job", "job id in jbo"), "not a param")
    assert (d.line, d.col) == where(_swap("job id in job", "job id in jbo"), "jbo")
    diag(_swap("building BUILD", "building BILD"), "unknown state 'BILD'")
    diag(_swap("unless action destroy", "unless action destory"), "unknown trigger 'destory'")
    diag(_swap('size = "be/vcpus"', 'sise = "be/vcpus"'), "'sise', which is not a param")
    diag(_swap("success -> up", "sucess -> up"), "unknown job status 'sucess'")
    diag(_swap("delete orphans via destroy", "delete orphans via nuke"), "unknown trigger 'nuke'")
    diag(
        _swap(
            'compare flavor: size = "be/vcpus", flavor = "x"', 'compare flavor: cluster = "pnode"'
        ),
        "compare reads values",
    )


def test_a_listing_command_cannot_read_one_resources_values() -> None:
    text = _swap('list "lister"', 'list "lister {name}"')
    assert "{name}" in diag(text, "listing runs once").message


def test_repeated_single_clauses_are_refused() -> None:
    text = _swap('owned "snf-"', 'owned "snf-"\n owned "x-"')
    diag(text, "an observe block has one 'owned'")


def test_set_targets_and_values_are_typed() -> None:
    step = 'step s run "add" set job = output matching "J: ([0-9]+)"'
    diag(_swap(step, 'step s run "add" set jbo = "1"'), "'jbo', which is not a param")
    diag(_swap(step, 'step s run "add" set size = "x"'), "value of 'size'")
    diag(_swap(step, 'step s run "add" set flavor = "medium"'), "not one of its choices")
    diag(_swap(step, 'step s run "add" set job = output matching "J"'), "no group")
    diag(_swap(step, 'step s run "add" set size = job'), "'job' is a str")
    diag(_swap(step, 'step s run "add" set job = "1" set job = "2"'), "sets 'job' twice")
