"""The SSH lab: real OpenSSH ``sshd`` processes on loopback serving simulated hosts.

Layout of one lab (a fresh temp dir per test session, world-readable so the lab user can
reach it; ``pytest``'s own temp dirs are 0700 and cannot be used)::

    <root>/src/fleetlog/    a byte-compiled copy of the ``fleetlog`` namespace without the DSL
                            (the repo and root's pyenv Python may not be readable by the
                            lab user; the fake tools need only the standard library)
    <root>/bin/<host>/      the fake tools as shims (``install_shims``), host name baked in
    <root>/bin/common/      lab helpers (``argv_json``)
    <root>/world/world.db   ONE sim world shared by every host (tools such as ``escli
                            trustFrom=node1`` read another host's state); owned by the lab user
    <root>/sshd<i>/         config, host key and log of sshd process i
    <root>/client/          the client's key pair, known_hosts and ssh_config

Hosts ``node1..nodeN`` listen on ``127.0.0.(10+i)``, all on one port; one sshd process
serves at most :data:`ADDRESSES_PER_SSHD` of them (OpenSSH's MAX_LISTEN_SOCKS is 16). An
sshd tells its hosts apart by the address the client connected to: a ``Match
LocalAddress`` block per host sets ``PATH`` to that host's shim dir (and
``FLEETLOG_SIM_HOST``) with ``SetEnv``.

Sessions log in as a dedicated user (:data:`LAB_USER`) with ``/bin/sh`` and an empty
home: root's shell start-up (pyenv) would cost ~120 ms per command. ``UsePAM no`` needs
the user's password field to be ``*`` rather than the locked ``!`` that ``useradd`` leaves.
"""

from __future__ import annotations

import atexit
import compileall
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fleetlog.engine.backends.sim import World
from fleetlog.engine.backends.sim.tool_main import install_shims

LAB_USER = "fleetlog-lab"
LAB_HOME = "/var/lib/fleetlog-lab"
SSHD = "/usr/sbin/sshd"
ADDRESSES_PER_SSHD = 10
PROJECT_ROOT = Path(__file__).resolve().parents[2]
#: The packages the fake tools import (standard library otherwise).
#: Where each folder of the repository goes under ``<root>/src`` (its import name).
TOOL_PACKAGES = {
    "fleetlog": "fleetlog",
    "engine": "fleetlog/engine",
    "journal": "fleetlog/journal",
    "machines": "fleetlog/machines",
}
#: Pythons the lab user may be able to run, best first.
PYTHON_CANDIDATES = ("/usr/bin/python3", "/usr/local/bin/python3")

ARGV_JSON = """#!{python}
import json, sys
print(json.dumps(sys.argv[1:]))
"""


class LabUnavailable(Exception):
    """The lab cannot run on this machine (no sshd, not root, ...)."""


def unavailable_reason() -> str | None:
    """Why the lab cannot start here, or None when it can."""
    if not os.path.exists(SSHD):
        return f"{SSHD} is missing (apt-get install openssh-server)"
    if shutil.which("ssh-keygen") is None:
        return "ssh-keygen is missing (apt-get install openssh-client)"
    if os.geteuid() != 0:
        return "the SSH lab runs sshd as root (to log in as its own user)"
    if _lab_python() is None:
        return f"no Python for the lab user among {', '.join(PYTHON_CANDIDATES)}"
    return None


def _lab_python() -> str | None:
    for candidate in PYTHON_CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@dataclass(frozen=True)
class LabHost:
    name: str
    address: str
    port: int
    sshd: int  # index of the sshd process serving it


@dataclass
class Sshd:
    index: int
    config: Path
    log: Path
    host_key: Path
    proc: subprocess.Popen[bytes] | None = None


