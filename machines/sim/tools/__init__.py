"""Built-in fake tool families; importing this package registers them all.

One module per family keeps each small. Seed-specific families (cellcli, gnt-instance,
iscsiadm, ...) are added here or registered by machine packs with ``@sim_tool``.
"""

from fleetlog.machines.sim.tools import (
    basic,
    cellcli,
    dbmcli,
    diskless,
    escli,
    gnt_instance,
    gnt_job,
    hare,
    linux,
    vm_maker,
    xcat,
)

__all__ = [
    "basic",
    "cellcli",
    "dbmcli",
    "diskless",
    "escli",
    "gnt_instance",
    "gnt_job",
    "hare",
    "linux",
    "vm_maker",
    "xcat",
]
