"""Fake Linux basics shared by the diskless, xCAT and Hare families.

A host's state holds a tiny filesystem (``fs``: path -> entry), mounts, systemd units,
network addresses and its hostname. Paths under a *shared volume* (``/volspoms1``, the
GlusterFS volume of Ocean Stack's diskless images; ``/HA-data``, the shared data
directory of xCAT's shared-data MN HA) live on a pseudo-host (``gluster:volspoms1``,
``nfs:HA-data``) that every host mounts, so what one host writes there the others read.

Supported: ``test -e|-f|-d|-L PATH`` (with ``!``), ``mkdir [-p]``, ``rm [-f] [-r]``,
``mv``, ``cp [-a|-r]``, ``ln -s[fn]``, ``readlink``, ``cat``, ``scp [-q] HOST:PATH DEST``,
``mount [-t T] [-o OPTS] SRC DIR``, ``umount``, ``mountpoint -q DIR``, ``mkfs.xfs -f DEV``,
``blockdev --setro DEV...``, ``partprobe DEV``, ``lvm vgchange|lvchange -ay X``,
``systemd-firstboot --root=R --hostname=H [--force]``, ``systemctl [--root R]
start|stop|restart|enable|disable|is-active|is-enabled UNIT...``, ``ip addr add|del
A/M dev NIC [label L]``, ``ip -o addr show [dev NIC]``, ``ping -c N [-W S] ADDR``,
``hostname [NAME]``.

Quirks a test seeds into a host's state (``state["quirks"]``) reproduce the seeds'
failure modes: ``silent_start: {unit: n}`` — the next n ``systemctl start UNIT`` exit 0
but leave the unit inactive (xcatha.py trusts exit codes; the machines must probe);
``silent_ip_del: n`` — the next n ``ip addr del`` exit 0 and remove nothing.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable
from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult, sim_tool

#: Shared volumes every simulated host mounts: path prefix -> pseudo-host holding it.
SHARED_VOLUMES: dict[str, str] = {
    "/volspoms1": "gluster:volspoms1",
    "/HA-data": "nfs:HA-data",
}
PSEUDO_PREFIXES = ("gluster:", "nfs:")


#: Directories every simulated host has (the DisklessTrap's and a stock install's).
BASE_DIRS = frozenset(
    {
        "/etc",
        "/etc/iscsi",
        "/dev",
        "/dev/shm",
        "/sysroot",
        "/run",
        "/tmp",
        "/var",
        "/var/lib",
        "/root",
        "/boot",
        "/opt",
        "/usr",
        "/srv",
    }
)


def is_pseudo(host: str) -> bool:
    return host.startswith(PSEUDO_PREFIXES)


# ----------------------------------------------------------------------------- the fs
class FS:
    """One call's view of the filesystem: the host's own ``fs`` plus the shared volumes.

    Shared volumes are other (pseudo-)hosts; their changes are written back in the same
    transaction as the call (``commit``), so a failed call changes neither.
    """

    def __init__(self, ctx: ToolContext) -> None:
        self.ctx = ctx
        self.own: dict[str, Any] = ctx.state.setdefault("fs", {})
        self._volumes: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()

    # -- where a path lives
    def _store(self, path: str, write: bool = False) -> dict[str, Any]:
        for prefix, vol in SHARED_VOLUMES.items():
            if path == prefix or path.startswith(prefix + "/"):
                if vol not in self._volumes:
                    self._volumes[vol] = json.loads(json.dumps(self.ctx.world.host_state(vol)))
                if write:
                    self._dirty.add(vol)
                files: dict[str, Any] = self._volumes[vol].setdefault("fs", {})
                return files
        return self.own

    def resolve(self, path: str, *, follow_last: bool = True) -> str:
        """Absolute, normalised, with symlinks on the way resolved (at most 16)."""
        path = posixpath.normpath(path if path.startswith("/") else "/" + path)
        for _ in range(16):
            parts = path.split("/")
            changed = False
            for i in range(2, len(parts) + 1):
                if i == len(parts) and not follow_last:
                    break
                prefix = "/".join(parts[:i])
                entry = self._store(prefix).get(prefix)
                if entry and entry.get("t") == "l":
                    rest = "/".join(parts[i:])
                    target = entry["to"]
                    path = posixpath.normpath(posixpath.join(target, rest) if rest else target)
                    changed = True
                    break
            if not changed:
                return path
        raise ToolFailure(f"{path}: too many levels of symbolic links")

    def get(self, path: str, *, follow_last: bool = True) -> dict[str, Any] | None:
        p = self.resolve(path, follow_last=follow_last)
        if p == "/":
            return {"t": "d"}
        entry = self._store(p).get(p)
        if entry is None and p in BASE_DIRS:
            return {"t": "d"}
        return entry

    def exists(self, path: str) -> bool:
        return self.get(path) is not None

    def is_dir(self, path: str) -> bool:
        e = self.get(path)
        return e is not None and e.get("t") == "d"

    def read(self, path: str) -> Any:
        e = self.get(path)
        if e is None:
            raise ToolFailure(f"{path}: No such file or directory")
        if e.get("t") == "d":
            raise ToolFailure(f"{path}: Is a directory")
        return e.get("c", "")

    def _parent_ok(self, p: str, make: bool) -> None:
        parent = posixpath.dirname(p)
        if parent in ("/", ""):
            return
        if self.is_dir(parent):
            return
        if make:
            self.mkdir(parent, parents=True)
            return
        raise ToolFailure(f"{parent}: No such file or directory")

    def write(self, path: str, content: Any, *, make_parents: bool = True) -> None:
        p = self.resolve(path)
        self._parent_ok(p, make_parents)
        self._store(p, write=True)[p] = {"t": "f", "c": content}

    def mkdir(self, path: str, *, parents: bool = True) -> bool:
        p = self.resolve(path)
        e = self.get(p)
        if e is not None:
            if e.get("t") != "d":
                raise ToolFailure(f"{path}: File exists")
            return False
        self._parent_ok(p, parents)
        self._store(p, write=True)[p] = {"t": "d"}
        return True

    def symlink(self, target: str, link: str) -> None:
        p = self.resolve(link, follow_last=False)
        self._parent_ok(p, False)
        self._store(p, write=True)[p] = {"t": "l", "to": target}

    def remove(self, path: str, *, recursive: bool = False) -> bool:
        p = self.resolve(path, follow_last=False)
        store = self._store(p, write=True)
        if p not in store:
            return False
        if store[p].get("t") == "d":
            children = [k for k in store if k.startswith(p + "/")]
            if children and not recursive:
                raise ToolFailure(f"cannot remove {path}: Is a directory")
            for k in children:
                del store[k]
        del store[p]
        return True

    def tree(self, path: str) -> dict[str, dict[str, Any]]:
        """``path`` and everything under it, keyed relative to it ('' is ``path``)."""
        p = self.resolve(path)
        store = self._store(p)
        out = {k[len(p) :]: v for k, v in store.items() if k == p or k.startswith(p + "/")}
        return out

    def commit(self) -> None:
        for vol in sorted(self._dirty):
            write_host_state(self.ctx, vol, self._volumes[vol])


def write_host_state(ctx: ToolContext, host: str, state: dict[str, Any]) -> None:
    """Write another (pseudo-)host's state as part of this call's effect."""
    ctx.world.write_host_state(host, state)


FsToolFn = Callable[[ToolContext, FS], ToolResult]


def fs_tool(name: str) -> Callable[[FsToolFn], FsToolFn]:
    """Register a tool that works on the filesystem; shared volumes are committed after."""

    def register(fn: FsToolFn) -> FsToolFn:
        def tool(ctx: ToolContext) -> ToolResult:
            fs = FS(ctx)
            result = fn(ctx, fs)
            fs.commit()
            return result

        tool.__module__ = fn.__module__
        tool.__qualname__ = fn.__qualname__
        tool.__name__ = fn.__name__
        sim_tool(name)(tool)
        return fn

    return register


def _flags_and_args(args: list[str]) -> tuple[set[str], list[str]]:
    flags: set[str] = set()
    rest: list[str] = []
    for a in args:
        if a.startswith("-") and len(a) > 1 and not rest:
            flags.update(a[1:] if not a.startswith("--") else [a])
        else:
            rest.append(a)
    return flags, rest


# ----------------------------------------------------------------------------- files
@fs_tool("test")
def test_(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    negate = False
    if args and args[0] == "!":
        negate, args = True, args[1:]
    if len(args) != 2 or args[0] not in ("-e", "-f", "-d", "-L"):
        raise ToolFailure("usage: test [!] -e|-f|-d|-L PATH", exit_code=2)
    op, path = args
    if op == "-L":
        e = fs.get(path, follow_last=False)
        ok = e is not None and e.get("t") == "l"
    else:
        e = fs.get(path)
        ok = e is not None and (
            op == "-e" or (op == "-d" and e.get("t") == "d") or (op == "-f" and e.get("t") == "f")
        )
    return ToolResult(0 if ok != negate else 1)


@fs_tool("mkdir")
def mkdir(ctx: ToolContext, fs: FS) -> ToolResult:
    flags, paths = _flags_and_args(ctx.args)
    if not paths:
        raise ToolFailure("usage: mkdir [-p] DIR...", exit_code=2)
    for path in paths:
        if fs.mkdir(path, parents="p" in flags):
            ctx.log(f"mkdir {path}")
        elif "p" not in flags:
            raise ToolFailure(f"mkdir: cannot create directory {path!r}: File exists")
    return ToolResult(0)


@fs_tool("rm")
def rm(ctx: ToolContext, fs: FS) -> ToolResult:
    flags, paths = _flags_and_args(ctx.args)
    for path in paths:
        if fs.remove(path, recursive="r" in flags):
            ctx.log(f"rm {path}")
        elif "f" not in flags:
            raise ToolFailure(f"rm: cannot remove {path!r}: No such file or directory")
    return ToolResult(0)


@fs_tool("mv")
def mv(ctx: ToolContext, fs: FS) -> ToolResult:
    if len(ctx.args) != 2:
        raise ToolFailure("usage: mv SRC DEST", exit_code=2)
    src, dst = ctx.args
    entries = fs.tree(src)
    if not entries:
        raise ToolFailure(f"mv: cannot stat {src!r}: No such file or directory")
    fs.remove(dst, recursive=True)
    base = fs.resolve(dst)
    for rel, entry in sorted(entries.items()):
        if rel == "":
            fs._parent_ok(base, False)
        fs._store(base + rel, write=True)[base + rel] = entry
    fs.remove(src, recursive=True)
    ctx.log(f"mv {src} {dst}")
    return ToolResult(0)


@fs_tool("cp")
def cp(ctx: ToolContext, fs: FS) -> ToolResult:
    flags, paths = _flags_and_args(ctx.args)
    if len(paths) < 2:
        raise ToolFailure("usage: cp [-a|-r] SRC... DEST", exit_code=2)
    *sources, dest = paths
    into_dir = dest.endswith("/") or fs.is_dir(dest) or len(sources) > 1
    for src in sources:
        src_contents = src.endswith("/.")
        entries = fs.tree(src.removesuffix("/."))
        if not entries:
            raise ToolFailure(f"cp: cannot stat {src!r}: No such file or directory")
        if entries[""].get("t") == "d" and not ({"a", "r", "R"} & flags):
            raise ToolFailure(f"cp: -r not specified; omitting directory {src!r}")
        if src_contents:
            target = fs.resolve(dest)
        elif into_dir:
            target = fs.resolve(dest) + "/" + posixpath.basename(src.rstrip("/"))
        else:
            target = fs.resolve(dest)
        for rel, entry in sorted(entries.items()):
            path = target + rel
            if rel == "" and entry.get("t") == "d":
                if not fs.is_dir(path):
                    fs.mkdir(path, parents=False)
                continue
            if rel == "":
                fs._parent_ok(path, False)
            fs._store(path, write=True)[path] = dict(entry)
        ctx.log(f"cp {src} {target}")
    return ToolResult(0)


@fs_tool("ln")
def ln(ctx: ToolContext, fs: FS) -> ToolResult:
    flags, paths = _flags_and_args(ctx.args)
    if "s" not in flags or len(paths) != 2:
        raise ToolFailure("usage: ln -s[fn] TARGET LINK", exit_code=2)
    target, link = paths
    existing = fs.get(link, follow_last=False)
    if existing is not None:
        if existing.get("t") == "l" and existing.get("to") == target:
            return ToolResult(0)
        if "f" not in flags or existing.get("t") == "d":
            raise ToolFailure(f"ln: failed to create symbolic link {link!r}: File exists")
        fs.remove(link)
    fs.symlink(target, link)
    ctx.log(f"ln {link} -> {target}")
    return ToolResult(0)


@fs_tool("readlink")
def readlink(ctx: ToolContext, fs: FS) -> ToolResult:
    if len(ctx.args) != 1:
        raise ToolFailure("usage: readlink LINK", exit_code=2)
    e = fs.get(ctx.args[0], follow_last=False)
    if e is None or e.get("t") != "l":
        return ToolResult(1)
    return ToolResult(0, e["to"] + "\n")


@fs_tool("cat")
def cat(ctx: ToolContext, fs: FS) -> ToolResult:
    out = []
    for path in ctx.args:
        content = fs.read(path)
        out.append(content if isinstance(content, str) else json.dumps(content))
    return ToolResult(0, "".join(out))


@fs_tool("scp")
def scp(ctx: ToolContext, fs: FS) -> ToolResult:
    """``scp [-q] HOST:PATH DEST``: copy a file from another host (or a shared volume)."""
    args = [a for a in ctx.args if a != "-q"]
    if len(args) != 2 or ":" not in args[0]:
        raise ToolFailure("usage: scp [-q] HOST:PATH DEST", exit_code=2)
    (remote, path), dest = args[0].split(":", 1), args[1]
    if not ctx.world.host_state(remote) and not any(
        path.startswith(p + "/") for p in SHARED_VOLUMES
    ):
        raise ToolFailure(f"ssh: connect to host {remote} port 22: No route to host", 255)
    other = _RemoteFS(ctx, remote)
    content = other.read(path)
    fs.write(dest, content, make_parents=False)
    ctx.log(f"scp {remote}:{path} {dest}")
    return ToolResult(0)


class _RemoteFS(FS):
    """Read-only view of another host's filesystem (its shared volumes included)."""

    def __init__(self, ctx: ToolContext, host: str) -> None:
        super().__init__(ctx)
        self.own = dict(ctx.world.host_state(host).get("fs", {}))

    def commit(self) -> None:  # pragma: no cover - read-only
        raise AssertionError("read-only")


