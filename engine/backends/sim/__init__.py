"""The simulated datacenter: fake tools with state, seeded randomness and faults.

Public surface::

    backend = SimBackend("world.db", seed=7)      # or SimBackend() for an in-memory world
    backend.run("node3", "vm_maker --clone guest1 --name guest9", timeout=30)
    backend.world.inject(Fault("escli", mode="fail_times", n=2))
    backend.observe("node3", "vm", "guest9")       # -> "running"

Adding a tool from any module (a machine pack, a test)::

    @sim_tool("ping")
    def ping(ctx: ToolContext) -> ToolResult: ...
"""

from fleetlog.engine.backends.sim.backend import SimBackend
from fleetlog.engine.backends.sim.faults import FAULT_MODES, Fault, FaultMode, FaultRecord
from fleetlog.engine.backends.sim.registry import (
    ToolContext,
    ToolFailure,
    ToolResult,
    load_tools,
    sim_observer,
    sim_tool,
    tool_names,
)
from fleetlog.engine.backends.sim.world import LogEntry, World

__all__ = [
    "FAULT_MODES",
    "Fault",
    "FaultMode",
    "FaultRecord",
    "LogEntry",
    "SimBackend",
    "ToolContext",
    "ToolFailure",
    "ToolResult",
    "World",
    "load_tools",
    "sim_observer",
    "sim_tool",
    "tool_names",
]
