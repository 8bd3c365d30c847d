"""``SSHBackend``: run commands over SSH with paramiko, one pooled connection per host.

- One connection per route (host, or jump chain + host), opened on first use and reused
  by every later step and transition; a channel per command, so threads share it.
  Concurrent channels per host are capped (``max_sessions``, OpenSSH's MaxSessions is 10).
- The socket is ours, with ``TCP_NODELAY`` (paramiko does not set it, and each exec then
  waits ~40 ms on delayed ACKs), passed to paramiko via ``sock=``. A ProxyJump hop is a
  ``direct-tcpip`` channel of the previous hop's (pooled) transport.
- A stale pooled connection (server restarted, idle-killed) is noticed when opening the
  channel — before anything ran — and replaced once. Once the exec request is sent, a
  lost connection, a failed session or a command that ends without an exit status
  (killed by a signal) raises :class:`CommandInDoubt`: it may have taken effect, so the
  runner treats the step as in doubt rather than failed; the next command reconnects.
- Stdin is ``/dev/null`` (``exec </dev/null;`` before the command, like ``ssh -n``).
- A command timeout sends ``signal KILL`` to the session (sshd kills its process group),
  closes the channel and raises :class:`CommandTimeout`.
- Environment: by default ``export K='v'; `` is prefixed to the command (works whatever
  the server's ``AcceptEnv``; values are visible in the remote process list). With
  ``env_mode="request"`` the values go as SSH ``env`` requests, which sshd silently
  drops unless its ``AcceptEnv`` lists the names.
"""

from __future__ import annotations

import os
import re
import select
import shlex
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import paramiko

from fleetlog.engine.backends.base import (
    BackendError,
    CommandInDoubt,
    CommandResult,
    CommandTimeout,
)
from fleetlog.engine.backends.output import DEFAULT_MAX_OUTPUT, TailBuffer
from fleetlog.engine.backends.ssh.config import Target, load_config, resolve, resolve_hop
from fleetlog.engine.backends.ssh.hostkeys import (
    DEFAULT_KNOWN_HOSTS,
    ENV_KNOWN_HOSTS,
    GLOBAL_KNOWN_HOSTS,
    KnownHosts,
    NewKeyCallback,
    make_policy,
    preferred_key_types,
)

if TYPE_CHECKING:
    from paramiko.channel import Channel

EnvMode = Literal["export", "request"]
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


@dataclass
class _Conn:
    client: paramiko.SSHClient
    transport: paramiko.Transport

    def alive(self) -> bool:
        return bool(self.transport.is_active())

    def close(self) -> None:
        self.client.close()


