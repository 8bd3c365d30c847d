"""``list[ref KIND]`` params and ``ensure each``: what compiles, what each check says."""

from __future__ import annotations

from fleetlog import dsl
from fleetlog.dsl.spec import EnsureAction, step_from_data, step_to_data
from tests.dsl.helpers import assert_points_at, compile_ok, diag, machine

HOST = """machine kvm_host {
    initial state ready
    state exascale_ready
    transition configure_exascale : ready -> exascale_ready
    transition reset : exascale_ready -> ready
}"""


def cluster(steps: str, params: str = "") -> str:
    return machine(
        "    param hosts: list[ref kvm_host] = []\n"
        "    param leader: ref kvm_host\n"
        f"{params}"
        "    initial state defined\n    state configured\n"
        "    transition deploy : defined -> configured {\n"
        f"{steps}\n"
        "    }\n"
        "    transition undeploy : configured -> defined {\n"
        "        step u ensure each hosts reversed is ready via reset\n"
        "    }",
        name="cluster",
    )


def test_a_list_param_and_ensure_each_compile_and_round_trip() -> None:
    spec = compile_ok(
        cluster("        step all ensure each hosts is exascale_ready via configure_exascale")
    )
    hosts = spec.param("hosts")
    assert (hosts.type, hosts.ref_kind, hosts.default, hosts.has_default) == (
        "refs",
        "kvm_host",
        (),
        True,
    )
    assert hosts.type_label == "list[ref kvm_host]"
    deploy = spec.transition("deploy").steps[0]
    undeploy = spec.transition("undeploy").steps[0]
    assert deploy.action == EnsureAction("hosts", "exascale_ready", "configure_exascale", each=True)
    assert isinstance(undeploy.action, EnsureAction) and undeploy.action.reverse
    # the journal's recorded plan reads back the same
    assert step_from_data(step_to_data(undeploy)) == undeploy
    # a plan recorded before `each` existed still reads (the new fields default)
    old = step_to_data(deploy)
    del old["action"]["each"], old["action"]["reverse"]
    assert step_from_data(old).action == EnsureAction(
        "hosts", "exascale_ready", "configure_exascale"
    )
    host = compile_ok(HOST)
    assert dsl.link_check({"kvm_host": host, "cluster": spec}) == []


def test_ensure_each_is_checked_against_the_listed_kind() -> None:
    spec = compile_ok(cluster("        step all ensure each hosts is exascale_redy via reset"))
    messages = [d.message for d in dsl.link_check({"kvm_host": compile_ok(HOST), "cluster": spec})]
    assert messages == [
        "step 'all' ensures state 'exascale_redy', which kind 'kvm_host' does not have"
    ]


def test_ensure_each_needs_a_list_param() -> None:
    text = cluster("        step one ensure each leader is exascale_ready via configure_exascale")
    d = diag(text, "ensure each needs")
    assert d.message == (
        "ensure each needs a list[ref KIND] param, but 'leader' is a ref kvm_host param"
    )
    assert d.hint == "write 'ensure leader ...' for a single resource"
    assert_points_at(d, text, "leader", nth=1)


def test_plain_ensure_of_a_list_param_suggests_each() -> None:
    text = cluster("        step all ensure hosts is exascale_ready via configure_exascale")
    d = diag(text, "ensure needs")
    assert (
        d.message == "ensure needs self or a ref param, but 'hosts' is a list[ref kvm_host] param"
    )
    assert d.hint == "write 'ensure each hosts ...' to ensure every resource it names"


def test_reversed_goes_only_with_each() -> None:
    text = cluster(
        "        step one ensure leader reversed is exascale_ready via configure_exascale"
    )
    d = diag(text, "'reversed'")
    assert d.message == "'reversed' goes with 'ensure each LIST reversed'"
    assert_points_at(d, text, "reversed")


def test_a_list_param_is_not_interpolated_nor_a_host_nor_a_lock() -> None:
    text = cluster('        step r run "echo {hosts}"')
    d = diag(text, "is a list of resources")
    assert d.message == (
        "'hosts' is a list of resources (list[ref kvm_host]); only a guard can read it, and "
        "only whole (== [], in)"
    )
    assert d.hint == "use 'ensure each hosts ...' to act on each of them"
    text = cluster('        step r run "echo x" on hosts')
    assert diag(text, "on needs").message == (
        "on needs self or a ref param, but 'hosts' is a list[ref kvm_host] param"
    )
    text = cluster('        lock hosts\n        step r run "echo x"')
    assert "lock needs self or a ref param" in diag(text, "lock needs").message
    text = cluster('        step r run "echo {hosts.name}"')
    assert "is a list of resources" in diag(text, "list of resources").message


def test_a_guard_reads_a_list_whole() -> None:
    spec = compile_ok(
        cluster(
            '        step r run "echo x" when hosts != [] and leader in hosts\n'
            "        step s ensure each hosts is exascale_ready via configure_exascale"
        )
    )
    assert spec.transition("deploy").steps[0].when is not None


def test_a_list_default_is_empty_or_none() -> None:
    d = diag(
        cluster('        step r run "x"', params='    param more: list[ref kvm_host] = "h1"\n'),
        "can only default",
    )
    assert d.message == (
        "default of 'more' is the string \"h1\", but a list[ref kvm_host] param can only "
        "default to [] (or none)"
    )
    d = diag(cluster('        step r run "x"', params="    param n: int = []\n"), "is an int")
    assert d.message == "default of 'n' is [], but 'n' is an int"
    spec = compile_ok(
        cluster('        step r run "x"', params="    param more: list[ref kvm_host]\n")
    )
    assert spec.param("more").has_default is False


def test_list_of_a_kind_that_is_not_loaded() -> None:
    text = cluster('        step r run "x"', params="    param cells: list[ref cel] = []\n")
    spec = compile_ok(text)
    (d,) = dsl.link_check({"kvm_host": compile_ok(HOST), "cluster": spec})
    assert d.message == "param 'cells' refers to kind 'cel', which is not loaded"


def test_a_param_cannot_be_called_like_a_word_of_ensure_each() -> None:
    text = cluster('        step r run "x"', params="    param each: list[ref kvm_host] = []\n")
    d = diag(text, "is a word of")
    assert (
        d.message
        == "'each' is a word of 'ensure each LIST reversed'; call the param something else"
    )
    assert_points_at(d, text, "each")
