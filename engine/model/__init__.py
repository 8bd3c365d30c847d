"""What things are: kinds, resource records, values, params, patterns, the event
vocabulary, the loader, diagrams, replay and a transition's progress.

Nothing here runs a step or talks to a backend: replay folds recorded events and never
fires a trigger. The public face of the model; the layers above import from here.
"""

from fleetlog.engine.model import events
from fleetlog.engine.model.graph import FORMATS as GRAPH_FORMATS
from fleetlog.engine.model.graph import GraphError, mermaid
from fleetlog.engine.model.graph import render as render_graph
from fleetlog.engine.model.kinds import (
    Kind,
    KindRegistry,
    TriggerNotAllowed,
    UnknownKind,
    did_you_mean,
)
from fleetlog.engine.model.loader import (
    compile_files,
    discover_plugins,
    load_registry,
    machine_dirs,
    machine_files,
)
from fleetlog.engine.model.params import (
    ParamError,
    coerce,
    expand_names,
    parse_assignments,
    resolve,
)
from fleetlog.engine.model.patterns import expand, fold_names, fold_nodes, natural_key, select
from fleetlog.engine.model.progress import Progress, StepState, reconstruct
from fleetlog.engine.model.records import InProgress, Resource, split_id
from fleetlog.engine.model.replay import ReplayError, load_resource, replay_all
from fleetlog.engine.model.values import MissingSecret, Scope, host_of, secret_env

__all__ = [
    "GRAPH_FORMATS",
    "GraphError",
    "InProgress",
    "Kind",
    "KindRegistry",
    "MissingSecret",
    "ParamError",
    "Progress",
    "ReplayError",
    "Resource",
    "Scope",
    "StepState",
    "TriggerNotAllowed",
    "UnknownKind",
    "coerce",
    "compile_files",
    "did_you_mean",
    "discover_plugins",
    "events",
    "expand",
    "expand_names",
    "fold_names",
    "fold_nodes",
    "host_of",
    "load_registry",
    "load_resource",
    "machine_dirs",
    "machine_files",
    "mermaid",
    "natural_key",
    "parse_assignments",
    "reconstruct",
    "render_graph",
    "replay_all",
    "resolve",
    "secret_env",
    "select",
    "split_id",
]
