"""The ``local`` backend: run a step's command as a subprocess on this machine.

The engine hands us a command string in which every interpolated value is already
shell-quoted. We split it back with ``shlex.split`` and execute the argument list
directly — never ``shell=True`` — so a value such as ``x; rm -rf /`` reaches the program
as one literal argument and can never become a second command.
"""

from __future__ import annotations

import functools
import os
import shlex
import signal
import subprocess
import time
from collections.abc import Mapping

from fleetlog.engine.backends.base import (
    BackendError,
    CommandInDoubt,
    CommandResult,
    CommandTimeout,
)
from fleetlog.engine.backends.output import DEFAULT_MAX_OUTPUT, TailBuffer, drain_in_thread

#: Host names that mean "this machine"; anything else is a configuration mistake, and
#: silently running a step meant for ``node3`` here would be dangerous.
LOCAL_HOSTS = frozenset({"", "localhost", "127.0.0.1", "::1"})


def split_command(host: str, command: str) -> list[str]:
    """``shlex.split`` with a :class:`BackendError` instead of a bare ``ValueError``."""
    try:
        argv = _split(command)
    except ValueError as exc:  # unbalanced quotes: the engine rendered something broken
        raise BackendError(host=host, reason=f"cannot parse command {command!r}: {exc}") from exc
    if not argv:
        raise BackendError(host=host, reason="empty command")
    return list(argv)


@functools.lru_cache(maxsize=4096)
def _split(command: str) -> tuple[str, ...]:
    # A fan-out runs the same rendered command on many resources; shlex is pure Python
    # (~30 µs a command), so remember recent answers.
    return tuple(shlex.split(command))


class LocalBackend:
    """Runs commands on localhost through ``subprocess`` without a shell.

    Each command gets its own process group (``start_new_session``) so that a timeout
    kills everything it spawned, not just the direct child.
    """

    name = "local"

    def __init__(self, *, max_output: int = DEFAULT_MAX_OUTPUT, cwd: str | None = None) -> None:
        self.max_output = max_output
        self.cwd = cwd

    def run(
        self,
        host: str,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        if host not in LOCAL_HOSTS:
            raise BackendError(
                host=host, reason="the local backend only runs commands on localhost"
            )
        argv = split_command(host, command)
        full_env = {**os.environ, **env} if env else None
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except FileNotFoundError:
            # Same code a shell (and so the ssh backend) reports, so steps behave alike.
            return CommandResult(127, "", f"local: command not found: {argv[0]}")
        except PermissionError as exc:
            return CommandResult(126, "", f"local: cannot execute {argv[0]}: {exc}")
        except OSError as exc:
            raise BackendError(host=host, reason=f"cannot start {argv[0]}: {exc}") from exc

        assert proc.stdout is not None and proc.stderr is not None
        out, err = TailBuffer(self.max_output), TailBuffer(self.max_output)
        readers = [drain_in_thread(proc.stdout, out), drain_in_thread(proc.stderr, err)]
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            for reader in readers:
                reader.join()
            raise CommandTimeout(
                host=host,
                timeout=timeout,
                command=command,
                stdout=out.text(),
                stderr=err.text(),
            ) from None
        except BaseException:  # KeyboardInterrupt, SystemExit: leave nothing running
            _kill_group(proc)
            raise
        # EOF arrives once every process holding the pipes is gone (like communicate()).
        # A background grandchild can keep them open: within the timeout, kill the group.
        deadline = None if timeout is None else started + timeout
        for reader in readers:
            reader.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        if any(reader.is_alive() for reader in readers):
            _kill_group(proc)
            for reader in readers:
                reader.join()
        if proc.returncode < 0:  # killed by a signal, and not by our timeout
            raise CommandInDoubt(
                host=host,
                reason=f"{argv[0]} was killed by signal {-proc.returncode}",
                stdout=out.text(),
                stderr=err.text(),
            )
        return CommandResult(
            proc.returncode, out.text(), err.text(), duration=time.monotonic() - started
        )

    def close(self) -> None:
        """Nothing to release: every command's resources are freed when it ends."""


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL the command's whole process group, then reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
