"""Fake xCAT of its shared-data MN HA design, ``xcatha-setup`` and ``xcatha-failover``
(the network and systemd basics are in ``linux``: ``ip``, ``ping``, ``hostname``,
``systemctl``).

Supported: ``go-xcat -y install``; ``lsxcatd -v|-d``; ``pgsqlsetup -i [-V]``,
``mysqlsetup -i`` (switch the DB: write ``/etc/xcat/cfgloc``); ``makedns -n`` (configures
and starts named), ``makedhcp -n`` (dhcpd), ``makedhcp -a``; ``chdef -t site|policy
[-o OBJ] attr=value...``; ``lsdef -t site|policy``. xcatd, named and dhcpd need xcatd's
data (``/etc/xcat``, after a switch to the shared directory a symlink) and start through
``linux.start_unit``, so the ``silent_start`` quirk makes them "exit 0 but not start"
exactly like ``systemctl start``. The DB type of a shared directory is the first two
characters of ``<dir>/etc/xcat/cfgloc`` (``my`` mariadb, ``Pg`` postgresql; none: sqlite).
"""

from __future__ import annotations

from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult
from fleetlog.machines.sim.tools.linux import (
    DEFAULT_UNITS,
    FS,
    START_HOOKS,
    fs_tool,
    start_unit,
    units,
)

XCAT_VERSION = "Version 2.14.1 (git commit 7a7a4ea, built Fri Jun  1 09:33:38 EDT 2018)"
#: Directories xCAT keeps its data in (and the HA setup moves to the shared directory).
XCAT_DIRS = ("/install", "/etc/xcat", "/root/.xcat", "/tftpboot")
DB_DIRS = {"postgresql": "/var/lib/pgsql", "mysql": "/var/lib/mysql", "sqlite": None}

DEFAULT_UNITS.update(
    {
        "xcatd": {"active": False, "enabled": True},
        "postgresql": {"active": False, "enabled": False},
        "mariadb": {"active": False, "enabled": False},
        "named": {"active": False, "enabled": False},
        "dhcpd": {"active": False, "enabled": False},
        "goconserver": {"active": False, "enabled": False},
        "conserver": {"active": False, "enabled": False},
        "ntpd": {"active": False, "enabled": False},
    }
)


def _xcat(ctx: ToolContext) -> dict[str, Any]:
    x: dict[str, Any] = ctx.state.setdefault("xcat", {})
    return x


def _installed(ctx: ToolContext) -> None:
    if not ctx.state.get("xcat", {}).get("installed"):
        raise ToolFailure(f"{ctx.tool}: command not found", exit_code=127)


def _needs_dir(path: str, unit: str) -> Any:
    def hook(ctx: ToolContext) -> None:
        if not FS(ctx).is_dir(path):
            raise ToolFailure(
                f"Job for {unit}.service failed because the control process exited with "
                f"error code ({path} is missing).",
                exit_code=1,
            )

    return hook


def _xcatd_hook(ctx: ToolContext) -> None:
    _installed(ctx)
    _needs_dir("/etc/xcat", "xcatd")(ctx)


START_HOOKS.update(
    {
        "xcatd": _xcatd_hook,
        "postgresql": _needs_dir("/var/lib/pgsql", "postgresql"),
        "mariadb": _needs_dir("/var/lib/mysql", "mariadb"),
    }
)


def _running(ctx: ToolContext, unit: str = "xcatd") -> None:
    if not units(ctx.state).get(unit, {}).get("active"):
        raise ToolFailure(
            f"Error: Connection failure: {unit} is not running on {ctx.host}", exit_code=1
        )


def db_engine(fs: FS, root: str = "") -> str:
    path = f"{root}/etc/xcat/cfgloc"
    if not fs.exists(path):
        return "SQLite"
    head = str(fs.read(path))[:2]
    return {"Pg": "Pg", "my": "mysql"}.get(head, "SQLite")


@fs_tool("go-xcat")
def go_xcat(ctx: ToolContext, fs: FS) -> ToolResult:
    if [a for a in ctx.args if a != "-y"] != ["install"]:
        raise ToolFailure("usage: go-xcat -y install", exit_code=2)
    x = _xcat(ctx)
    if x.get("installed"):
        return ToolResult(0, "xCAT is already installed\n")
    for d in XCAT_DIRS:
        fs.mkdir(d)
        fs.write(f"{d}/.xcat-{d.strip('/').replace('/', '-')}", f"data of {d}\n")
    x["installed"] = True
    start_unit(ctx, "xcatd")
    ctx.log("install xCAT")
    return ToolResult(0, "xCAT has been installed!\n")


@fs_tool("lsxcatd")
def lsxcatd(ctx: ToolContext, fs: FS) -> ToolResult:
    _installed(ctx)
    if ctx.args == ["-v"]:
        return ToolResult(0, XCAT_VERSION + "\n")
    if ctx.args == ["-d"]:
        engine = db_engine(fs)
        loc = str(fs.read("/etc/xcat/cfgloc")).strip() if engine != "SQLite" else ""
        lines = [f"cfgloc={loc}"] if loc else []
        lines += [f"dbengine={engine}", "dbinstance=xcatdb"]
        return ToolResult(0, "\n".join(lines) + "\n")
    raise ToolFailure("usage: lsxcatd -v|-d", exit_code=2)


