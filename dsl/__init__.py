"""The fleetlog machine-definition language: parse, compile, check.

``compile_source`` / ``compile_file`` turn one ``.fsm`` text into a frozen
``MachineSpec`` (see ``dsl.spec``) or raise ``DSLError`` carrying every diagnostic;
``link_check`` checks references between kinds. ``evaluate``, ``render`` and
``placeholders`` are the pure helpers the engine uses at run time for guards and
``{param}`` commands. This package imports only ``fleetlog.errors``, the stdlib and lark:
never ``journal`` or ``engine``.
"""

from fleetlog.dsl.api import compile_file, compile_source, link_check
from fleetlog.dsl.diagnostics import Diagnostic
from fleetlog.dsl.errors import DSLError, GuardError, TemplateError
from fleetlog.dsl.guards import evaluate, holds, to_text
from fleetlog.dsl.interpolate import placeholders, render
from fleetlog.dsl.spec import MachineSpec

__all__ = [
    "DSLError",
    "Diagnostic",
    "GuardError",
    "MachineSpec",
    "TemplateError",
    "compile_file",
    "compile_source",
    "evaluate",
    "holds",
    "link_check",
    "placeholders",
    "render",
    "to_text",
]
