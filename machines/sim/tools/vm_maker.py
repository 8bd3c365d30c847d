"""Fake ``vm_maker``: guest lifecycle on a KVM host.

Supported: ``--clone SRC --name NAME [--storage exascale|asm]`` (the source is found on
any host of the world; storage defaults to the source's), ``--create NAME --image IMG
[--storage exascale|asm]`` (a new guest from a template image; storage defaults to asm),
``--start NAME``, ``--stop NAME``, ``--delete NAME``, ``--list``, ``--status NAME`` (read-only) and
``--deploy STAGE --name NAME`` (the clone flow's post-create stages; idempotent: a stage
already deployed on a guest is logged once).

Guests live in ``state["vms"][name] = {"status": "running"|"stopped", "storage": ...,
"source": SRC|None}``; the ``vm`` observer reports their status. Cloning an Exascale
guest onto a host whose EDV is not running fails exactly as in the seed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fleetlog.engine.backends.sim import (
    ToolContext,
    ToolFailure,
    ToolResult,
    sim_observer,
    sim_tool,
)
from fleetlog.machines.sim.tools import exascale_state as exa_state
from fleetlog.machines.sim.tools._args import parse

STORAGE_KINDS = ("exascale", "asm")
RUNNING, STOPPED = "running", "stopped"


def not_configured_error(name: str) -> str:
    """The seed's failure, word for word (the engine's tests match on it)."""
    return (
        "ERROR: Exascale is not configured on this KVM host (EDV service not running); "
        f"cannot create guest {name}"
    )


@sim_tool("vm_maker")
def vm_maker(ctx: ToolContext) -> ToolResult:
    opts = parse(
        "vm_maker",
        ctx.args,
        valued=[
            "--clone",
            "--create",
            "--image",
            "--name",
            "--storage",
            "--start",
            "--stop",
            "--delete",
            "--status",
            "--deploy",
        ],
        flags=["--list"],
    )
    actions: list[str] = [
        a
        for a in ("--clone", "--create", "--start", "--stop", "--delete", "--status", "--deploy")
        if a in opts.values
    ]
    if "--list" in opts.flags:
        actions.append("--list")
    if len(actions) != 1 or opts.positional:
        raise ToolFailure(
            "usage: vm_maker --clone SRC --name NAME [--storage exascale|asm] | "
            "--create NAME --image IMG [--storage exascale|asm] | "
            "--start NAME | --stop NAME | --delete NAME | --status NAME | "
            "--deploy STAGE --name NAME | --list",
            exit_code=2,
        )
    action = actions[0]
    if action == "--list":
        vms = ctx.state.get("vms", {})
        return ToolResult(0, "".join(f"{n} {vms[n]['status']}\n" for n in sorted(vms)))
    if action == "--clone":
        return _clone(
            ctx, opts.values["--clone"], opts.values.get("--name"), opts.values.get("--storage")
        )
    if action == "--create":
        return _create(
            ctx, opts.values["--create"], opts.values.get("--image"), opts.values.get("--storage")
        )
    if action == "--status":
        vm = ctx.state.get("vms", {}).get(opts.values["--status"])
        if vm is None:
            raise ToolFailure(f"ERROR: guest {opts.values['--status']} not found on {ctx.host}")
        return ToolResult(0, f"{vm['status']}\n")
    if action == "--deploy":
        return _deploy(ctx, opts.values["--deploy"], opts.values.get("--name"))
    return _power(ctx, action, opts.values[action])


DEPLOY_STAGES = (
    "users",
    "cell_connectivity",
    "config_software",
    "root_script",
    "db_home",
    "db_instance",
)


def _deploy(ctx: ToolContext, stage: str, name: str | None) -> ToolResult:
    if stage not in DEPLOY_STAGES or not name:
        raise ToolFailure(
            f"vm_maker: --deploy takes one of {', '.join(DEPLOY_STAGES)} and --name NAME",
            exit_code=2,
        )
    vm = ctx.state.get("vms", {}).get(name)
    if vm is None:
        raise ToolFailure(f"ERROR: guest {name} not found on {ctx.host}")
    done = vm.setdefault("deployed", [])
    if stage not in done:
        done.append(stage)
        ctx.log(f"guest {name}: {stage} deployed")
    return ToolResult(0, f"{stage} deployed on {name}\n")


def _find_source(ctx: ToolContext, source: str) -> Mapping[str, Any] | None:
    for host in [ctx.host, *ctx.world.hosts()]:
        state = ctx.state if host == ctx.host else ctx.world.host_state(host)
        vm: Mapping[str, Any] | None = state.get("vms", {}).get(source)
        if vm is not None:
            return vm
    return None


def _clone(ctx: ToolContext, source: str, name: str | None, storage: str | None) -> ToolResult:
    if not name:
        raise ToolFailure("vm_maker: --clone needs --name NAME", exit_code=2)
    if storage is not None and storage not in STORAGE_KINDS:
        raise ToolFailure(f"vm_maker: --storage must be one of {STORAGE_KINDS}", exit_code=2)
    src = _find_source(ctx, source)
    if src is None:
        raise ToolFailure(f"ERROR: source guest {source} not found")
    storage = storage or src.get("storage", "asm")
    vms = ctx.state.setdefault("vms", {})
    if name in vms:
        raise ToolFailure(f"ERROR: guest {name} already exists on {ctx.host}")
    if storage == "exascale" and not exa_state.edv_online(ctx.state):
        raise ToolFailure(not_configured_error(name))
    vms[name] = {"status": RUNNING, "storage": storage, "source": source}
    ctx.log(f"guest {name} cloned from {source} ({storage})")
    return ToolResult(0, f"Guest {name} created from {source} and started\n")


def _create(ctx: ToolContext, name: str, image: str | None, storage: str | None) -> ToolResult:
    if not image:
        raise ToolFailure("vm_maker: --create needs --image IMG", exit_code=2)
    storage = storage or "asm"
    if storage not in STORAGE_KINDS:
        raise ToolFailure(f"vm_maker: --storage must be one of {STORAGE_KINDS}", exit_code=2)
    vms = ctx.state.setdefault("vms", {})
    if name in vms:
        raise ToolFailure(f"ERROR: guest {name} already exists on {ctx.host}")
    if storage == "exascale" and not exa_state.edv_online(ctx.state):
        raise ToolFailure(not_configured_error(name))
    vms[name] = {"status": RUNNING, "storage": storage, "source": None, "image": image}
    ctx.log(f"guest {name} created from image {image} ({storage})")
    return ToolResult(0, f"Guest {name} created from image {image} and started\n")


def _power(ctx: ToolContext, action: str, name: str) -> ToolResult:
    vms = ctx.state.get("vms", {})
    vm = vms.get(name)
    if vm is None:
        raise ToolFailure(f"ERROR: guest {name} not found on {ctx.host}")
    if action == "--delete":
        del vms[name]
        ctx.log(f"guest {name} deleted")
        return ToolResult(0, f"Guest {name} deleted\n")
    wanted = RUNNING if action == "--start" else STOPPED
    if vm["status"] != wanted:
        vm["status"] = wanted
        ctx.log(f"guest {name} {'started' if wanted == RUNNING else 'stopped'}")
    return ToolResult(0, f"Guest {name} is {wanted}\n")


def is_kvm_host(state: Mapping[str, Any]) -> bool:
    return state.get("role") == "kvm_host" or "exascale" in state or "vms" in state


@sim_observer("vm")
def observe_vms(host: str, state: Mapping[str, Any]) -> dict[str, str] | None:
    """The guests of a KVM host; any other host (a cell, an admin node) has no view."""
    if not is_kvm_host(state):
        return None
    return {name: vm["status"] for name, vm in state.get("vms", {}).items()}


@sim_observer("kvm_host")
def observe_kvm_host(host: str, state: Mapping[str, Any]) -> dict[str, str] | None:
    """A KVM host reports ``exascale:online`` once EDV runs, else ``exascale:absent``;
    a host that is not one (a storage cell) says nothing about KVM hosts."""
    if not is_kvm_host(state):
        return None
    return {host: "exascale:online" if exa_state.edv_online(state) else "exascale:absent"}