@dataclass
class Lab:
    """A running lab. Create with :func:`start_lab`; :meth:`stop` leaves nothing running."""

    root: Path
    hosts: list[LabHost]
    port: int
    user: str
    world_path: str
    client_key: Path
    known_hosts: Path
    ssh_config: Path
    sshds: list[Sshd] = field(default_factory=list)

    # -- addressing ----------------------------------------------------------------------
    def host(self, name: str) -> LabHost:
        return next(h for h in self.hosts if h.name == name)

    @property
    def names(self) -> list[str]:
        return [h.name for h in self.hosts]

    def host_key_line(self, name: str) -> str:
        """The known_hosts line for ``name``'s real host key."""
        h = self.host(name)
        key = self.sshds[h.sshd].host_key.with_suffix(".pub").read_text().split()
        return f"[{h.address}]:{h.port} {key[0]} {key[1]}\n"

    def write_known_hosts(self, path: Path, names: Iterable[str] | None = None) -> Path:
        """A known_hosts file holding the real keys of ``names`` (default: every host)."""
        chosen = self.names if names is None else list(names)
        path.write_text("".join(self.host_key_line(n) for n in chosen))
        return path

    def ssh_config_text(
        self,
        names: Iterable[str] | None = None,
        *,
        identity: Path | None = None,
        overrides: dict[str, dict[str, str]] | None = None,
    ) -> str:
        """An ssh_config mapping each lab host name to its address and port."""
        chosen = self.names if names is None else list(names)
        overrides = overrides or {}
        blocks = []
        for name in chosen:
            h = self.host(name)
            opts = {
                "HostName": h.address,
                "Port": str(h.port),
                "User": self.user,
                "IdentityFile": str(identity or self.client_key),
                "IdentitiesOnly": "yes",
                **overrides.get(name, {}),
            }
            blocks.append(f"Host {name}\n" + "".join(f"    {k} {v}\n" for k, v in opts.items()))
        return "\n".join(blocks)

    def world(self) -> World:
        return World(self.world_path)

    def reset_world(self) -> None:
        """Forget every fault and every host's state (between tests)."""
        world = self.world()
        try:
            world.clear_faults()
            for name in world.hosts():
                world.set_host_state(name, {})
        finally:
            world.close()

    # -- faults of the transport itself ------------------------------------------------
    def kill_sessions_running(self, *argv_tail: str) -> int:
        """SIGKILL the per-connection sshd processes serving a command whose argv ends
        with ``argv_tail`` (a dropped connection mid-command). Returns how many died."""
        listeners = {s.proc.pid for s in self.sshds if s.proc is not None}
        tail = list(argv_tail)
        victims: set[int] = set()
        for pid, argv in _processes():
            if argv[-len(tail) :] != tail:
                continue
            # Walk up: command -> sh -> sshd: user@notty -> sshd: user [priv] -> listener.
            cur = _parent(pid)
            while cur is not None and cur > 1 and cur not in listeners:
                if _comm(cur) == "sshd":
                    victims.add(cur)
                cur = _parent(cur)
        for pid in victims:
            _kill(pid, signal.SIGKILL)
        return len(victims)

    def kill_commands_running(self, *argv_tail: str) -> int:
        """SIGKILL the lab user's processes whose argv ends with ``argv_tail`` (commands
        orphaned by a killed session). Returns how many there were."""
        uid = pwd.getpwnam(self.user).pw_uid
        tail = list(argv_tail)
        victims = [
            pid for pid, argv in _processes() if argv[-len(tail) :] == tail and _uid(pid) == uid
        ]
        for pid in victims:
            _kill(pid, signal.SIGKILL)
        return len(victims)

    # -- lifecycle -----------------------------------------------------------------------
    def stop(self) -> None:
        """Kill every sshd we started and every process they spawned."""
        procs = [s.proc for s in self.sshds if s.proc is not None]
        doomed: set[int] = set()
        for proc in procs:
            doomed |= _descendants(proc.pid)
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for pid in doomed:
            _kill(pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(timeout=10)
        for s in self.sshds:
            s.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def start_lab(n_hosts: int = 20, *, user: str = LAB_USER) -> Lab:
    """Start ``ceil(n_hosts / ADDRESSES_PER_SSHD)`` sshd processes serving ``node1..N``."""
    reason = unavailable_reason()
    if reason is not None:
        raise LabUnavailable(reason)
    python = _lab_python()
    assert python is not None
    _ensure_user(user)
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # sshd's privilege separation dir

    root = Path(tempfile.mkdtemp(prefix="fleetlog-lab-"))
    root.chmod(0o755)
    try:
        return _start(root, n_hosts, user, python)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _start(root: Path, n_hosts: int, user: str, python: str) -> Lab:
    pw = pwd.getpwnam(user)
    src = root / "src"
    for folder, target in TOOL_PACKAGES.items():
        shutil.copytree(
            PROJECT_ROOT / folder,
            src / target,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        )
    # Byte-compile as root: the lab user cannot write __pycache__ into this tree.
    compileall.compile_dir(str(src), quiet=1)

    world_dir = root / "world"
    world_dir.mkdir()
    world_path = str(world_dir / "world.db")
    World(world_path).close()  # create it, then hand it (and its WAL/shm) to the lab user
    for path in [world_dir, *world_dir.iterdir()]:
        os.chown(path, pw.pw_uid, pw.pw_gid)

    common = root / "bin" / "common"
    common.mkdir(parents=True)
    helper = common / "argv_json"
    helper.write_text(ARGV_JSON.format(python=python))
    helper.chmod(0o755)

    port = _free_port()
    hosts = [
        LabHost(f"node{i}", f"127.0.0.{10 + i}", port, (i - 1) // ADDRESSES_PER_SSHD)
        for i in range(1, n_hosts + 1)
    ]
    for h in hosts:
        install_shims(root / "bin" / h.name, world_path, h.name, python=python)

    client = root / "client"
    client.mkdir(mode=0o700)
    client_key = client / "id_ed25519"
    _keygen(client_key)
    authorized = root / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    authorized.chmod(0o644)

    lab = Lab(
        root=root,
        hosts=hosts,
        port=port,
        user=user,
        world_path=world_path,
        client_key=client_key,
        known_hosts=client / "known_hosts",
        ssh_config=client / "ssh_config",
    )
    n_sshd = max(h.sshd for h in hosts) + 1
    for i in range(n_sshd):
        d = root / f"sshd{i}"
        d.mkdir(mode=0o700)
        sshd = Sshd(i, d / "sshd_config", d / "sshd.log", d / "host_ed25519")
        _keygen(sshd.host_key)
        served = [h for h in hosts if h.sshd == i]
        sshd.config.write_text(_sshd_config(lab, sshd, served, src))
        lab.sshds.append(sshd)

    _LIVE.append(lab)
    try:
        for sshd in lab.sshds:
            _launch(sshd, [h.address for h in hosts if h.sshd == sshd.index], port)
    except BaseException:
        lab.stop()
        raise
    lab.write_known_hosts(lab.known_hosts)
    lab.ssh_config.write_text(lab.ssh_config_text())
    return lab


def _sshd_config(lab: Lab, sshd: Sshd, served: list[LabHost], src: Path) -> str:
    lines = [
        f"Port {lab.port}",
        *(f"ListenAddress {h.address}" for h in served),
        f"HostKey {sshd.host_key}",
        "PidFile none",
        "UsePAM no",
        "StrictModes no",
        "PubkeyAuthentication yes",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        f"AuthorizedKeysFile {lab.root / 'authorized_keys'}",
        f"AllowUsers {lab.user}",
        "PermitRootLogin no",
        "AllowTcpForwarding yes",  # ProxyJump through a lab host
        "MaxStartups 200",  # the benchmark and tests connect to many hosts at once
        "MaxSessions 64",
        "UseDNS no",
        "PrintMotd no",
        "AcceptEnv FLEETLOG_TEST_*",  # the backend's env="request" mode
        "LogLevel VERBOSE",
    ]
    # Only the first SetEnv that applies counts, so each Match carries the full set and
    # there is no global SetEnv.
    bin_dir = lab.root / "bin"
    for h in served:
        path = f"{bin_dir / h.name}:{bin_dir / 'common'}:/usr/local/bin:/usr/bin:/bin"
        lines += [
            f"Match LocalAddress {h.address}",
            f"    SetEnv PATH={path} PYTHONPATH={src} FLEETLOG_SIM_HOST={h.name}",
        ]
    return "\n".join(lines) + "\n"


def _launch(sshd: Sshd, addresses: list[str], port: int, wait: float = 15.0) -> None:
    log = open(sshd.log, "wb")
    try:
        sshd.proc = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(sshd.config)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
        )
    finally:
        log.close()
    deadline = time.monotonic() + wait
    wanted = {f"Server listening on {a} port {port}." for a in addresses}
    while True:
        text = sshd.log.read_text(errors="replace")
        if all(w in text for w in wanted):
            return
        if sshd.proc.poll() is not None or "Bind to port" in text or time.monotonic() > deadline:
            raise LabUnavailable(f"sshd {sshd.index} did not start:\n{text}")
        time.sleep(0.02)


def _ensure_user(user: str) -> None:
    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--no-create-home",
                "--home-dir",
                LAB_HOME,
                "--shell",
                "/bin/sh",
                "--user-group",
                user,
            ],
            check=True,
        )
    pw = pwd.getpwnam(user)
    if pw.pw_shell != "/bin/sh" or not _password_is_star(user):
        subprocess.run(["usermod", "-p", "*", "-s", "/bin/sh", user], check=True)
    os.makedirs(pw.pw_dir, mode=0o755, exist_ok=True)
    os.chown(pw.pw_dir, pw.pw_uid, pw.pw_gid)


def _password_is_star(user: str) -> bool:
    try:
        with open("/etc/shadow") as f:
            for line in f:
                fields = line.split(":")
                if fields[0] == user:
                    return fields[1] == "*"
    except OSError:
        pass
    return False


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
        check=True,
        stdin=subprocess.DEVNULL,
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# -- /proc helpers (no procps needed) ----------------------------------------------------
def _processes() -> list[tuple[int, list[str]]]:
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        out.append((int(entry), [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]))
    return out


def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # comm may contain spaces and parens: split after the last ')'.
    head, _, rest = text.rpartition(")")
    return [head.split("(", 1)[1], *rest.split()]


def _parent(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields else None


def _comm(pid: int) -> str:
    fields = _stat_fields(pid)
    return fields[0] if fields else ""


def _uid(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


def _descendants(root_pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for pid, _argv in _processes():
        ppid = _parent(pid)
        if ppid is not None:
            children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    todo = [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _kill(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


_LIVE: list[Lab] = []


@atexit.register
def _stop_all() -> None:
    """Last resort (a test run interrupted before fixture teardown)."""
    for lab in _LIVE:
        if any(s.proc is not None for s in lab.sshds):
            lab.stop()
