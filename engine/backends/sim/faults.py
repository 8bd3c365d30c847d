"""Injectable faults, stored in the world so they reach every process using it.

Counting: each fault counts the calls that match it (``tool`` and ``host``) from the
moment it is injected — its *hits* — so ``fail_nth`` with ``n=2`` fails the second
matching call after injection, however many calls happened before.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import shlex
from collections.abc import Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, Literal, TypeAlias, get_args

from fleetlog.errors import UsageError

FaultMode: TypeAlias = Literal[
    "fail_nth",  # the n-th matching call fails (exit_code, message); no effect
    "fail_always",  # every matching call fails
    "fail_times",  # the first n matching calls fail: "a service that needs two tries"
    "hang",  # the call never answers: CommandTimeout once the timeout passes
    "slow",  # add ms of latency before the call runs
    "wrong_status",  # observe()/inventory() report ``status`` instead of the truth
    "crash_after",  # SIGKILL this process right after the n-th side-effecting call commits
    "unreachable",  # BackendError before anything runs (host down, connection refused)
    "drop",  # the effect commits, then the reply is lost: BackendError (in doubt)
]
FAULT_MODES: frozenset[str] = frozenset(get_args(FaultMode))
#: Modes that need ``n``; for hang/slow/unreachable/drop ``n`` is optional and means
#: "only the n-th matching call" (absent: every matching call).
_NEEDS_N = frozenset({"fail_nth", "fail_times", "crash_after"})

ANY_TOOL = "*"


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected misbehaviour.

    ``tool`` is a tool name or ``"*"``; ``host`` None matches every host; ``command``
    a shell-style pattern the whole command line must match (``dbmcli *edv*``). For
    ``wrong_status`` the match is on ``host``/``kind``/``name`` (``tool`` is ignored).
    """

    tool: str = ANY_TOOL
    _: KW_ONLY
    mode: FaultMode = "fail_always"
    host: str | None = None
    n: int | None = None
    ms: float | None = None
    status: str | None = None
    exit_code: int = 1
    message: str | None = None
    kind: str | None = None
    name: str | None = None
    command: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in FAULT_MODES:
            raise UsageError(f"unknown fault mode {self.mode!r}; one of {sorted(FAULT_MODES)}")
        if self.mode in _NEEDS_N and (self.n is None or self.n < 1):
            raise UsageError(f"fault mode {self.mode} needs n >= 1")
        if self.n is not None and self.n < 1:
            raise UsageError("fault n must be >= 1")
        if self.mode == "slow" and (self.ms is None or self.ms < 0):
            raise UsageError("fault mode slow needs ms >= 0")
        if self.mode == "wrong_status" and self.status is None:
            raise UsageError("fault mode wrong_status needs status")

    def matches_call(self, host: str, tool: str, argv: Sequence[str] | None = None) -> bool:
        """Whether a call of ``tool`` on ``host`` (command line ``argv``) is this fault's.
        A fault with a ``command`` pattern matches only a call whose line is known."""
        return (
            self.mode != "wrong_status"
            and self.tool in (ANY_TOOL, tool)
            and self.host in (None, host)
            and (
                self.command is None
                or (argv is not None and fnmatch.fnmatchcase(shlex.join(argv), self.command))
            )
        )

    def matches_resource(self, host: str, kind: str, name: str) -> bool:
        return (
            self.mode == "wrong_status"
            and self.host in (None, host)
            and self.kind in (None, kind)
            and self.name in (None, name)
        )

    def fires(self, hits: int) -> bool:
        """Whether the call that brought this fault to ``hits`` matching calls is hit."""
        if self.mode == "fail_nth" or self.mode == "crash_after":
            return hits == self.n
        if self.mode == "fail_times":
            return self.n is not None and hits <= self.n
        if self.mode in ("hang", "slow", "unreachable", "drop"):
            return self.n is None or hits == self.n
        return True  # fail_always

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Fault:
        return cls(**data)


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A stored fault with its id and how many matching calls it has seen."""

    id: int
    fault: Fault
    hits: int
