"""What things are: kinds, resource records, values, params, patterns, the event
vocabulary, the loader, diagrams, replay and a transition's progress.

Nothing here runs a step or talks to a backend: replay folds recorded events and never
fires a trigger. The public face of the model; the layers above import from here.

A lazy face, as ``fleetlog.engine``'s is: each name is imported when it is first asked for,
so a command imports the parts of the model it uses and no others (``fleetlog machines
list`` reads no event, ``fleetlog status`` draws no diagram and parses no parameter).
"""

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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

#: The names the face offers from each module of the model.
_NAMES: dict[str, tuple[str, ...]] = {
    "graph": ("GraphError", "mermaid"),
    "kinds": ("Kind", "KindRegistry", "TriggerNotAllowed", "UnknownKind", "did_you_mean"),
    "loader": (
        "compile_files",
        "discover_plugins",
        "load_registry",
        "machine_dirs",
        "machine_files",
    ),
    "params": ("ParamError", "coerce", "expand_names", "parse_assignments", "resolve"),
    "patterns": ("expand", "fold_names", "fold_nodes", "natural_key", "select"),
    "progress": ("Progress", "StepState", "reconstruct"),
    "records": ("InProgress", "Resource", "split_id"),
    "replay": ("ReplayError", "load_resource", "replay_all"),
    "values": ("MissingSecret", "Scope", "host_of", "secret_env"),
}
#: Each name's module and its name there: the face renames two of graph's, and
#: ``events`` is the module itself.
_FACES: dict[str, tuple[str, str]] = {
    **{name: (module, name) for module, names in _NAMES.items() for name in names},
    "events": ("events", ""),
    "GRAPH_FORMATS": ("graph", "FORMATS"),
    "render_graph": ("graph", "render"),
}

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


def __getattr__(name: str) -> Any:
    where = _FACES.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, attr = where
    found = importlib.import_module(f"{__name__}.{module}")
    value = getattr(found, attr) if attr else found
    globals()[name] = value  # asked once: later lookups are plain attribute reads
    return value
