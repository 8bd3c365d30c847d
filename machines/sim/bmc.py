"""The simulated datacenter's BMCs: each node's out-of-band controller, as a fake tool.

A node ``NODE``'s BMC is the pseudo-host ``bmc:NODE`` (out of band: a fault on the node
does not reach it, and one on ``bmc:NODE`` hits the BMC alone). Its state is the node's
power state and its boot override; what power does to the node is written to the node's
own host state in the same call:

- ``bmc show``: ``{"power", "boot_target", "boot_enabled"}`` as JSON (Redfish's words);
- ``bmc power On|ForceOn|ForceOff|GracefulShutdown|ForceRestart``: powering off drops
  what does not survive it (mounts, sessions, devices, addresses added at run time, the
  running units, the run-time host name); powering on boots from the one-time override
  (then cleared), a continuous one, or the disk. A network boot (``Pxe``) lands a
  diskless node in the DisklessTrap with nothing kept, as ``reboot`` does; a disk boot
  keeps the disk (``fs``), the first address of each interface and starts the enabled
  units;
- ``bmc boot Pxe|Hdd|None Once|Continuous|Disabled``.

A BMC seeded with users (``seed_bmc(world, node, users={...})``) checks ``BMC_USER`` and
``BMC_PASSWORD`` (given as the command's environment) and refuses others as Redfish does
(HTTP 401). The world keeps only digests of passwords. Nothing here models a BMC that
applies a change late: the sim's changes are immediate (the real emulator's are not).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult, World, sim_tool

RESETS = {
    "On": "On",
    "ForceOn": "On",
    "ForceOff": "Off",
    "GracefulShutdown": "Off",
    "ForceRestart": "On",
}
TARGETS = ("Pxe", "Hdd", "None")
ENABLED = ("Once", "Continuous", "Disabled")
#: What a node keeps across a network boot (the DisklessTrap keeps nothing else).
PXE_KEEPS = ("role", "hostname", "quirks")
#: Run-time state a power-off loses.
VOLATILE = ("mounts", "devices", "iscsi", "root_units", "zram")


def digest(value: str) -> str:
    return "sha256:" + hashlib.sha256(("fleetlog-sim-bmc\0" + value).encode()).hexdigest()


def seed_bmc(
    world: World, node: str, *, power: str = "On", users: dict[str, str] | None = None
) -> None:
    """Give ``node`` a BMC in ``power`` state; ``users`` (name -> password) turns on its
    credential check."""
    state: dict[str, Any] = {"power": power, "boot_target": "None", "boot_enabled": "Disabled"}
    if users:
        state["users"] = {u: digest(p) for u, p in users.items()}
    world.set_host_state(f"bmc:{node}", state)


def _bmc(ctx: ToolContext) -> dict[str, Any]:
    s = ctx.state
    s.setdefault("power", "On")
    s.setdefault("boot_target", "None")
    s.setdefault("boot_enabled", "Disabled")
    return s


def _check_auth(ctx: ToolContext, s: dict[str, Any]) -> None:
    users = s.get("users")
    if not users:
        return
    user, password = ctx.env.get("BMC_USER", ""), ctx.env.get("BMC_PASSWORD", "")
    conceal = getattr(ctx, "conceal", None)
    if conceal is not None and password:
        conceal(password)
    if not user or users.get(user) != digest(password):
        raise ToolFailure("HTTP 401: Incorrect username or password", exit_code=1)


def _power_off(node: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in node.items() if k not in VOLATILE}
    ifaces = out.get("ifaces")
    if isinstance(ifaces, dict):
        out["ifaces"] = {nic: list(addrs[:1]) for nic, addrs in ifaces.items()}
    units = out.get("units")
    if isinstance(units, dict):
        out["units"] = {u: {**s, "active": False} for u, s in units.items()}
    fs = out.get("fs") or {}
    named = fs.get("/etc/hostname", {}).get("c") if isinstance(fs, dict) else None
    if named:
        out["hostname"] = str(named).strip()
    out["power"] = "Off"
    return out


def _power_on(node: dict[str, Any], device: str) -> dict[str, Any]:
    if device == "Pxe":
        out = {k: v for k, v in node.items() if k in PXE_KEEPS}
    else:
        out = dict(node)
        units = out.get("units")
        if isinstance(units, dict):
            out["units"] = {u: {**s, "active": bool(s.get("enabled"))} for u, s in units.items()}
    out.pop("power", None)
    out["booted_from"] = device
    return out


def _boot_device(s: dict[str, Any]) -> str:
    target, enabled = s["boot_target"], s["boot_enabled"]
    if enabled in ("Once", "Continuous") and target != "None":
        if enabled == "Once":
            s["boot_target"], s["boot_enabled"] = "None", "Disabled"
        return str(target)
    return "Hdd"


@sim_tool("bmc")
def bmc(ctx: ToolContext) -> ToolResult:
    if not ctx.host.startswith("bmc:"):
        raise ToolFailure(f"bmc: {ctx.host} is not a BMC (bmc:NODE)", exit_code=2)
    node = ctx.host[len("bmc:") :]
    s = _bmc(ctx)
    _check_auth(ctx, s)
    args = ctx.args
    if args == ["show"]:
        pass
    elif len(args) == 2 and args[0] == "power":
        reset = args[1]
        if reset not in RESETS:
            raise ToolFailure(f"HTTP 400: ResetType {reset} is not supported", exit_code=1)
        state = dict(ctx.world.host_state(node))
        goes_off = RESETS[reset] == "Off" or reset == "ForceRestart"
        if goes_off and s["power"] == "On":
            state = _power_off(state)
            s["power"] = "Off"
        if RESETS[reset] == "On" and s["power"] == "Off":
            state = _power_on(state, _boot_device(s))
            s["power"] = "On"
        ctx.world.write_host_state(node, state)
        ctx.log(f"power {reset}")
    elif len(args) == 3 and args[0] == "boot":
        target, enabled = args[1], args[2]
        if target not in TARGETS or enabled not in ENABLED:
            raise ToolFailure(f"HTTP 400: boot {target} {enabled} is not supported", exit_code=1)
        s["boot_target"], s["boot_enabled"] = target, enabled
        ctx.log(f"boot {target} {enabled}")
    else:
        raise ToolFailure("usage: bmc show | power RESET_TYPE | boot TARGET ENABLED", exit_code=2)
    shown = {k: s[k] for k in ("power", "boot_target", "boot_enabled")}
    return ToolResult(0, json.dumps(shown, sort_keys=True) + "\n")
