"""fleetlog: the root of the dependency graph.

`dsl`, `journal` and `engine` all import from here (the version and the root exception);
this package imports none of them, so the one-way arrows of DESIGN.md hold.
"""

from fleetlog.errors import FleetlogError

__version__ = "0.1.0"
__all__ = ["FleetlogError", "__version__"]
