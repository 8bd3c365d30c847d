"""Where to connect for a host name: ``~/.ssh/config`` resolved with ``paramiko.SSHConfig``.

Honoured: ``Host``/``Match`` blocks (paramiko's matching), ``HostName``, ``User``,
``Port``, ``IdentityFile``, ``IdentitiesOnly``, ``ProxyJump`` (a comma-separated chain
of ``[user@]host[:port]``; each hop is itself looked up in the config, as OpenSSH does,
minus the hop's own ``ProxyJump``), ``HostKeyAlias``, ``UserKnownHostsFile``,
``ConnectTimeout`` and ``ServerAliveInterval``. ``Include`` and ``ProxyCommand`` are not
supported; ``/etc/ssh/ssh_config`` is not read.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fleetlog.engine.backends.base import BackendError

if TYPE_CHECKING:
    import paramiko

ENV_SSH_CONFIG = "FLEETLOG_SSH_CONFIG"
DEFAULT_SSH_CONFIG = "~/.ssh/config"
DEFAULT_PORT = 22


@dataclass(frozen=True, slots=True)
class Target:
    """One hop of a route, fully resolved."""

    name: str  # as the engine (or a ProxyJump list) named it
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    identities_only: bool
    jumps: tuple[str, ...]  # ProxyJump hops, first hop first
    host_key_alias: str | None
    known_hosts: str | None  # UserKnownHostsFile, when the config sets one
    connect_timeout: float | None
    keepalive: int | None

    @property
    def address(self) -> str:
        return f"{self.hostname}:{self.port}"

    @property
    def known_hosts_name(self) -> str:
        """How known_hosts names this host (OpenSSH: ``[host]:port`` off port 22)."""
        name = self.host_key_alias or self.hostname
        return name if self.port == DEFAULT_PORT else f"[{name}]:{self.port}"


def load_config(path: str | None) -> paramiko.SSHConfig:
    """The ssh_config at ``path`` (else ``$FLEETLOG_SSH_CONFIG``, else ``~/.ssh/config``);
    an empty one when the default file does not exist. A file named explicitly must exist."""
    import paramiko

    explicit = path or os.environ.get(ENV_SSH_CONFIG)
    chosen = os.path.expanduser(explicit or DEFAULT_SSH_CONFIG)
    if not explicit and not os.path.exists(chosen):
        return paramiko.SSHConfig()
    try:
        return paramiko.SSHConfig.from_path(chosen)
    except (OSError, UnicodeDecodeError, paramiko.ConfigParseError) as exc:
        raise BackendError(host="ssh", reason=f"cannot read ssh config {chosen}: {exc}") from exc


def resolve(config: paramiko.SSHConfig, name: str) -> Target:
    """The route's final hop for an engine host name (its jumps are still names)."""
    opts = _lookup(config, name)
    jump = str(opts.get("proxyjump", "") or "")
    jumps = (
        ()
        if jump.lower() in ("", "none")
        else tuple(j.strip() for j in jump.split(",") if j.strip())
    )
    return _target(name, opts, jumps)


def resolve_hop(config: paramiko.SSHConfig, spec: str) -> Target:
    """A ProxyJump hop ``[user@]host[:port]``: looked up like any host, the explicit
    user and port winning; the hop's own ProxyJump is ignored (the chain says it all)."""
    user, _, hostport = spec.rpartition("@")
    host, port = hostport, None
    if hostport.startswith("["):  # [v6addr]:port
        inner, _, rest = hostport[1:].partition("]")
        host, port = inner, rest.removeprefix(":") or None
    elif hostport.count(":") == 1:
        host, port = hostport.split(":")
    opts = _lookup(config, host)
    if user:
        opts["user"] = user
    if port:
        opts["port"] = port
    return _target(spec, opts, ())


def _lookup(config: paramiko.SSHConfig, name: str) -> dict[str, object]:
    try:
        return dict(config.lookup(name))
    except Exception as exc:  # paramiko raises assorted errors for bad Match/tokens
        raise BackendError(host=name, reason=f"ssh config lookup failed: {exc}") from exc


def _target(name: str, opts: dict[str, object], jumps: tuple[str, ...]) -> Target:
    port_text = str(opts.get("port", DEFAULT_PORT))
    try:
        port = int(port_text)
    except ValueError:
        raise BackendError(host=name, reason=f"ssh config: bad Port {port_text!r}") from None
    files = opts.get("identityfile") or []
    identity_files = tuple(
        os.path.expanduser(str(f)) for f in (files if isinstance(files, list) else [files])
    )
    known = opts.get("userknownhostsfile")
    known_hosts = os.path.expanduser(str(known).split()[0]) if known else None
    return Target(
        name=name,
        hostname=str(opts.get("hostname", name)),
        port=port,
        user=str(opts.get("user") or getpass.getuser()),
        identity_files=identity_files,
        identities_only=str(opts.get("identitiesonly", "no")).lower() == "yes",
        jumps=jumps,
        host_key_alias=str(opts["hostkeyalias"]) if opts.get("hostkeyalias") else None,
        known_hosts=known_hosts,
        connect_timeout=_number(name, opts, "connecttimeout"),
        keepalive=int(n) if (n := _number(name, opts, "serveraliveinterval")) else None,
    )


def _number(name: str, opts: dict[str, object], key: str) -> float | None:
    raw = opts.get(key)
    if raw is None:
        return None
    try:
        return float(str(raw))
    except ValueError:
        raise BackendError(host=name, reason=f"ssh config: bad {key} {raw!r}") from None
