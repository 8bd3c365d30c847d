"""Small builders shared by the journal tests."""

from __future__ import annotations

from typing import Any

from fleetlog.journal import NewEvent


def ev(type_: str = "step.started", command_id: str | None = None, **payload: Any) -> NewEvent:
    return NewEvent(type=type_, payload=payload, command_id=command_id)


def accepted(command_id: str, **payload: Any) -> NewEvent:
    return NewEvent(type="command.accepted", payload=payload, command_id=command_id)
