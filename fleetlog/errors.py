"""The one root exception every layer's errors derive from.

Messages are templates with named fields kept as attributes (Ironic's ``_msg_fmt``), so
the CLI can print ``str(err)`` as a one-line message and scripts can read the fields.
``exit_code`` is the CLI contract's code for this error; the CLI maps errors to exit
codes in one place by reading it.
"""

from __future__ import annotations

from typing import Any, ClassVar


class FleetlogError(Exception):
    """Root of every error fleetlog raises on purpose."""

    msg_fmt: ClassVar[str] = "%(message)s"
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str | None = None, **fields: Any) -> None:
        self.fields = fields
        for key, value in fields.items():
            setattr(self, key, value)
        if message is None:
            try:
                message = self.msg_fmt % fields
            except (KeyError, TypeError, ValueError):
                message = f"{self.msg_fmt} {fields}"
        self.message = message
        super().__init__(message)

    def __str__(self) -> str:
        return self.message


class UsageError(FleetlogError, ValueError):
    """Bad input from the operator: a parameter, a pattern, a file that is not what it should be."""

    exit_code = 2