def _switch_db(ctx: ToolContext, fs: FS, engine: str, unit: str, data_dir: str) -> ToolResult:
    _installed(ctx)
    if db_engine(fs) == engine:
        return ToolResult(0, f"xCAT is already using {engine}\n")
    fs.mkdir(data_dir)
    fs.write(f"{data_dir}/xcatdb", "tables\n")
    start_unit(ctx, unit)
    fs.write("/etc/xcat/cfgloc", f"{engine}:dbname=xcatdb;host={ctx.host}|xcatadm\n")
    ctx.log(f"switch xCAT DB to {engine}")
    return ToolResult(0, f"xCAT is now running on the {engine} database.\n")


@fs_tool("pgsqlsetup")
def pgsqlsetup(ctx: ToolContext, fs: FS) -> ToolResult:
    if "-i" not in ctx.args:
        raise ToolFailure("usage: pgsqlsetup -i [-V]", exit_code=2)
    return _switch_db(ctx, fs, "Pg", "postgresql", "/var/lib/pgsql")


@fs_tool("mysqlsetup")
def mysqlsetup(ctx: ToolContext, fs: FS) -> ToolResult:
    if "-i" not in ctx.args:
        raise ToolFailure("usage: mysqlsetup -i", exit_code=2)
    return _switch_db(ctx, fs, "mysql", "mariadb", "/var/lib/mysql")


@fs_tool("makedns")
def makedns(ctx: ToolContext, fs: FS) -> ToolResult:
    _installed(ctx)
    if ctx.args != ["-n"]:
        raise ToolFailure("usage: makedns -n", exit_code=2)
    _running(ctx)
    # like xcatha.py's callers see it: exit 0 even when named did not come up
    start_unit(ctx, "named")
    return ToolResult(0, "Handling localhost in /etc/hosts.\nDNS setup is completed\n")


@fs_tool("makedhcp")
def makedhcp(ctx: ToolContext, fs: FS) -> ToolResult:
    _installed(ctx)
    _running(ctx)
    if ctx.args == ["-n"]:
        if not fs.exists("/etc/dhcp/dhcpd.conf"):
            fs.write("/etc/dhcp/dhcpd.conf", "# generated by makedhcp -n\n")
            ctx.log("write /etc/dhcp/dhcpd.conf")
        start_unit(ctx, "dhcpd")
        return ToolResult(0, "Renamed existing dhcp configuration file to dhcpd.conf.xcatbak\n")
    if ctx.args == ["-a"]:
        _running(ctx, "dhcpd")
        return ToolResult(0)
    raise ToolFailure("usage: makedhcp -n|-a", exit_code=2)


def _table(fs: FS, name: str) -> dict[str, Any]:
    path = f"/etc/xcat/{name}.tab"
    if not fs.exists(path):
        return {}
    data: dict[str, Any] = fs.read(path)
    return data


@fs_tool("chdef")
def chdef(ctx: ToolContext, fs: FS) -> ToolResult:
    _installed(ctx)
    _running(ctx)
    args = list(ctx.args)
    if len(args) < 3 or args[0] != "-t" or args[1] not in ("site", "policy"):
        raise ToolFailure("usage: chdef -t site|policy [-o OBJ] attr=value...", exit_code=2)
    table, rest = args[1], args[2:]
    obj = "clustersite"
    if rest[:1] == ["-o"]:
        obj, rest = rest[1], rest[2:]
    attrs = dict(a.split("=", 1) for a in rest if "=" in a)
    if not attrs:
        raise ToolFailure("chdef: no attributes given", exit_code=2)
    data = _table(fs, table)
    merged = {**data.get(obj, {}), **attrs}
    if data.get(obj) != merged:
        data[obj] = merged
        fs.write(f"/etc/xcat/{table}.tab", data)
        ctx.log(f"chdef {table} {obj} {','.join(f'{k}={v}' for k, v in sorted(attrs.items()))}")
    return ToolResult(0, "1 object definitions have been created or modified.\n")


@fs_tool("lsdef")
def lsdef(ctx: ToolContext, fs: FS) -> ToolResult:
    _installed(ctx)
    _running(ctx)
    if len(ctx.args) != 2 or ctx.args[0] != "-t":
        raise ToolFailure("usage: lsdef -t site|policy", exit_code=2)
    out = []
    for obj, attrs in sorted(_table(fs, ctx.args[1]).items()):
        out.append(f"Object name: {obj}\n")
        out.extend(f"    {k}={v}\n" for k, v in sorted(attrs.items()))
    return ToolResult(0, "".join(out))


def ha_site(
    world: Any,
    mns: tuple[str, ...] = ("mn1", "mn2"),
    *,
    nic: str = "eth0",
    subnet: str = "10.0.0",
    shared: str = "/HA-data",
) -> None:
    """Seed two management nodes (a NIC each, nothing else) and an empty shared dir."""
    for i, mn in enumerate(mns, start=1):
        world.set_host_state(
            mn, {"role": "xcat_mn", "hostname": mn, "ifaces": {nic: [f"{subnet}.{i}/24"]}}
        )
    volume = {"fs": {shared: {"t": "d"}}}
    world.set_host_state("nfs:" + shared.strip("/"), volume)
