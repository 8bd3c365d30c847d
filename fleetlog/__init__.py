"""fleetlog: the root of the namespace and of the dependency graph.

``fleetlog.dsl``, ``fleetlog.journal``, ``fleetlog.engine`` and the machine packs all
import from here (the version, the root exception, the pack declaration); these modules
import none of them, so every arrow between the parts points one way (docs/architecture.md).
"""

from fleetlog.errors import FleetlogError

__version__ = "0.1.0"
__all__ = ["FleetlogError", "__version__"]
