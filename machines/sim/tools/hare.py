"""Fake CORTX Hare of the 20/MINIPROV specification: ``hare_setup`` and ``hctl``.

``hare_setup STAGE --config URL`` with STAGE post_install, prepare, config (``--file
CDF``), init, start, test (``--plan sanity|regression|full|performance|scalability``),
reset, cleanup (``--pre-factory``), pre-upgrade, post-upgrade, upgrade (no-ops, as in the
real code) and ``support_bundle [ID] [DIR]``; ``-h/--help``. Every stage is idempotent,
as the mini-provisioner contract demands: applied twice in a row, the second run
succeeds and changes nothing (the world log shows it). ``config`` imports the KV into
Consul only when the ``leader`` key is absent (check-before-do, like the real code);
``init`` runs ``hctl bootstrap --mkfs`` once (the mkfs marker) and then ``hctl shutdown``.

``hctl bootstrap [--mkfs] CDF``, ``hctl shutdown``, ``hctl status [--json]``.
A ConfStore URL is ``json://``, ``yaml://``, ``ini://`` or ``consul://``; anything else is
refused (exit 1). State ``hare.rpms`` (seeded) can report a wrong Consul version.
"""

from __future__ import annotations

import json
from typing import Any

from fleetlog.engine.backends.sim import ToolContext, ToolFailure, ToolResult
from fleetlog.machines.sim.tools.linux import FS, fs_tool

STAGES = (
    "post_install",
    "prepare",
    "config",
    "init",
    "start",
    "test",
    "reset",
    "cleanup",
    "pre-upgrade",
    "post-upgrade",
    "upgrade",
    "support_bundle",
)
PLANS = ("sanity", "regression", "full", "performance", "scalability")
CONSUL_SUPPORTED = "1.7.8"
MKFS_MARKER = "/var/lib/hare/mkfs-done"
TEST_LOG = "/var/log/hare/test-{plan}.log"
DEFAULT_RPMS = {"cortx-motr": "2.0.0", "cortx-hare": "2.0.0", "consul": CONSUL_SUPPORTED}
HELP = (
    "usage: hare_setup STAGE --config URL [options]\n"
    f"stages: {', '.join(STAGES)}\n"
    "exit 0 on success, N > 0 on error; every stage may be applied twice in a row\n"
)


def _hare(ctx: ToolContext) -> dict[str, Any]:
    h: dict[str, Any] = ctx.state.setdefault("hare", {})
    return h


def _opt(args: list[str], name: str) -> str | None:
    if name in args:
        i = args.index(name)
        if i + 1 >= len(args):
            raise ToolFailure(f"hare_setup: option {name} needs a value", exit_code=2)
        return args[i + 1]
    return None


def _url(args: list[str]) -> str:
    url = _opt(args, "--config")
    if url is None:
        raise ToolFailure("hare_setup: --config URL is required", exit_code=2)
    if not url.startswith(("json://", "yaml://", "ini://", "consul://")):
        raise ToolFailure(f"hare_setup: unsupported ConfStore URL {url!r}", exit_code=1)
    return url


def _bootstrap(ctx: ToolContext, fs: FS, mkfs: bool) -> list[str]:
    h = _hare(ctx)
    said = []
    if not fs.exists(h.get("cdf") or "/nonexistent"):
        raise ToolFailure("hctl: no cluster description (run hare_setup config first)")
    if mkfs and not fs.exists(MKFS_MARKER):
        fs.write(MKFS_MARKER, "mkfs done\n")
        ctx.log("mkfs")
        said.append("2020-12-01 10:00:00: Running mkfs")
    if not h.get("running"):
        if not fs.exists(MKFS_MARKER):
            raise ToolFailure("hctl: motr is not mkfs'ed (bootstrap --mkfs first)")
        h["running"] = True
        ctx.log("cluster started")
        said.append("Cluster is up")
    return said


def _shutdown(ctx: ToolContext) -> bool:
    h = _hare(ctx)
    if h.get("running"):
        h["running"] = False
        ctx.log("cluster stopped")
        return True
    return False


