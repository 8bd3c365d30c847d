"""xCAT HA step plugins (xCAT's "shared data based MN HA" design (xcatha-setup, xcatha-failover)).

The real ``xcatha.py`` exits 0 on handled failures, so nothing here trusts an exit code
alone: every service action is judged by probing the unit afterwards, and a step that
fails is retried by the engine (``retry 2 every 3s``: the script's 3 tries, 3 s apart).

- ``service(unit, action, command)``: ``start`` (or ``command``, e.g. ``makedns -n``,
  which starts the unit itself) then ``systemctl is-active`` must say ``active``; the
  unit is disabled so it does not start on reboot. ``stop``: disable, stop, and the
  probe must say ``inactive``.
- ``check_shared_db(path, dbtype, require)``: the DB type of the shared directory (the
  first two characters of ``<path>/etc/xcat/cfgloc``) must be ``dbtype``; with
  ``require`` the directory must already hold xCAT data.
- ``configure_shared_data(path, dbtype)``: copy xCAT's data into the shared directory if
  it is empty there, then replace each directory by a symlink into it.
- ``link_shared(path, dbtype)`` / ``unlink_shared(path, dbtype)``: the symlinks only.
- ``vip_absent(vip)``: the VIP must not answer ping (``ip addr del`` may exit 0 and leave
  it); retried by the engine, so an injected sleep keeps tests fast.
- ``vip_exclusive(vip, holder, other)``: the invariant the script cannot enforce: the
  VIP answers, ``holder`` has it and ``other`` does not.
"""

from __future__ import annotations

import shlex
from typing import Any

__all__ = [
    "check_shared_db",
    "configure_shared_data",
    "link_shared",
    "service",
    "unlink_shared",
    "vip_absent",
    "vip_exclusive",
]

XCAT_DIRS = ("/install", "/etc/xcat", "/root/.xcat", "/tftpboot")
DB_DIRS = {"postgresql": "/var/lib/pgsql", "mysql": "/var/lib/mysql", "sqlite": None}
DB_PREFIX = {"postgresql": "Pg", "mysql": "my"}


class HAError(RuntimeError):
    pass


def _q(text: str) -> str:
    return shlex.quote(text)


def _out(res: Any) -> str:
    return str(res.stdout + res.stderr).strip()


def service(ctx: Any, unit: str, action: str = "start", command: str | None = None) -> str:
    if action not in ("start", "stop"):
        raise HAError(f"service action must be start or stop, not {action!r}")
    u = _q(unit)
    if action == "start":
        ran = command or f"systemctl start {u}"
        res = ctx.run(ran)
        ctx.run(f"systemctl disable {u}")  # started by failover, never at boot
        want = "active"
    else:
        ctx.run(f"systemctl disable {u}")
        ran = f"systemctl stop {u}"
        res = ctx.run(ran)
        want = "inactive"
    probe = ctx.run(f"systemctl is-active {u}")
    state = probe.stdout.strip() or "unknown"
    if state != want:
        raise HAError(
            f"{ran} exited {res.exit_code} but {unit} is {state} (judged by "
            f"`systemctl is-active`, not the exit code){': ' + _out(res) if _out(res) else ''}"
        )
    return f"{ran}: {unit} {state}"


def _dirs(dbtype: str) -> list[str]:
    extra = DB_DIRS.get(dbtype)
    return [*XCAT_DIRS, *([extra] if extra else [])]


def check_shared_db(ctx: Any, path: str, dbtype: str, require: bool = False) -> str:
    res = ctx.run(f"cat {_q(path.rstrip('/') + '/etc/xcat/cfgloc')}")
    has_data = ctx.run(f"test -d {_q(path.rstrip('/') + '/etc/xcat')}").ok
    if require and not has_data:
        raise HAError(f"{path} holds no xCAT data: run setup on a management node first")
    shared = "sqlite"
    if res.ok:
        head = res.stdout[:2]
        shared = {"Pg": "postgresql", "my": "mysql"}.get(head, "sqlite")
    if has_data and shared != dbtype:
        raise HAError(f"the shared data in {path} uses {shared}, not {dbtype}")
    return f"{path}: {'xCAT data on ' + shared if has_data else 'no xCAT data yet'}"


def configure_shared_data(ctx: Any, path: str, dbtype: str) -> str:
    said = []
    for d in _dirs(dbtype):
        shared = path.rstrip("/") + d
        if ctx.run(f"readlink {_q(d)}").stdout.strip() == shared:
            said.append(f"{d} -> {shared} (already)")
            continue
        if not ctx.run(f"test -e {_q(shared)}").ok:
            for cmd in (f"mkdir -p {_q(shared)}", f"cp -a {_q(d + '/.')} {_q(shared)}"):
                res = ctx.run(cmd)
                if not res.ok:
                    raise HAError(f"{cmd}: {_out(res)}")
        for cmd in (f"rm -rf {_q(d)}", f"ln -sfn {_q(shared)} {_q(d)}"):
            res = ctx.run(cmd)
            if not res.ok:
                raise HAError(f"{cmd}: {_out(res)}")
        said.append(f"{d} -> {shared}")
    return "\n".join(said)


def link_shared(ctx: Any, path: str, dbtype: str) -> str:
    said = []
    for d in _dirs(dbtype):
        shared = path.rstrip("/") + d
        if ctx.run(f"readlink {_q(d)}").stdout.strip() == shared:
            continue
        if ctx.run(f"test -e {_q(d)}").ok and not ctx.run(f"test -L {_q(d)}").ok:
            raise HAError(f"{d} is a real directory, not a link into {path}: run setup first")
        res = ctx.run(f"ln -sfn {_q(shared)} {_q(d)}")
        if not res.ok:
            raise HAError(f"ln -sfn {shared} {d}: {_out(res)}")
        said.append(f"{d} -> {shared}")
    return "\n".join(said) or "already linked"


def unlink_shared(ctx: Any, path: str, dbtype: str) -> str:
    said = []
    for d in _dirs(dbtype):
        if ctx.run(f"test -L {_q(d)}").ok:
            res = ctx.run(f"rm -f {_q(d)}")
            if not res.ok:
                raise HAError(f"rm -f {d}: {_out(res)}")
            said.append(f"unlinked {d}")
    return "\n".join(said) or "nothing linked"


def _has(ctx: Any, host: str, vip: str) -> bool:
    res = ctx.run("ip -o addr show", host=host)
    return any(f" inet {vip}/" in line for line in res.stdout.splitlines())


def vip_exclusive(ctx: Any, vip: str, holder: str, other: str) -> str:
    on_holder, on_other = _has(ctx, holder, vip), _has(ctx, other, vip)
    answers = ctx.run(f"ping -c1 -W1 {_q(vip)}").ok
    if on_holder and on_other:
        raise HAError(f"VIP {vip} is configured on both {holder} and {other}")
    if on_other or not on_holder:
        raise HAError(
            f"VIP {vip} should be on {holder} only; on {holder}: {on_holder}, "
            f"on {other}: {on_other}"
        )
    if not answers:
        raise HAError(f"VIP {vip} is configured on {holder} but does not answer ping")
    return f"VIP {vip} on {holder} only, answering"


def vip_absent(ctx: Any, vip: str) -> str:
    res = ctx.run(f"ping -c1 -W1 {_q(vip)}")
    if res.ok:
        raise HAError(f"VIP {vip} still answers ping: {res.stdout.strip()}")
    return f"VIP {vip} does not answer"
