"""The built-in machine pack: everything fleetlog ships for the seeds' systems.

Registered under the entry-point group ``fleetlog.machines`` (pyproject.toml) and read by
the engine only through that declaration, exactly as a third-party pack would be.
"""

from __future__ import annotations

from pathlib import Path

from fleetlog.packs import Pack

PACK = Pack(
    name="builtin",
    machines=(Path(__file__).resolve().parent,),
    steps=(
        "fleetlog.machines.steps.diskless",
        "fleetlog.machines.steps.exascale",
        "fleetlog.machines.steps.redfish",
        "fleetlog.machines.steps.xcat",
    ),
    inventory_hooks=("fleetlog.machines.exascale_inventory:INVENTORY_HOOKS",),
    sim_tools=(
        "fleetlog.machines.sim.tools",
        "fleetlog.machines.sim.seeds",
        "fleetlog.machines.sim.bmc",
    ),
    commands=("fleetlog.machines.cli:register",),
    ingest_sources=("fleetlog.machines.ganeti:SOURCE", "fleetlog.machines.ganeti_eventd:SOURCE"),
    listing_formats=(
        "fleetlog.machines.ganeti_listing:INSTANCES",
        "fleetlog.machines.ganeti_listing:JOBS",
        "fleetlog.machines.ganeti_listing:RAPI_INSTANCES",
        "fleetlog.machines.ganeti_listing:RAPI_JOBS",
    ),
    observe_sources=("fleetlog.machines.steps.redfish_observe:SOURCE",),
)
