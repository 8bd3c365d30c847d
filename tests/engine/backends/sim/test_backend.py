"""SimBackend dispatch, tool registration, determinism, timeouts."""

from __future__ import annotations

import shlex
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlog.engine.backends import Backend, BackendError, CommandTimeout
from fleetlog.engine.backends.sim import (
    SimBackend,
    ToolContext,
    ToolFailure,
    ToolResult,
    sim_observer,
    sim_tool,
    tool_names,
)


@sim_tool("test_setpair")
def setpair(ctx: ToolContext) -> tuple[int, str, str]:
    """A tool defined by a test module: sets a value, then fails if asked to."""
    key, value, *rest = ctx.args
    ctx.state.setdefault("pairs", {})[key] = value
    ctx.log(f"{key}={value}")
    if rest == ["--then-fail"]:
        raise ToolFailure("changed my mind", exit_code=4)
    return 0, f"{ctx.host}:{key}={value}\n", ""


@sim_tool("test_peek")
def peek(ctx: ToolContext) -> ToolResult:
    """Reads another host's state through ctx.world (read-only)."""
    other = ctx.world.host_state(ctx.args[0])
    return ToolResult(0, f"{dict(other.get('pairs', {}))}\n")


@sim_tool("test_env")
def show_env(ctx: ToolContext) -> ToolResult:
    return ToolResult(0, ctx.env.get("GREETING", "-"))


@sim_observer("pair")
def observe_pairs(host: str, state: Any) -> dict[str, str]:
    return dict(state.get("pairs", {}))


def test_is_a_backend(sim: SimBackend) -> None:
    assert isinstance(sim, Backend) and sim.name == "sim"


def test_unknown_tool_is_127(sim: SimBackend) -> None:
    result = sim.run("n1", "no-such-tool --really")
    assert (result.exit_code, result.stdout, result.stderr) == (
        127,
        "",
        "sim: command not found: no-such-tool",
    )
    assert sim.world.log_entries() == []


def test_registered_tools_include_builtins_and_test_tools() -> None:
    assert {"echo", "counter", "dbmcli", "escli", "vm_maker", "test_setpair"} <= set(tool_names())


def test_a_second_function_cannot_steal_a_name() -> None:
    with pytest.raises(ValueError, match="already registered"):

        @sim_tool("echo")
        def impostor(ctx: ToolContext) -> ToolResult:
            return ToolResult()


def test_tuple_results_world_reads_and_observers(sim: SimBackend) -> None:
    assert sim.run("a", "test_setpair k v").stdout == "a:k=v\n"
    assert sim.run("b", "test_peek a").stdout == "{'k': 'v'}\n"
    assert sim.observe("a", "pair", "k") == "v"
    assert sim.observe("b", "pair", "k") is None
    assert sim.observe("a", "no-such-kind", "k") is None
    assert sim.inventory("pair") == {"k": "v"}


def test_tool_failure_discards_the_state_change_and_the_log(sim: SimBackend) -> None:
    result = sim.run("a", "test_setpair k v --then-fail")
    assert (result.exit_code, result.stderr) == (4, "changed my mind\n")
    assert sim.world.host_state("a") == {}
    assert sim.world.log_entries() == []


def test_a_buggy_tool_raises_and_leaves_no_effect(sim: SimBackend) -> None:
    with pytest.raises(ValueError):
        sim.run("a", "test_setpair only-one-arg")
    assert sim.world.snapshot() == {}


def test_env_reaches_the_tool(sim: SimBackend) -> None:
    assert sim.run("a", "test_env", env={"GREETING": "hi"}).stdout == "hi"


def test_interpolated_values_stay_one_argument(sim: SimBackend) -> None:
    hostile = "x; counter pwned && echo $(id) `id` | cat\nline2"
    assert sim.run("a", f"echo {shlex.quote(hostile)}").stdout == hostile + "\n"
    assert sim.world.snapshot() == {}


@settings(max_examples=50)
@given(st.lists(st.text(st.characters(blacklist_characters="\x00")), max_size=5))
def test_echo_round_trips_any_quoted_arguments(args: list[str]) -> None:
    with SimBackend() as backend:
        assert backend.run("h", shlex.join(["echo", *args])).stdout == " ".join(args) + "\n"


def test_unparsable_command_is_a_backend_error(sim: SimBackend) -> None:
    with pytest.raises(BackendError):
        sim.run("a", "echo 'open")


def test_seeded_randomness_is_reproducible(make_sim: Callable[..., SimBackend]) -> None:
    def draws(seed: int, host: str) -> list[str]:
        backend = make_sim(seed=seed)
        return [backend.run(host, "random").stdout for _ in range(3)]

    assert draws(7, "n1") == draws(7, "n1")
    assert len(set(draws(7, "n1"))) == 3  # successive calls differ
    assert draws(7, "n1") != draws(8, "n1")
    assert draws(7, "n1") != draws(7, "n2")


def test_sleep_tool_latency_and_timeout(sim: SimBackend) -> None:
    assert sim.run("a", "sleep 0.1").duration >= 0.1
    with pytest.raises(CommandTimeout):
        sim.run("a", "sleep 5", timeout=0.1)
    assert sim.run("a", "sleep nope").exit_code == 2


def test_a_call_acts_while_it_runs_unless_it_will_time_out(
    make_sim: Callable[..., SimBackend],
) -> None:
    """The effect commits at the start of the call's latency, as a real command acts
    before it answers; a call whose latency outlasts its timeout never acts."""
    backend = make_sim(latency_ms=600)
    done = threading.Event()
    caller = threading.Thread(
        target=lambda: (backend.run("a", "test_setpair k v"), done.set()), daemon=True
    )
    caller.start()
    deadline = time.monotonic() + 10
    while not backend.world.log_entries(host="a") and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [e.effect for e in backend.world.log_entries(host="a")] == ["k=v"]
    assert not done.is_set()  # still "running" its 600 ms
    caller.join(10)
    assert done.is_set()
    with pytest.raises(CommandTimeout):
        backend.run("b", "test_setpair k v", timeout=0.05)
    assert backend.world.log_entries(host="b") == []
    assert backend.world.call_count("b", "test_setpair") == 1  # made, counted, no effect


def test_output_is_capped(make_sim: Callable[..., SimBackend]) -> None:
    backend = make_sim(max_output=20)
    out = backend.run("a", "echo " + "x" * 100 + " END").stdout
    assert "truncated" in out and out.endswith(" END\n")


def test_flag_probe_and_undo(sim: SimBackend) -> None:
    assert sim.run("a", "flag f").exit_code == 1
    sim.run("a", "touch_flag f")
    assert sim.run("a", "flag f").ok
    assert sim.observe("a", "flag", "f") == "set"
    sim.run("a", "clear_flag f")
    assert sim.run("a", "flag f").exit_code == 1
    assert [e.effect for e in sim.world.log_entries()] == ["flag f set", "flag f cleared"]
