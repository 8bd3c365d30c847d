"""The simulated datacenter: fake tools with state, seeded randomness and faults.

Public surface::

    backend = SimBackend("world.db", seed=7)      # or SimBackend() for an in-memory world
    backend.run("node3", "vm_maker --clone guest1 --name guest9", timeout=30)
    backend.world.inject(Fault("escli", mode="fail_times", n=2))
    backend.observe("node3", "vm", "guest9")       # -> "running"

Adding a tool from any module (a machine pack, a test)::

    @sim_tool("ping")
    def ping(ctx: ToolContext) -> ToolResult: ...

A world built by ``fleetlog sim init`` is a *twin*: ``World.declare`` gives it exactly
the hosts the resources imply (``@sim_seeder`` per kind), and any other host is
unreachable, as on a real network. The world the CLI creates beside a journal is one
too, seeded as the journal grows (``World.extend``, ``ops.twin.follow_journal``); an
in-process ``SimBackend`` is a sandbox (a host is made on first use) unless it opts in.
"""

from fleetlog.engine.backends.sim.backend import SimBackend
from fleetlog.engine.backends.sim.faults import FAULT_MODES, Fault, FaultMode, FaultRecord
from fleetlog.engine.backends.sim.registry import (
    Seeding,
    SeedResource,
    ToolContext,
    ToolFailure,
    ToolResult,
    WorldFault,
    WorldFaultError,
    load_tools,
    secret_digest,
    sim_observer,
    sim_seeder,
    sim_tool,
    sim_world_fault,
    tool_names,
    world_faults,
)
from fleetlog.engine.backends.sim.seeding import WorldSeeding, seed
from fleetlog.engine.backends.sim.world import LogEntry, World

__all__ = [
    "FAULT_MODES",
    "Fault",
    "FaultMode",
    "FaultRecord",
    "LogEntry",
    "SeedResource",
    "Seeding",
    "SimBackend",
    "ToolContext",
    "ToolFailure",
    "ToolResult",
    "World",
    "WorldFault",
    "WorldFaultError",
    "WorldSeeding",
    "load_tools",
    "secret_digest",
    "seed",
    "sim_observer",
    "sim_seeder",
    "sim_tool",
    "sim_world_fault",
    "tool_names",
    "world_faults",
]
