"""The ``local`` backend: run a step's command with ``/bin/sh -c`` on this machine.

A command is POSIX shell text on every backend: over ssh the remote login shell runs it,
here ``/bin/sh -c`` does, so ``run "make && make install"`` or ``run "printf %s {v} >
{out}"`` mean the same wherever they run. The engine hands us the command with every
interpolated value already shell-quoted (``shlex.quote`` in ``dsl.interpolate``): a value
such as ``x; rm -rf /`` is one single-quoted word that the shell passes on literally, and
can never become a second command.

Stdin is ``/dev/null`` (as the ssh backend's ``exec </dev/null``). Each command gets its
own process group (``start_new_session``) so that a timeout kills everything the shell
spawned, not just the shell.
"""

from __future__ import annotations

import functools
import os
import re
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

#: The shell every command runs in (the ssh backend's lab and real hosts use the login
#: shell, which for a service account is ``/bin/sh``; both read POSIX shell text).
SHELL = "/bin/sh"

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def shell_argv(command: str) -> list[str]:
    """The argument list that runs ``command`` as shell text: ``/bin/sh -c COMMAND``."""
    return [SHELL, "-c", command]


def split_command(host: str, command: str) -> list[str]:
    """``shlex.split`` with a :class:`BackendError` instead of a bare ``ValueError``.

    For backends that read a command as one simple command without a shell (the
    simulator's tools); the local backend itself hands the text to ``/bin/sh``.
    """
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
    """Runs commands on localhost with ``/bin/sh -c``, like a remote shell over ssh.

    Each command gets its own process group (``start_new_session``) so that a timeout
    kills everything it spawned, not just the shell.
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
        if not command.strip():
            raise BackendError(host=host, reason="empty command")
        if "\0" in command:
            raise BackendError(host=host, reason="a command cannot contain a NUL character")
        full_env = None
        if env:
            bad = [k for k in env if not _ENV_NAME.match(k)]
            if bad:
                reason = f"invalid environment variable name {bad[0]!r}"
                raise BackendError(host=host, reason=reason)
            full_env = {**os.environ, **env}
        started = time.monotonic()
        try:
            proc = subprocess.Popen(
                shell_argv(command),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                cwd=self.cwd,
                start_new_session=True,
            )
        except (OSError, ValueError) as exc:  # no /bin/sh, a bad cwd, a NUL in env
            raise BackendError(host=host, reason=f"cannot start {SHELL}: {exc}") from exc

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
        if proc.returncode < 0:  # the shell was killed by a signal, and not by our timeout
            raise CommandInDoubt(
                host=host,
                reason=f"the command was killed by signal {-proc.returncode}",
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
