"""How a command on a resource ended, and the errors that refuse or stop one.

Shared by the runner's intake, its step loop, ``ensure`` and the fleet operations above
them, so none of those has to import another to name an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass

from fleetlog.errors import FleetlogError, UsageError


class NoSuchResource(UsageError):
    msg_fmt = "no resource %(resource)r in the journal%(hint)s"


class Busy(FleetlogError):
    msg_fmt = "%(resource)s is busy: %(trigger)s in progress (step %(step)s)"
    exit_code = 1


class GuardRefused(UsageError):
    msg_fmt = (
        "%(resource)s: %(trigger)s is not allowed: its guard `when %(guard)s` is false (%(why)s)"
    )


class NotInProgress(UsageError):
    msg_fmt = "%(resource)s has no transition in progress"


class WrongBackend(UsageError):
    msg_fmt = (
        "%(resource)s: its %(trigger)s started on the %(started_on)s backend%(where)s and "
        "can only be resumed there, not on %(backend)s: resume it with --backend "
        "%(started_on)s (after `fleetlog backend set %(started_on)s` if the journal is "
        "bound elsewhere)"
    )


class CommandReused(UsageError):
    """A command id names one request: given again with another one, it is refused
    rather than answered with the first request's result (which would look like this
    one's)."""

    msg_fmt = (
        "command id %(command_id)s was already used (seq %(seq)s, by %(actor)s) for "
        "%(original)s, not %(given)s: give a new --command-id, or the same request to "
        "get its result"
    )


class AlreadyStarted(FleetlogError):
    msg_fmt = "%(resource)s: command %(command_id)s was started by someone else"
    exit_code = 1


class Stopping(Exception):
    """The runner was asked to stop (a worker's SIGTERM): raised between steps, before
    the next side effect, so the transition stays in progress for someone to resume.
    Not a ``FleetlogError``: no step may catch it and journal it as the step's failure."""


@dataclass(frozen=True)
class Outcome:
    """How one command on one resource ended."""

    resource: str
    trigger: str
    #: completed | skipped | failed | attention | rejected, and for a member of a fan-out
    #: plan that is continued: done (completed earlier in the plan) | running (elsewhere)
    status: str
    state: str | None = None
    step: str | None = None
    error: str | None = None
    output: str = ""

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "skipped", "done")