class SSHBackend:
    """Runs commands on hosts over SSH; see the module docstring for the behaviour.

    ``ssh_config``/``known_hosts`` override ``$FLEETLOG_SSH_CONFIG``/``$FLEETLOG_KNOWN_HOSTS``,
    which override ``~/.ssh/config``/``~/.ssh/known_hosts`` (``UserKnownHostsFile`` in the
    config applies when neither is given, and then ``/etc/ssh/ssh_known_hosts`` is read too).
    """

    name = "ssh"

    def __init__(
        self,
        *,
        accept_new_host_keys: bool = False,
        on_new_host_key: NewKeyCallback | None = None,
        ssh_config: str | None = None,
        known_hosts: str | None = None,
        connect_timeout: float = 10.0,
        keepalive: int = 30,
        max_output: int = DEFAULT_MAX_OUTPUT,
        max_sessions: int = 10,
        allow_agent: bool = True,
        look_for_keys: bool = True,
        env_mode: EnvMode = "export",
    ) -> None:
        if env_mode not in ("export", "request"):
            raise ValueError(f"env_mode must be 'export' or 'request', not {env_mode!r}")
        self.accept_new_host_keys = accept_new_host_keys
        self.on_new_host_key = on_new_host_key
        self.connect_timeout = connect_timeout
        self.keepalive = keepalive
        self.max_output = max_output
        self.max_sessions = max_sessions
        self.allow_agent = allow_agent
        self.look_for_keys = look_for_keys
        self.env_mode = env_mode
        self.config = load_config(ssh_config)
        self._known_hosts_override = known_hosts or os.environ.get(ENV_KNOWN_HOSTS) or None
        self._stores: dict[str, KnownHosts] = {}
        self._lock = threading.Lock()
        self._conns: dict[tuple[str, ...], _Conn] = {}
        self._route_locks: dict[tuple[str, ...], threading.Lock] = {}
        self._sessions: dict[str, threading.BoundedSemaphore] = {}
        self._routes: dict[str, tuple[Target, tuple[str, ...]]] = {}
        self._closed = False

    # ------------------------------------------------------------------ running
    def run(
        self,
        host: str,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        started = time.monotonic()
        remote, requested = self._with_env(host, command, env)
        with self._session_slot(host):
            conn, chan = self._open_channel(host)
            try:
                return self._exec(host, conn, chan, command, remote, requested, timeout, started)
            finally:
                _close_quietly(chan)

    def observe_command(self, host: str, command: str, *, timeout: float | None = 60.0) -> str:
        """Run a read-only probe and return its stripped stdout; a non-zero exit is a
        :class:`BackendError` (for the reconciler: no status is better than a wrong one)."""
        res = self.run(host, command, timeout=timeout)
        if not res.ok:
            lines = (res.stderr or res.stdout).strip().splitlines()
            detail = f": {lines[-1]}" if lines else ""
            raise BackendError(
                host=host, reason=f"probe `{command}` exited {res.exit_code}{detail}"
            )
        return res.stdout.strip()

    def _with_env(
        self, host: str, command: str, env: Mapping[str, str] | None
    ) -> tuple[str, dict[str, str]]:
        """The remote command line and the env requests to send before it.

        Stdin is ``/dev/null`` (like ``ssh -n``): a command that reads it, a prompt, sees
        EOF at once instead of hanging until the timeout. Redirecting in the command
        rather than sending an SSH EOF after ``exec`` avoids a protocol race: an EOF sent
        after a fast command's channel is already closed makes sshd drop the connection,
        and with it every other command in flight on that host.
        """
        prefix = "exec </dev/null; "
        if not env:
            return prefix + command, {}
        bad = [k for k in env if not _ENV_NAME.match(k)]
        if bad:
            raise BackendError(host=host, reason=f"invalid environment variable name {bad[0]!r}")
        if self.env_mode == "request":
            return prefix + command, dict(env)
        assignments = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        return f"{prefix}export {assignments}; {command}", {}

    def _exec(
        self,
        host: str,
        conn: _Conn,
        chan: Channel,
        command: str,
        remote: str,
        requested: dict[str, str],
        timeout: float | None,
        started: float,
    ) -> CommandResult:
        out, err = TailBuffer(self.max_output), TailBuffer(self.max_output)
        deadline = None if timeout is None else started + timeout
        sent = False  # from the exec request on, the command may be running remotely
        try:
            if requested:
                chan.update_environment(requested)
            sent = True
            chan.exec_command(remote)
            fd = chan.fileno()
            while not (chan.eof_received or chan.closed):
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise self._timed_out(host, chan, command, timeout, out, err)
                select.select([fd], [], [], remaining)
                _drain(chan, out, err)
            _drain(chan, out, err)
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not chan.status_event.wait(remaining):
                raise self._timed_out(host, chan, command, timeout, out, err)
            _drain(chan, out, err)
        except (paramiko.SSHException, EOFError, OSError) as exc:
            alive = conn.alive()
            if not alive:
                self._drop(host, conn)
            failure = CommandInDoubt if sent else BackendError
            what = "the session failed" if alive else "connection lost"
            raise failure(
                host=host,
                reason=f"{what} {'while running' if sent else 'before running'} a command: {exc}",
                stdout=out.text(),
                stderr=err.text(),
            ) from exc
        code = chan.exit_status
        if code == -1:
            if not chan.eof_received or not conn.alive():
                self._drop(host, conn)
                reason = "connection lost while running a command"
            else:
                signal = getattr(chan, "exit_signal", None)
                reason = "the remote command ended without an exit status (killed?)"
                if signal:
                    reason = f"the remote command was killed by SIG{signal}"
            raise CommandInDoubt(host=host, reason=reason, stdout=out.text(), stderr=err.text())
        return CommandResult(code, out.text(), err.text(), time.monotonic() - started)

    def _timed_out(
        self,
        host: str,
        chan: Channel,
        command: str,
        timeout: float | None,
        out: TailBuffer,
        err: TailBuffer,
    ) -> CommandTimeout:
        _signal(chan, "KILL")
        _close_quietly(chan)
        return CommandTimeout(
            host=host, timeout=timeout, command=command, stdout=out.text(), stderr=err.text()
        )

    # ------------------------------------------------------------------ sessions
    def _session_slot(self, host: str) -> threading.BoundedSemaphore:
        with self._lock:
            sem = self._sessions.get(host)
            if sem is None:
                sem = self._sessions[host] = threading.BoundedSemaphore(self.max_sessions)
            return sem

    def _open_channel(self, host: str) -> tuple[_Conn, Channel]:
        """A session channel on the host's pooled connection. A pooled connection that
        turns out dead is replaced once: nothing has run yet, so that is safe. A refusal
        on a live connection leaves it alone: other commands may be running on it."""
        for attempt in (1, 2):
            conn, fresh = self._connection(host)
            try:
                return conn, conn.transport.open_session(timeout=self.connect_timeout)
            except paramiko.ChannelException as exc:
                raise BackendError(
                    host=host, reason=f"the server refused a session: {exc.text} ({exc.code})"
                ) from exc
            except (paramiko.SSHException, EOFError, OSError) as exc:
                if conn.alive():
                    raise BackendError(host=host, reason=f"cannot open a session: {exc}") from exc
                self._drop(host, conn)
                if fresh or attempt == 2:
                    raise BackendError(host=host, reason=f"connection lost: {exc}") from exc
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ the pool
    def _route(self, host: str) -> tuple[Target, tuple[str, ...]]:
        cached = self._routes.get(host)
        if cached is None:
            target = resolve(self.config, host)
            cached = self._routes[host] = (target, (*target.jumps, host))
        return cached

    def _connection(self, host: str) -> tuple[_Conn, bool]:
        target, route = self._route(host)
        return self._route_conn(route, target)

    def _drop(self, host: str, conn: _Conn) -> None:
        """Forget the host's dead connection (unless another thread already replaced
        it); the next command reconnects."""
        _target, route = self._route(host)
        with self._lock:
            if self._conns.get(route) is conn:
                del self._conns[route]
        conn.close()

    def _route_conn(self, route: tuple[str, ...], target: Target) -> tuple[_Conn, bool]:
        """The pooled connection for ``route`` (jump hops..., host): (conn, freshly made)."""
        conn = self._conns.get(route)
        if conn is not None and conn.alive():
            return conn, False
        with self._lock:
            if self._closed:
                raise BackendError(host=route[-1], reason="the ssh backend is closed")
            lock = self._route_locks.setdefault(route, threading.Lock())
        with lock:
            conn = self._conns.get(route)
            if conn is not None and conn.alive():
                return conn, False
            if conn is not None:
                conn.close()
            via = None
            if len(route) > 1:
                hop = resolve_hop(self.config, route[-2])
                via = self._route_conn(route[:-1], hop)[0].transport
            conn = self._connect(target, via, label=_label(route))
            with self._lock:
                self._conns[route] = conn
            return conn, True

    def _connect(self, target: Target, via: paramiko.Transport | None, label: str) -> _Conn:
        timeout = target.connect_timeout or self.connect_timeout
        files = [f for f in target.identity_files if os.path.exists(f)]
        only = target.identities_only
        sock = _open_socket(target, via, timeout, label)
        if not files and (only or not (self.allow_agent or self.look_for_keys)):
            sock.close()
            missing = ", ".join(target.identity_files) or "none configured"
            raise BackendError(
                host=label, reason=f"no identity to authenticate with (IdentityFile: {missing})"
            )
        store = self._store(target)
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(
            make_policy(
                store,
                host=label,
                known_name=target.known_hosts_name,
                address=target.address,
                accept_new=self.accept_new_host_keys,
                on_new=self.on_new_host_key,
            )
        )
        known = store.lookup(target.known_hosts_name)

        def transport_factory(sock: Any, **kwargs: Any) -> paramiko.Transport:
            t = paramiko.Transport(sock, **kwargs)
            if known:
                opts = t.get_security_options()
                opts.key_types = preferred_key_types(known, list(opts.key_types))
            return t

        try:
            client.connect(
                target.hostname,
                port=target.port,
                username=target.user,
                key_filename=files or None,
                allow_agent=self.allow_agent and not only,
                look_for_keys=self.look_for_keys and not only,
                timeout=timeout,
                banner_timeout=timeout,
                auth_timeout=timeout,
                sock=sock,
                transport_factory=transport_factory,
            )
        except BackendError:
            client.close()
            raise
        except paramiko.AuthenticationException as exc:
            client.close()
            tried = ", ".join(files) or "no key files"
            raise BackendError(
                host=label,
                reason=f"authentication failed as {target.user}@{target.address} "
                f"(keys: {tried}{'' if only or not self.allow_agent else '; agent'}): {exc}",
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            client.close()
            raise BackendError(
                host=label, reason=f"SSH handshake with {target.address} failed: {exc}"
            ) from exc
        transport = client.get_transport()
        assert transport is not None
        transport.set_keepalive(target.keepalive or self.keepalive)
        return _Conn(client, transport)

    def _store(self, target: Target) -> KnownHosts:
        path = self._known_hosts_override or target.known_hosts or DEFAULT_KNOWN_HOSTS
        with self._lock:
            store = self._stores.get(path)
            if store is None:
                extra = () if self._known_hosts_override else (GLOBAL_KNOWN_HOSTS,)
                store = self._stores[path] = KnownHosts(path, extra)
            return store

    def pooled_routes(self) -> list[tuple[str, ...]]:
        """The live pooled connections, each as its route (jump hops..., host)."""
        with self._lock:
            return sorted(route for route, conn in self._conns.items() if conn.alive())

    def close(self) -> None:
        """Close every pooled connection, hosts before the jump hosts they go through."""
        with self._lock:
            self._closed = True
            conns = sorted(self._conns.items(), key=lambda kv: -len(kv[0]))
            self._conns.clear()
        for _route, conn in conns:
            conn.close()

    def __enter__(self) -> SSHBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _label(route: tuple[str, ...]) -> str:
    """How errors name a hop: the host itself, or ``jump (jump host for node3)``."""
    return route[-1] if len(route) == 1 else f"{route[-1]} (via {' -> '.join(route[:-1])})"


def _open_socket(target: Target, via: paramiko.Transport | None, timeout: float, label: str) -> Any:
    """A connected socket with TCP_NODELAY, or a direct-tcpip channel through ``via``."""
    if via is not None:
        try:
            return via.open_channel(
                "direct-tcpip", (target.hostname, target.port), ("127.0.0.1", 0), timeout=timeout
            )
        except paramiko.ChannelException as exc:
            raise BackendError(
                host=label, reason=f"jump host cannot reach {target.address}: {exc.text}"
            ) from exc
        except (paramiko.SSHException, EOFError, OSError) as exc:
            raise BackendError(
                host=label, reason=f"jump host cannot open a channel to {target.address}: {exc}"
            ) from exc
    try:
        infos = socket.getaddrinfo(target.hostname, target.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise BackendError(
            host=label, reason=f"cannot resolve {target.hostname}: {exc.strerror}"
        ) from exc
    last: OSError | None = None
    for family, kind, proto, _canon, addr in infos:
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.settimeout(timeout)
            sock.connect(addr)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    if isinstance(last, ConnectionRefusedError):
        reason = f"connection refused by {target.address}"
    elif isinstance(last, TimeoutError):
        reason = f"connection to {target.address} timed out after {timeout:g}s"
    else:
        reason = f"cannot connect to {target.address}: {getattr(last, 'strerror', None) or last}"
    raise BackendError(host=label, reason=reason) from last


def _drain(chan: Channel, out: TailBuffer, err: TailBuffer) -> None:
    while chan.recv_ready():
        out.write(chan.recv(65536))
    while chan.recv_stderr_ready():
        err.write(chan.recv_stderr(65536))


def _close_quietly(chan: Channel) -> None:
    try:
        chan.close()
    except (paramiko.SSHException, EOFError, OSError):
        pass


def _signal(chan: Channel, name: str) -> None:
    """Send an RFC 4254 ``signal`` request (paramiko has no API for it); sshd delivers
    it to the session's process group. Best effort: the channel is closed right after.

    Sent under the channel's lock, so it cannot follow our reply to the server's CLOSE
    (paramiko sends that after taking the same lock): a request for a channel sshd has
    already freed makes it drop the whole connection.
    """
    from paramiko.common import cMSG_CHANNEL_REQUEST
    from paramiko.message import Message

    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string("signal")
    m.add_boolean(False)
    m.add_string(name)
    with chan.lock:
        if chan.closed or chan.transport is None:
            return
        try:
            chan.transport._send_user_message(m)
        except (paramiko.SSHException, EOFError, OSError):
            pass
