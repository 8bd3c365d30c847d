"""Built-in fake tool families; importing this package registers them all.

One module per family keeps each small. Seed-specific families (cellcli, gnt-instance,
iscsiadm, ...) are added here or registered by machine packs with ``@sim_tool``.
"""

from engine.backends.sim.tools import basic, dbmcli, escli, vm_maker

__all__ = ["basic", "dbmcli", "escli", "vm_maker"]
