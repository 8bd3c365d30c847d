"""Generic fake tools for testing the framework and the engine (no real-world model).

``touch_flag``/``flag`` are an idempotent effect and its probe; ``counter`` is a
deliberately non-idempotent effect, so a test can see whether a step ran twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetlog.engine.backends.sim import (
    ToolContext,
    ToolFailure,
    ToolResult,
    sim_observer,
    sim_tool,
)


def _one_name(ctx: ToolContext) -> str:
    if len(ctx.args) != 1:
        raise ToolFailure(f"usage: {ctx.tool} NAME", exit_code=2)
    return ctx.args[0]


@sim_tool("echo")
def echo(ctx: ToolContext) -> ToolResult:
    return ToolResult(0, " ".join(ctx.args) + "\n")


@sim_tool("true")
def true(ctx: ToolContext) -> ToolResult:
    return ToolResult(0)


@sim_tool("false")
def false(ctx: ToolContext) -> ToolResult:
    return ToolResult(1)


@sim_tool("fail")
def fail(ctx: ToolContext) -> ToolResult:
    return ToolResult(1, "", (" ".join(ctx.args) or "sim: fail") + "\n")


@sim_tool("sleep")
def sleep(ctx: ToolContext) -> ToolResult:
    try:
        seconds = float(ctx.args[0]) if len(ctx.args) == 1 else float("nan")
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0:
        raise ToolFailure("usage: sleep SECONDS", exit_code=2)
    ctx.add_latency(seconds * 1000)
    return ToolResult(0)


@sim_tool("touch_flag")
def touch_flag(ctx: ToolContext) -> ToolResult:
    name = _one_name(ctx)
    flags = ctx.state.setdefault("flags", {})
    if not flags.get(name):
        flags[name] = True
        ctx.log(f"flag {name} set")
    return ToolResult(0)


@sim_tool("clear_flag")
def clear_flag(ctx: ToolContext) -> ToolResult:
    """The undo of ``touch_flag`` (for compensation tests)."""
    name = _one_name(ctx)
    flags = ctx.state.get("flags", {})
    if flags.pop(name, None):
        ctx.log(f"flag {name} cleared")
    return ToolResult(0)


@sim_tool("flag")
def flag(ctx: ToolContext) -> ToolResult:
    name = _one_name(ctx)
    is_set = bool(ctx.state.get("flags", {}).get(name))
    return ToolResult(0 if is_set else 1, "set\n" if is_set else "unset\n")


@sim_tool("counter")
def counter(ctx: ToolContext) -> ToolResult:
    name = _one_name(ctx)
    counters = ctx.state.setdefault("counters", {})
    counters[name] = counters.get(name, 0) + 1
    ctx.log(f"counter {name} = {counters[name]}")
    return ToolResult(0, f"{counters[name]}\n")


@sim_tool("random")
def random_tool(ctx: ToolContext) -> ToolResult:
    """Print a seeded random number: the visible face of the sim's determinism."""
    return ToolResult(0, f"{ctx.random.randrange(1 << 32)}\n")


@sim_observer("flag")
def observe_flags(host: str, state: Mapping[str, Any]) -> dict[str, str] | None:
    if "flags" not in state:
        return None
    return {name: "set" for name, value in state["flags"].items() if value}


@sim_observer("counter")
def observe_counters(host: str, state: Mapping[str, Any]) -> dict[str, str] | None:
    if "counters" not in state:
        return None
    return {name: str(value) for name, value in state["counters"].items()}
