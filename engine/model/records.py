"""Resource records: what replay folds the journal into.

Slotted and small (~100 B plus params) because a fleet has thousands of them and they are
never registered with a ``transitions.Machine``. ``to_dict``/``from_dict`` give the form
used by ``status --json`` and by snapshots.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from fleetlog.errors import UsageError


@dataclass(slots=True)
class InProgress:
    """A transition under way: shown as source -> target at the current step."""

    trigger: str
    source: str
    target: str
    transition_id: str
    step: str | None = None
    command_id: str | None = None
    started_seq: int = 0
    started_version: int = 0


@dataclass(slots=True)
class Resource:
    id: str
    kind: str
    name: str
    state: str
    params: dict[str, Any]
    version: int = 0
    in_progress: InProgress | None = None
    attention: dict[str, Any] | None = None
    observed: str | None = None
    observed_at: str | None = None
    deleted: bool = False
    last_seq: int = 0
    updated_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        if self.in_progress is not None:
            d["in_progress"] = {
                "trigger": self.in_progress.trigger,
                "target": self.in_progress.target,
                "step": self.in_progress.step,
                "source": self.in_progress.source,
                "transition_id": self.in_progress.transition_id,
                "command_id": self.in_progress.command_id,
                "started_seq": self.in_progress.started_seq,
                "started_version": self.in_progress.started_version,
            }
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Resource:
        d = dict(d)
        ip = d.pop("in_progress", None)
        rec = cls(**d)
        if ip is not None:
            rec.in_progress = InProgress(**ip)
        return rec


def split_id(resource_id: str) -> tuple[str, str]:
    """``"vm/guest7"`` -> ``("vm", "guest7")``; anything else is a usage error."""
    kind, sep, name = resource_id.partition("/")
    if not sep or not kind or not name or "/" in name:
        raise UsageError(f"bad resource id {resource_id!r}: expected KIND/NAME, e.g. vm/guest7")
    return kind, name
