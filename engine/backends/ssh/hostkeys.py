"""Host key verification against known_hosts: no silent auto-add.

By default an unknown host is refused. With ``accept_new`` (``--accept-new-host-keys``,
OpenSSH's ``StrictHostKeyChecking accept-new``) a first-seen key is trusted: the
``on_new`` callback runs first (the CLI journals the fingerprint there, so an audit can
tell what was accepted), then the key is appended to the known_hosts file. A key that
differs from the recorded one is always refused, naming both fingerprints.

The check runs as paramiko's ``MissingHostKeyPolicy``: the client is given no keys of its
own, so paramiko hands every server key to us and we decide.
"""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fleetlog.engine.backends.base import BackendError

if TYPE_CHECKING:
    import paramiko

ENV_KNOWN_HOSTS = "FLEETLOG_KNOWN_HOSTS"
DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
GLOBAL_KNOWN_HOSTS = "/etc/ssh/ssh_known_hosts"

NewKeyCallback = Callable[[str, str, str], None]


class UnknownHostKey(BackendError):
    msg_fmt = (
        "unknown host key for %(host)s (%(address)s, %(key_type)s fingerprint "
        "%(fingerprint)s); add it to %(known_hosts)s or use --accept-new-host-keys"
    )


class HostKeyChanged(BackendError):
    msg_fmt = (
        "host key for %(host)s (%(address)s) has CHANGED: it offers %(key_type)s "
        "%(fingerprint)s but %(known_hosts)s has %(expected_type)s %(expected)s; refusing "
        "to connect (a reinstalled host, or a man in the middle: check, then remove the "
        "old entry with ssh-keygen -R)"
    )


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's ``SHA256:<base64, unpadded>`` fingerprint of a public key."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode("ascii").rstrip("=")


class KnownHosts:
    """One known_hosts file (plus read-only extra files), safe to share across threads."""

    def __init__(self, path: str, extra: tuple[str, ...] = ()) -> None:
        import paramiko

        self.path = os.path.expanduser(path)
        self._lock = threading.Lock()
        self._keys = paramiko.HostKeys()
        self._extra = paramiko.HostKeys()
        _load(self._keys, self.path)
        for extra_path in extra:
            _load(self._extra, extra_path)

    def lookup(self, name: str) -> dict[str, paramiko.PKey]:
        """Every recorded key of ``name``, by key type ({} when unknown)."""
        with self._lock:
            found: dict[str, Any] = {}
            for store in (self._extra, self._keys):
                entry = store.lookup(name)
                if entry is not None:
                    found.update({t: entry[t] for t in entry.keys()})
            return found

    def add(self, name: str, key: paramiko.PKey) -> None:
        """Record ``key`` for ``name`` in memory and append it to the file (0600)."""
        with self._lock:
            current = self._keys.lookup(name)
            if current is not None and current.get(key.get_name()) == key:
                return
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, mode=0o700, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a") as f:
                f.write(f"{name} {key.get_name()} {key.get_base64()}\n")
            self._keys.add(name, key.get_name(), key)


def _load(store: paramiko.HostKeys, path: str) -> None:
    if not os.path.exists(path):
        return
    try:
        store.load(path)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise BackendError(host="ssh", reason=f"cannot read known_hosts {path}: {exc}") from exc


def preferred_key_types(known: dict[str, Any], offered: list[str]) -> list[str]:
    """Put the key types known_hosts has for a host first, so the server presents a key
    we can check (OpenSSH does the same); an RSA entry covers the rsa-sha2 signatures."""
    wanted: list[str] = []
    for key_type in known:
        if key_type == "ssh-rsa":
            wanted += ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"]
        else:
            wanted.append(key_type)
    first = [t for t in wanted if t in offered]
    return first + [t for t in offered if t not in first]


def make_policy(
    store: KnownHosts,
    *,
    host: str,
    known_name: str,
    address: str,
    accept_new: bool,
    on_new: NewKeyCallback | None,
) -> Any:
    """A paramiko ``MissingHostKeyPolicy`` that checks the server key of one connection."""
    import paramiko

    class Check(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]  # paramiko is untyped
        def missing_host_key(self, client: Any, hostname: str, key: paramiko.PKey) -> None:
            known = store.lookup(known_name)
            key_type = key.get_name()
            fields = {
                "host": host,
                "address": address,
                "key_type": key_type,
                "fingerprint": fingerprint(key),
                "known_hosts": store.path,
            }
            if known:
                expected = known.get(key_type)
                if expected == key:
                    return
                if expected is None:  # only other types recorded: not the key we know
                    expected = next(iter(known.values()))
                raise HostKeyChanged(
                    **fields,
                    expected_type=expected.get_name(),
                    expected=fingerprint(expected),
                )
            if not accept_new:
                raise UnknownHostKey(**fields)
            if on_new is not None:
                on_new(host, key_type, fields["fingerprint"])  # journal before trusting
            try:
                store.add(known_name, key)
            except OSError as exc:
                raise BackendError(
                    host=host, reason=f"cannot record the new host key in {store.path}: {exc}"
                ) from exc

    return Check()
