"""Who holds a lease, and whether that process is provably gone.

An owner is written into the lease row and its ``lock.*`` events as
``host:pid:nonce;b=<boot id>;ns=<pid namespace>;t=<start time>;m=<machine id>``. The head
is for people; the tail identifies the process beyond doubt: the kernel's boot id
(random per boot), the PID namespace the pid is numbered in, and the process's start time
(clock ticks since boot, so a reused pid is not mistaken for the owner). The machine id
is recorded too, for the audit.

A claimant may break a live lease at once only when it can *prove* the owner is gone:
same boot and same PID namespace, and no process with that pid and start time. A host
name proves nothing (two machines, two containers or two PID namespaces can share one),
so an owner elsewhere, in another namespace, or written by an older fleetlog without the
tail, keeps its lease until it expires.
"""

from __future__ import annotations

import functools
import os
import socket
import uuid
from dataclasses import dataclass, replace

from fleetlog.engine.runtime.reintroduce import reintroduced


@dataclass(frozen=True)
class OwnerId:
    host: str
    pid: int
    nonce: str
    boot: str
    pid_ns: str
    start: str
    machine: str

    def __str__(self) -> str:
        return (
            f"{self.host}:{self.pid}:{self.nonce};b={self.boot};ns={self.pid_ns};"
            f"t={self.start};m={self.machine}"
        )

    @classmethod
    def parse(cls, owner: str) -> OwnerId | None:
        """The identity in ``owner``, or None when it has none (an older fleetlog's
        ``host:pid:nonce``, or anything else)."""
        head, sep, tail = owner.partition(";")
        if not sep:
            return None
        host, _, rest = head.partition(":")
        pid_text, _, nonce = rest.partition(":")
        fields = dict(part.partition("=")[::2] for part in tail.split(";"))
        if not pid_text.isdigit() or not fields.get("b") or not fields.get("ns"):
            return None
        return cls(
            host,
            int(pid_text),
            nonce,
            fields["b"],
            fields["ns"],
            fields.get("t", ""),
            fields.get("m", ""),
        )


def _read(path: str) -> str:
    try:
        with open(path, encoding="ascii") as fp:
            return fp.read().strip()
    except (OSError, UnicodeDecodeError):
        return ""


@functools.cache
def _machine() -> str:
    return _read("/etc/machine-id") or _read("/var/lib/dbus/machine-id")


@functools.cache
def _boot() -> str:
    return _read("/proc/sys/kernel/random/boot_id")


def _pid_namespace() -> str:
    """The inode of this process's PID namespace (``pid:[4026531836]`` -> the number)."""
    try:
        return os.readlink("/proc/self/ns/pid").partition("[")[2].rstrip("]")
    except OSError:
        return ""


def process_start(pid: int) -> str | None:
    """When process ``pid`` started (clock ticks since boot), "Z" for a zombie, or None
    when there is no such process in this PID namespace."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fp:
            fields = fp.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError, UnicodeDecodeError):
        return None
    if fields and fields[0] == "Z":
        return "Z"
    # After the command name: state is field 3 of stat(5); starttime is field 22.
    return fields[19] if len(fields) > 19 else None


@functools.lru_cache(maxsize=4)
def _this_process(pid: int) -> OwnerId:
    """This process's identity, read once per pid (a forked child has its own)."""
    return OwnerId(
        socket.gethostname(),
        pid,
        "",
        _boot(),
        _pid_namespace(),
        process_start(pid) or "",
        _machine(),
    )


def local(nonce: str | None = None) -> OwnerId:
    """This process, as an owner."""
    return replace(_this_process(os.getpid()), nonce=nonce or uuid.uuid4().hex[:8])


def new_owner() -> str:
    """A fresh owner string for one transition's leases, in this process."""
    return str(local())


def owner_is_dead(owner: str) -> bool:
    """True only when ``owner`` was a process of this boot and PID namespace that no
    longer runs (or is a zombie, or its pid now belongs to a later process)."""
    if reintroduced("identity"):
        return _dead_by_host_name(owner)
    ident = OwnerId.parse(owner)
    if ident is None:
        return False
    here = local(nonce="-")
    if not here.boot or not here.pid_ns:
        return False  # cannot tell where we are: never guess
    if (ident.boot, ident.pid_ns, ident.machine) != (here.boot, here.pid_ns, here.machine):
        return False
    if ident.pid == here.pid:  # this very process, alive, unless the pid was reused
        return bool(ident.start) and ident.start != here.start
    started = process_start(ident.pid)
    return started is None or started == "Z" or (bool(ident.start) and started != ident.start)


def _dead_by_host_name(owner: str) -> bool:
    """The test hook ``identity`` (``reintroduce``): the host-name identity fleetlog
    trusted before, which takes a live lease from a process in another PID namespace."""
    host, _, rest = owner.partition(":")
    pid_text = rest.split(":", 1)[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    if int(pid_text) == os.getpid():
        return False
    return process_start(int(pid_text)) in (None, "Z")