@fs_tool("hctl")
def hctl(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    if args[:1] == ["bootstrap"]:
        return ToolResult(0, "\n".join(_bootstrap(ctx, fs, "--mkfs" in args)) + "\n")
    if args == ["shutdown"]:
        _shutdown(ctx)
        return ToolResult(0, "Stopping the cluster\n")
    if args[:1] == ["status"]:
        running = bool(ctx.state.get("hare", {}).get("running"))
        if "--json" in args:
            return ToolResult(0, json.dumps({"running": running, "host": ctx.host}) + "\n")
        return ToolResult(
            0 if running else 1, "Cluster running\n" if running else "Cluster is not running\n"
        )
    raise ToolFailure("usage: hctl bootstrap [--mkfs] CDF | shutdown | status [--json]", 2)


@fs_tool("hare_setup")
def hare_setup(ctx: ToolContext, fs: FS) -> ToolResult:
    args = list(ctx.args)
    if not args or args[0] in ("-h", "--help"):
        return ToolResult(0, HELP)
    stage, rest = args[0], args[1:]
    if stage not in STAGES:
        raise ToolFailure(f"hare_setup: unknown stage {stage!r}\n{HELP}", exit_code=2)
    h = _hare(ctx)
    if stage == "support_bundle":
        bundle_id = rest[0] if rest else ctx.host
        dest = rest[1] if len(rest) > 1 else "/tmp"
        path = f"{dest.rstrip('/')}/hare/hare_{bundle_id}.tar.gz"
        if not fs.is_dir(dest):
            raise ToolFailure(f"hare_setup: {dest} is not a writable directory")
        content = {"bundle": bundle_id, "host": ctx.host, "running": bool(h.get("running"))}
        if not fs.exists(path) or fs.read(path) != content:
            fs.write(path, content)
            ctx.log(f"support bundle {path}")
        return ToolResult(0, path + "\n")
    url = _url(rest)
    if stage in ("pre-upgrade", "post-upgrade", "upgrade"):
        return ToolResult(0, f"{stage}: nothing to do\n")
    if stage == "post_install":
        rpms = {**DEFAULT_RPMS, **h.get("rpms", {})}
        missing = [r for r, v in rpms.items() if not v]
        if missing:
            raise ToolFailure(f"hare_setup: not installed: {', '.join(missing)}")
        if rpms["consul"] != CONSUL_SUPPORTED:
            raise ToolFailure(
                f"hare_setup: consul {rpms['consul']} is not supported (need {CONSUL_SUPPORTED})"
            )
        return ToolResult(0, "all required packages are installed\n")
    if stage == "prepare":
        if fs.mkdir("/var/lib/hare"):
            ctx.log("mkdir /var/lib/hare")
        return ToolResult(0)
    if stage == "config":
        cdf = _opt(rest, "--file") or "/var/lib/hare/cluster.yaml"
        text = f"# CDF from {url}\nnodes:\n  - hostname: {ctx.host}\n"
        if not fs.exists(cdf) or fs.read(cdf) != text:
            fs.write(cdf, text, make_parents=False)
            ctx.log(f"write {cdf}")
        h["cdf"] = cdf
        kv = h.setdefault("kv", {})
        if "leader" not in kv:  # the real code's check-before-do
            kv.update({"leader": ctx.host, "config_url": url})
            ctx.log("consul kv import")
        return ToolResult(0, f"CDF {cdf} applied\n")
    if stage == "init":
        said = _bootstrap(ctx, fs, mkfs=True)
        if _shutdown(ctx):
            said.append("Stopping the cluster")
        return ToolResult(0, "\n".join(said) + "\n")
    if stage == "start":
        return ToolResult(0, "\n".join(_bootstrap(ctx, fs, mkfs=False)) + "\n")
    if stage == "test":
        plan = _opt(rest, "--plan") or "sanity"
        if plan not in PLANS:
            raise ToolFailure(f"hare_setup: unknown plan {plan!r}", exit_code=2)
        if not h.get("running"):
            raise ToolFailure("hare_setup test: the cluster is not running")
        log = TEST_LOG.format(plan=plan)
        text = f"{plan}: all services online on {ctx.host}\n"
        if not fs.exists(log) or fs.read(log) != text:
            fs.write(log, text)
            ctx.log(f"write {log}")
        return ToolResult(0, text)
    if stage == "reset":
        for plan in PLANS:
            if fs.remove(TEST_LOG.format(plan=plan)):
                ctx.log(f"rm {TEST_LOG.format(plan=plan)}")
        return ToolResult(0)
    # cleanup: stop, then clear the configuration (and with --pre-factory the mkfs too)
    _shutdown(ctx)
    if h.pop("kv", None):
        ctx.log("consul kv cleared")
    cdf = h.pop("cdf", None)
    if cdf and fs.remove(cdf):
        ctx.log(f"rm {cdf}")
    if "--pre-factory" in rest and fs.remove(MKFS_MARKER):
        ctx.log("rm mkfs marker")
    return ToolResult(0)
