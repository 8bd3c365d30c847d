"""Where the source names things: the compiler's record of every name *use*.

The compiled ``MachineSpec`` keeps positions only for declarations (a state, a step);
a guard is a tuple ``Expr`` and a command a plain string. To say "unknown param 'hots'
at 12:31" with a caret, the compiler records each use here while it still has lark's
tokens, and ``dsl.checks`` resolves them against the spec. Keeping uses out of the spec
keeps the spec (and its definition hash) about meaning only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from fleetlog.dsl.spec import Pos

Role = Literal[
    "state",  # must be a state of this machine
    "source",  # a transition's source: a state, and not a final one
    "trigger",  # must be a trigger of this machine (`ensure self ... via T`)
    "undo",  # must be a step of `transition`
    "value",  # a name read by a guard, a template or a call argument
    "ref",  # `on`, `lock`, `ensure`: `self` or a ref param
    "plugin",  # a `call` plugin name
    "default",  # a param's default value (attr "bare" when written as a bare word)
    "choice",  # a string compared with param `name` in a guard: must be a choice (attr)
    "attribute",  # `set NAME = ...`, `compare G: NAME = ...`: must be a machine param
    "format",  # a listing format name (checked when the caller knows the formats)
    "command",  # a command string as written, quotes included: its shell quoting is checked
]


@dataclass(frozen=True, slots=True)
class Use:
    """One name as written: what it must resolve to, where, and in which scope.

    ``transition`` is the trigger whose params are in scope (None: machine level);
    ``attr`` is the part after the dot in ``ref.attr`` (or the role's extra datum);
    ``context`` is a phrase for messages, e.g. "the destination of transition 'start'".
    """

    role: Role
    name: str
    pos: Pos
    length: int = 1
    transition: str | None = None
    attr: str | None = None
    context: str = ""
