"""Fleet operations: fan-out, workers, reconciliation, observing, ingest, inventories,
creating resources and the audit. Each drives the runtime (or reads the model) for many
resources at once. The public face of the layer; the CLI and packs import from here."""

from fleetlog.engine.ops.audit import build as build_audit
from fleetlog.engine.ops.audit import render_text as render_audit
from fleetlog.engine.ops.fanout import FanoutResult, run_many, summary_lines
from fleetlog.engine.ops.fencing import FencingViolation
from fleetlog.engine.ops.fencing import check as check_fencing
from fleetlog.engine.ops.ingest import (
    IngestError,
    IngestReport,
    IngestSource,
    Message,
    ingest,
    iso_time,
)
from fleetlog.engine.ops.inventory import InventoryError, LoadResult
from fleetlog.engine.ops.inventory import load as load_inventory
from fleetlog.engine.ops.reconcile import Finding, PassReport, Reconciler, parse_fix
from fleetlog.engine.ops.resources import (
    MissingReference,
    ResourceExists,
    create_resource,
    create_resources,
    created_event,
    name_problem,
)
from fleetlog.engine.ops.worker import Worker, WorkerResult, submit_many

__all__ = [
    "FanoutResult",
    "FencingViolation",
    "Finding",
    "IngestError",
    "IngestReport",
    "IngestSource",
    "InventoryError",
    "LoadResult",
    "Message",
    "MissingReference",
    "PassReport",
    "Reconciler",
    "ResourceExists",
    "Worker",
    "WorkerResult",
    "build_audit",
    "check_fencing",
    "create_resource",
    "create_resources",
    "created_event",
    "ingest",
    "iso_time",
    "load_inventory",
    "name_problem",
    "parse_fix",
    "render_audit",
    "run_many",
    "submit_many",
    "summary_lines",
]