# ----------------------------------------------------------------------------- disks
def _mounts(ctx: ToolContext) -> dict[str, Any]:
    mounts: dict[str, Any] = ctx.state.setdefault("mounts", {})
    return mounts


def _devices(ctx: ToolContext) -> dict[str, Any]:
    """Block devices: ``/dev/...`` -> {ro, fs, partitions, ...} (other modules add)."""
    devices: dict[str, Any] = ctx.state.setdefault("devices", {})
    devices.setdefault("/dev/zram0", {"ro": False})
    return devices


@fs_tool("mount")
def mount(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    fstype, opts, pos = None, "", []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-t":
            fstype, i = args[i + 1], i + 2
            continue
        if a == "-o":
            opts, i = args[i + 1], i + 2
            continue
        if a.startswith("-o"):
            opts = a[2:]
        else:
            pos.append(a)
        i += 1
    if len(pos) != 2:
        raise ToolFailure("usage: mount [-t TYPE] [-o OPTS] SOURCE DIR", exit_code=2)
    source, mnt = pos
    mounts = _mounts(ctx)
    if mnt in mounts:
        raise ToolFailure(f"mount: {mnt}: {source} already mounted", exit_code=32)
    if not fs.is_dir(mnt):
        raise ToolFailure(f"mount: {mnt}: mount point does not exist.", exit_code=32)
    if fstype == "overlay":
        o = dict(p.split("=", 1) for p in opts.split(",") if "=" in p)
        for key in ("lowerdir", "upperdir", "workdir"):
            if key not in o or not fs.is_dir(o[key]):
                raise ToolFailure(f"mount: {mnt}: wrong fs type, bad option ({key})", 32)
            if key == "lowerdir" and o[key] not in _mounts(ctx):
                raise ToolFailure(f"mount: {mnt}: lowerdir {o[key]} has nothing mounted", 32)
        # the image's own tree shows through (what the next mounts and copies need)
        for sub in ("etc", "var"):
            fs.mkdir(f"{mnt.rstrip('/')}/{sub}")
    else:
        dev = _devices(ctx).get(source)
        if dev is None:
            raise ToolFailure(f"mount: {mnt}: special device {source} does not exist.", 32)
        if not dev.get("fs"):
            raise ToolFailure(f"mount: {mnt}: wrong fs type on {source}", 32)
        if "ro" not in opts.split(",") and dev.get("ro"):
            raise ToolFailure(f"mount: {mnt}: cannot mount {source} read-write", 32)
    mounts[mnt] = {"source": source, "type": fstype or "auto", "opts": opts}
    ctx.log(f"mount {source} {mnt}")
    return ToolResult(0)


@sim_tool("umount")
def umount(ctx: ToolContext) -> ToolResult:
    for mnt in ctx.args:
        if _mounts(ctx).pop(mnt, None) is None:
            raise ToolFailure(f"umount: {mnt}: not mounted.", exit_code=32)
        ctx.log(f"umount {mnt}")
    return ToolResult(0)


@sim_tool("mountpoint")
def mountpoint(ctx: ToolContext) -> ToolResult:
    paths = [a for a in ctx.args if a != "-q"]
    if len(paths) != 1:
        raise ToolFailure("usage: mountpoint [-q] DIR", exit_code=2)
    ok = paths[0] in ctx.state.get("mounts", {})
    quiet = "-q" in ctx.args
    text = "" if quiet else f"{paths[0]} is {'' if ok else 'not '}a mountpoint\n"
    return ToolResult(0 if ok else 32, text)


@sim_tool("mkfs.xfs")
def mkfs_xfs(ctx: ToolContext) -> ToolResult:
    devs = [a for a in ctx.args if not a.startswith("-")]
    if len(devs) != 1:
        raise ToolFailure("usage: mkfs.xfs [-f] DEVICE", exit_code=2)
    dev = _devices(ctx).get(devs[0])
    if dev is None:
        raise ToolFailure(f"mkfs.xfs: {devs[0]}: No such file or directory")
    if any(m["source"] == devs[0] for m in ctx.state.get("mounts", {}).values()):
        raise ToolFailure(f"mkfs.xfs: {devs[0]} contains a mounted filesystem")
    if dev.get("fs") and "-f" not in ctx.args:
        raise ToolFailure(f"mkfs.xfs: {devs[0]} appears to contain an existing filesystem")
    dev["fs"] = "xfs"
    ctx.log(f"mkfs.xfs {devs[0]}")
    return ToolResult(0, f"meta-data={devs[0]} isize=512\n")


@sim_tool("blockdev")
def blockdev(ctx: ToolContext) -> ToolResult:
    if not ctx.args or ctx.args[0] not in ("--setro", "--getro"):
        raise ToolFailure("usage: blockdev --setro|--getro DEVICE...", exit_code=2)
    devices = _devices(ctx)
    out = []
    for name in ctx.args[1:]:
        dev = devices.get(name)
        if dev is None:
            raise ToolFailure(f"blockdev: cannot open {name}: No such file or directory")
        if ctx.args[0] == "--getro":
            out.append(f"{1 if dev.get('ro') else 0}\n")
        elif not dev.get("ro"):
            dev["ro"] = True
            ctx.log(f"setro {name}")
    return ToolResult(0, "".join(out))


@sim_tool("partprobe")
def partprobe(ctx: ToolContext) -> ToolResult:
    if len(ctx.args) != 1:
        raise ToolFailure("usage: partprobe DEVICE", exit_code=2)
    devices = _devices(ctx)
    dev = devices.get(ctx.args[0])
    if dev is None:
        raise ToolFailure(f"partprobe: Error: Could not stat device {ctx.args[0]}")
    for i, part in enumerate(dev.get("partitions", ()), start=1):
        name = f"{ctx.args[0]}{i}"
        if name not in devices:
            devices[name] = {"ro": False, **part}
            ctx.log(f"partition {name}")
    return ToolResult(0)


@sim_tool("lvm")
def lvm(ctx: ToolContext) -> ToolResult:
    if len(ctx.args) != 3 or ctx.args[0] not in ("vgchange", "lvchange") or ctx.args[1] != "-ay":
        raise ToolFailure("usage: lvm vgchange|lvchange -ay VG|LV", exit_code=2)
    devices = _devices(ctx)
    vg = ctx.args[2].removeprefix("/dev/mapper/")
    found = False
    for dev in list(devices.values()):
        for lv in dev.get("lvs", ()) if dev.get("vg") == vg else ():
            found = True
            name = f"/dev/mapper/{vg}-{lv['name']}"
            if name not in devices:
                devices[name] = {"ro": bool(dev.get("ro")), "fs": lv.get("fs")}
                ctx.log(f"activate {name}")
    if not found:
        raise ToolFailure(f'  Volume group "{vg}" not found', exit_code=5)
    return ToolResult(0, f'  logical volume(s) in volume group "{vg}" now active\n')


@fs_tool("systemd-firstboot")
def systemd_firstboot(ctx: ToolContext, fs: FS) -> ToolResult:
    opts = dict(a.split("=", 1) for a in ctx.args if a.startswith("--") and "=" in a)
    root, hostname = opts.get("--root"), opts.get("--hostname")
    if not root or not hostname:
        raise ToolFailure("usage: systemd-firstboot --root=DIR --hostname=NAME", exit_code=2)
    path = root.rstrip("/") + "/etc/hostname"
    if fs.exists(path) and "--force" not in ctx.args:
        return ToolResult(0)
    if fs.exists(path) and fs.read(path) == hostname + "\n":
        return ToolResult(0)
    fs.write(path, hostname + "\n")
    ctx.log(f"hostname {hostname} in {root}")
    return ToolResult(0)


# ----------------------------------------------------------------------------- systemd
def units(state: dict[str, Any]) -> dict[str, Any]:
    u: dict[str, Any] = state.setdefault("units", {})
    return u


def unit_name(name: str) -> str:
    return name.removesuffix(".service")


#: Hooks other families add: unit -> fn(ctx) run before a start (raise ToolFailure to fail).
START_HOOKS: dict[str, Callable[[ToolContext], None]] = {}
#: Units installed on every simulated host until its state says otherwise (families add).
DEFAULT_UNITS: dict[str, dict[str, bool]] = {}


def start_unit(ctx: ToolContext, name: str, *, restart: bool = False) -> bool:
    """Start ``name`` (a unit that exists or a default one); False when a
    ``silent_start`` quirk swallowed it: the caller still exits 0, as xcatha.py does on
    a handled failure, and only a probe shows the unit is not running."""
    table = units(ctx.state)
    unit = table.get(name)
    if unit is None:
        if name not in DEFAULT_UNITS:
            raise ToolFailure(f"Failed to start {name}.service: Unit {name}.service not found.", 5)
        unit = table[name] = dict(DEFAULT_UNITS[name])
    silent = ctx.state.get("quirks", {}).get("silent_start", {})
    if silent.get(name, 0) > 0:
        silent[name] -= 1
        return False
    hook = START_HOOKS.get(name)
    if hook is not None:
        hook(ctx)
    if not unit.get("active") or restart:
        unit["active"] = True
        ctx.log(f"{'restart' if restart else 'start'} {name}")
    return True


@fs_tool("systemctl")
def systemctl(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    root = None
    if args[:1] == ["--root"] and len(args) > 1:
        root, args = args[1], args[2:]
    elif args and args[0].startswith("--root="):
        root, args = args[0].split("=", 1)[1], args[1:]
    args = [a for a in args if a not in ("--quiet", "-q", "--now")]
    if len(args) < 2:
        raise ToolFailure("usage: systemctl [--root DIR] VERB UNIT...", exit_code=2)
    verb, names = args[0], [unit_name(n) for n in args[1:]]
    if root is not None:
        if verb not in ("enable", "disable"):
            raise ToolFailure(f"systemctl: --root does not support {verb}", exit_code=2)
        if not fs.is_dir(root):
            raise ToolFailure(f"systemctl: {root}: No such file or directory")
        enabled = ctx.state.setdefault("root_units", {}).setdefault(root, {})
        for n in names:
            want = verb == "enable"
            if bool(enabled.get(n)) != want:
                enabled[n] = want
                ctx.log(f"{verb} {n} in {root}")
        return ToolResult(0)
    table = units(ctx.state)
    out: list[str] = []
    code = 0
    for n in names:
        unit = table.get(n)
        if unit is None and n in DEFAULT_UNITS:
            unit = dict(DEFAULT_UNITS[n])
            if verb not in ("is-active", "is-enabled"):
                table[n] = unit
        if verb in ("is-active", "is-enabled"):
            if verb == "is-active":
                active = bool(unit and unit.get("active"))
                out.append("active\n" if active else "inactive\n")
                code = code or (0 if active else 3)
            else:
                on = bool(unit and unit.get("enabled"))
                out.append("enabled\n" if on else "disabled\n")
                code = code or (0 if on else 1)
            continue
        if unit is None:
            raise ToolFailure(f"Failed to {verb} {n}.service: Unit {n}.service not found.", 5)
        if verb in ("start", "restart"):
            start_unit(ctx, n, restart=verb == "restart")
        elif verb == "stop":
            if unit.get("active"):
                unit["active"] = False
                ctx.log(f"stop {n}")
        elif verb in ("enable", "disable"):
            want = verb == "enable"
            if bool(unit.get("enabled")) != want:
                unit["enabled"] = want
                ctx.log(f"{verb} {n}")
        else:
            raise ToolFailure(f"systemctl: unknown verb {verb!r}", exit_code=2)
    return ToolResult(code, "".join(out))


# ----------------------------------------------------------------------------- network
def addresses(state: dict[str, Any]) -> dict[str, list[str]]:
    a: dict[str, list[str]] = state.setdefault("ifaces", {})
    return a


def _addr(text: str) -> str:
    return text.split("/", 1)[0]


@sim_tool("ip")
def ip(ctx: ToolContext) -> ToolResult:
    args = [a for a in ctx.args if a != "-o"]  # one line per address either way
    if len(args) < 2 or args[0] not in ("addr", "a", "address"):
        raise ToolFailure("usage: ip [-o] addr add|del|show ...", exit_code=2)
    verb, rest = args[1], args[2:]
    ifaces = addresses(ctx.state)
    if verb == "show":
        dev = rest[rest.index("dev") + 1] if "dev" in rest else None
        lines = []
        for nic, addrs in sorted(ifaces.items()):
            if dev is not None and nic != dev:
                continue
            for a in addrs:
                lines.append(f"2: {nic}    inet {a} scope global {nic}\n")
        if dev is not None and dev not in ifaces:
            raise ToolFailure(f'Device "{dev}" does not exist.')
        return ToolResult(0, "".join(lines))
    if verb not in ("add", "del") or len(rest) < 3 or rest[1] != "dev":
        raise ToolFailure("usage: ip addr add|del ADDR/MASK dev NIC [label L]", exit_code=2)
    address, nic = rest[0], rest[2]
    if nic not in ifaces:
        raise ToolFailure(f'Cannot find device "{nic}"')
    present = [a for a in ifaces[nic] if _addr(a) == _addr(address)]
    if verb == "add":
        if present:
            raise ToolFailure("RTNETLINK answers: File exists", exit_code=2)
        ifaces[nic].append(address)
        ctx.log(f"ip add {address} dev {nic}")
        return ToolResult(0)
    quirks = ctx.state.get("quirks", {})
    if quirks.get("silent_ip_del", 0) > 0:
        quirks["silent_ip_del"] -= 1
        return ToolResult(0)  # exit 0, address still there
    if not present:
        raise ToolFailure("RTNETLINK answers: Cannot assign requested address", exit_code=2)
    ifaces[nic] = [a for a in ifaces[nic] if _addr(a) != _addr(address)]
    ctx.log(f"ip del {address} dev {nic}")
    return ToolResult(0)


def holders(ctx: ToolContext, address: str) -> list[str]:
    """Every host that has ``address`` on an interface (what answers a ping)."""
    out = []
    for host in ctx.world.hosts():
        if is_pseudo(host):
            continue
        state = ctx.state if host == ctx.host else ctx.world.host_state(host)
        for addrs in state.get("ifaces", {}).values():
            if any(_addr(a) == address for a in addrs):
                out.append(host)
                break
    if ctx.host not in out and ctx.host not in ctx.world.hosts():
        for addrs in ctx.state.get("ifaces", {}).values():
            if any(_addr(a) == address for a in addrs):
                out.append(ctx.host)
    return out


@sim_tool("ping")
def ping(ctx: ToolContext) -> ToolResult:
    targets = []
    skip = False
    for a in ctx.args:
        if skip:
            skip = False
        elif a in ("-c", "-W", "-w", "-i"):
            skip = True
        elif not a.startswith("-"):
            targets.append(a)
    if len(targets) != 1:
        raise ToolFailure("usage: ping -c COUNT [-W SECS] ADDRESS", exit_code=2)
    target = targets[0]
    if holders(ctx, target):
        return ToolResult(0, f"64 bytes from {target}: icmp_seq=1 ttl=64 time=0.1 ms\n")
    return ToolResult(1, f"--- {target} ping statistics ---\n1 packets transmitted, 0 received\n")


@sim_tool("hostname")
def hostname(ctx: ToolContext) -> ToolResult:
    if not ctx.args:
        return ToolResult(0, ctx.state.get("hostname", ctx.host) + "\n")
    if len(ctx.args) != 1:
        raise ToolFailure("usage: hostname [NAME]", exit_code=2)
    name = ctx.args[0]
    if ctx.state.get("hostname", ctx.host) != name:
        ctx.state["hostname"] = name
        ctx.log(f"hostname {name}")
    return ToolResult(0)
