"""Where steps run and status is observed: the ``Backend`` protocol and the backends
(``sim``, ``local``, ``ssh``), each imported only when chosen."""

from fleetlog.engine.backends.base import (
    Backend,
    BackendError,
    CommandInDoubt,
    CommandResult,
    CommandTimeout,
)
from fleetlog.engine.backends.factory import BACKENDS, open_backend, sim_world_path

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "CommandInDoubt",
    "CommandResult",
    "CommandTimeout",
    "open_backend",
    "sim_world_path",
]
