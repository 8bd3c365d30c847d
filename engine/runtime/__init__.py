"""What runs: the runner's intake, the step loop, actions, ensure, undo, leases, outcomes.

The public face of the runtime; ``ops``, ``cli``, machine packs and benchmarks import from
here, never from the modules behind it.
"""

from fleetlog.engine.runtime.actions import ActionResult, PluginContext
from fleetlog.engine.runtime.dryrun import DryRun, PlannedStep
from fleetlog.engine.runtime.leases import DEFAULT_TTL, LeaseSet, new_owner, owner_is_dead
from fleetlog.engine.runtime.outcome import (
    AlreadyStarted,
    Busy,
    CommandReused,
    GuardRefused,
    NoSuchResource,
    NotInProgress,
    Outcome,
    Stopping,
    WrongBackend,
)
from fleetlog.engine.runtime.preflight import NotReady
from fleetlog.engine.runtime.reintroduce import reintroduced
from fleetlog.engine.runtime.runner import Runner
from fleetlog.engine.runtime.task import Intake, Task

__all__ = [
    "DEFAULT_TTL",
    "ActionResult",
    "AlreadyStarted",
    "Busy",
    "CommandReused",
    "DryRun",
    "GuardRefused",
    "Intake",
    "LeaseSet",
    "NoSuchResource",
    "NotInProgress",
    "NotReady",
    "Outcome",
    "PlannedStep",
    "PluginContext",
    "Runner",
    "Stopping",
    "Task",
    "WrongBackend",
    "new_owner",
    "owner_is_dead",
    "reintroduced",
]
