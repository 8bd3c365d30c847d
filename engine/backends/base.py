"""The Backend protocol: where steps run and where status is observed.

A command reaches a backend as one string of POSIX shell text, already rendered by the
engine with every interpolated value shell-quoted (``shlex.quote``), so a value like
``x; rm -rf /`` is always one argument, never a command. ``ssh`` hands it to the remote
login shell and ``local`` to ``/bin/sh -c``: the same text means the same on both. The
simulator (``sim``) reads it as one simple command, split with ``shlex.split`` (with
``NAME=value`` prefixes), since its tools are functions, not programs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from fleetlog.errors import FleetlogError
from fleetlog.frozen import frozen


class BackendError(FleetlogError):
    """A command could not be run at all (unreachable host, unknown tool, bad output)."""

    msg_fmt = "%(host)s: %(reason)s"
    exit_code = 1


class CommandTimeout(BackendError):
    msg_fmt = "%(host)s: command timed out after %(timeout)ss: %(command)s"


class CommandInDoubt(BackendError):
    """The command was sent, but how it ended is unknown: the connection was lost after
    it started, or its process was killed by something other than the command's own
    timeout. Its effect may or may not have happened; only a probe or an operator can
    say, and re-running it blindly could repeat it."""

    msg_fmt = "%(host)s: %(reason)s (the command was sent; whether it took effect is unknown)"


@frozen
class CommandResult:
    """What a command did: its exit code and (size-capped) output."""

    exit_code: int
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@runtime_checkable
class Backend(Protocol):
    """Runs commands on hosts and reports observed status."""

    name: str

    def run(
        self,
        host: str,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        """Run ``command`` on ``host``. A non-zero exit is a result, not an exception;
        ``BackendError`` means it could not be run, ``CommandTimeout`` that it overran."""
        ...

    def close(self) -> None: ...
