"""The fleetlog machine-definition language: parse, compile, check.

``compile_source`` / ``compile_file`` turn one ``.fsm`` text into a frozen
``MachineSpec`` (see ``dsl.spec``) or raise ``DSLError`` carrying every diagnostic;
``link_check`` checks references between kinds; ``cache.compile_file`` answers from
compiled specs kept between commands. ``evaluate``, ``render`` and ``placeholders`` are
the pure helpers the engine uses at run time for guards and ``{param}`` commands. This
package imports only ``fleetlog.errors``, the stdlib and lark: never ``journal`` or
``engine``.

The compiling entry points are imported on first use (PEP 562): they bring in Lark,
and a command answered from the spec cache never needs it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fleetlog.dsl.diagnostics import Diagnostic
from fleetlog.dsl.errors import DSLError, GuardError, TemplateError
from fleetlog.dsl.guards import evaluate, explain, holds, to_text
from fleetlog.dsl.interpolate import placeholders, render
from fleetlog.dsl.linking import link_check
from fleetlog.dsl.spec import MachineSpec

if TYPE_CHECKING:
    from fleetlog.dsl.api import compile_file, compile_source

__all__ = [
    "DSLError",
    "Diagnostic",
    "GuardError",
    "MachineSpec",
    "TemplateError",
    "compile_file",
    "compile_source",
    "evaluate",
    "explain",
    "holds",
    "link_check",
    "placeholders",
    "render",
    "to_text",
]


def __getattr__(name: str) -> Any:
    if name in ("compile_file", "compile_source"):
        from fleetlog.dsl import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
