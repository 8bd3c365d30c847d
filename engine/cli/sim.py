"""``fleetlog sim init|show|fault|log``: the simulated datacenter as a twin.

``sim init`` builds the world from an inventory (and the resources the journal already
holds, in their states): each kind's pack says what its resources look like there. A
host the twin does not hold is unreachable. ``sim fault`` injects what an operator
fears; ``sim log`` shows what ran where. Everything printed here is about the
simulation, and says so (``[sim]``, or ``"simulated": true`` in JSON).

The world is the file beside the journal (``fleetlog.db.sim``), ``FLEETLOG_SIM_WORLD``,
or ``--world PATH``.
"""

from __future__ import annotations

import fnmatch
import json as jsonlib
import os
from typing import TYPE_CHECKING, Any

import typer

from fleetlog.engine.cli import output
from fleetlog.engine.cli.registration import add_group
from fleetlog.engine.cli.session import Session
from fleetlog.errors import UsageError

if TYPE_CHECKING:
    from fleetlog.engine.backends.sim import World
    from fleetlog.journal.base import Journal

sim_app = typer.Typer(
    help="The simulated datacenter as a twin of your inventory: build it, look into it, "
    "inject faults, read what ran where. Nothing here touches a real host.",
    no_args_is_help=True,
)
fault_app = typer.Typer(
    help="Faults in the simulated world: what an operator fears, injected on purpose.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Print JSON for scripts.")
WORLD = typer.Option(
    None,
    "--world",
    help="The simulated world file. [default: FLEETLOG_SIM_WORLD, else the journal's path + .sim]",
    show_default=False,
)
MARK = "[sim]"


def say(text: str) -> None:
    """One line of output about the simulation, marked as such."""
    output.say(f"{MARK} {text}")


def world_path(session: Session, given: str | None) -> str:
    from fleetlog.engine.backends import sim_world_path

    path = given or sim_world_path(session.journal_url)
    if path is None:
        raise UsageError(
            "a PostgreSQL journal keeps no simulated world beside it: give --world PATH "
            "(or set FLEETLOG_SIM_WORLD)"
        )
    return path


def open_world(session: Session, given: str | None) -> World:
    """An existing world: reading or faulting one that was never built is a mistake."""
    from fleetlog.engine.backends.sim import World

    path = world_path(session, given)
    if not os.path.exists(path):
        raise UsageError(f"no simulated world at {path} (`fleetlog sim init` builds one)")
    return World(path)


def existing_journal(session: Session) -> Journal | None:
    """The journal when there is one: ``sim init`` and ``rehearse`` work without."""
    try:
        session.for_reading()
    except UsageError:
        return None
    return session.journal


@sim_app.command("init")
def init(
    ctx: typer.Context,
    from_inventory: str = typer.Option(
        None,
        "--from-inventory",
        help="An inventory (TOML, docs/inventory.md): its resources are in the twin, in "
        "their initial state, whether or not it is loaded into the journal yet.",
        show_default=False,
    ),
    world: str = WORLD,
    json: bool = JSON,
) -> None:
    """Build the simulated world: a twin of the inventory and of the resources the
    journal holds, in their states. It replaces the world (its faults and log too); the
    file is private (0600) and holds no secret's value. A host it does not hold is
    unreachable."""
    from fleetlog.engine.backends.sim import World
    from fleetlog.engine.ops.twin import build_twin, read_inventory

    session: Session = ctx.obj
    inventory = read_inventory(from_inventory) if from_inventory else None
    journal = existing_journal(session)
    if inventory is None and journal is None:
        raise UsageError(
            "nothing to build a twin of: give --from-inventory FILE, or add resources to "
            "the journal first (`fleetlog add`, `fleetlog inventory load`)"
        )
    path = world_path(session, world)
    w = World(path)
    try:
        report = build_twin(w, session.registry, journal, inventory)
    finally:
        w.close()
    if json:
        output.emit_json(
            {
                "simulated": True,
                "world": path,
                "hosts": report.hosts,
                "resources": report.resources,
                "notes": report.notes,
            }
        )
        return
    say(
        f"world {path}: {len(report.hosts)} hosts for {len(report.resources)} resources "
        "(any other host is unreachable)"
    )
    from ClusterShell.NodeSet import NodeSet

    if report.hosts:
        say(f"hosts: {NodeSet.fromlist(report.hosts)}")
    for note in report.notes:
        say(f"note: {note}")


@sim_app.command("show")
def show(
    ctx: typer.Context,
    pattern: str = typer.Argument(
        None, help="A host name or glob (node*), or KIND/NAME for the host that resource is on."
    ),
    world: str = WORLD,
    json: bool = JSON,
) -> None:
    """What the simulated world holds for a host (or every host): its state as the fake
    tools see it."""
    session: Session = ctx.obj
    w = open_world(session, world)
    try:
        hosts = w.hosts()
        chosen = _hosts_for(session, w, pattern, hosts)
        states = {h: w.host_state(h) for h in chosen}
        twin = w.is_twin
        faults = [r.id for r in w.faults()]
    finally:
        w.close()
    if json:
        output.emit_json({"simulated": True, "twin": twin, "hosts": states, "faults": faults})
        return
    kind = "a twin: only these hosts answer" if twin else "a sandbox: any host answers"
    say(f"{len(hosts)} hosts ({kind}); {len(faults)} fault(s) injected")
    for host, state in states.items():
        say(f"{host}:")
        for line in jsonlib.dumps(state, indent=2, sort_keys=True).splitlines():
            output.say(f"    {line}")


def _hosts_for(session: Session, w: World, pattern: str | None, hosts: list[str]) -> list[str]:
    if pattern is None:
        return hosts
    if "/" in pattern:
        host = _resource_host(session, w, pattern)
        if host not in hosts:
            raise UsageError(f"{pattern} is on host {host!r}, which the simulated world lacks")
        return [host]
    chosen = [h for h in hosts if fnmatch.fnmatchcase(h, pattern)]
    if not chosen:
        raise UsageError(f"the simulated world has no host matching {pattern!r}")
    return chosen


def _resource_host(session: Session, w: World, rid: str) -> str:
    """The host a resource's commands run on, from the journal or the twin's inventory."""
    from fleetlog.engine.model import host_of, load_resource
    from fleetlog.engine.ops.inventory import plan
    from fleetlog.engine.ops.twin import stored_inventory

    session.registry.get(rid.partition("/")[0])
    journal = existing_journal(session)
    if journal is not None:
        rec = load_resource(journal, session.registry, rid)
        if rec is not None:
            return host_of(rec)
    inventory = stored_inventory(w)
    if inventory is not None:
        for e in plan(inventory.doc(), session.registry, None, inventory.source).create:
            if e.id == rid:
                host = e.params.get("host")  # a reference is KIND/NAME here
                return str(host).rpartition("/")[2] if host else e.name
    raise UsageError(f"no resource {rid} in the journal or the twin's inventory")


@fault_app.command("add")
def fault_add(
    ctx: typer.Context,
    mode: str = typer.Argument(
        ...,
        help="unreachable, fail, latency, hang, drop, status, or a machine pack's fault "
        "(`fleetlog sim fault list` shows them all).",
    ),
    host: str = typer.Option(None, "--host", help="The host it applies to (default: every host)."),
    tool: str = typer.Option(None, "--tool", help="Only calls of this command (dbmcli)."),
    command: str = typer.Option(
        None, "--command", help="Only command lines matching this glob ('dbmcli *edv*')."
    ),
    times: int = typer.Option(None, "--times", min=1, help="fail: the first N matching calls."),
    nth: int = typer.Option(None, "--nth", min=1, help="Only the N-th matching call."),
    ms: float = typer.Option(None, "--ms", min=0, help="latency/hang: how long, in ms."),
    status: str = typer.Option(None, "--status", help="status: what observation reports."),
    kind: str = typer.Option(None, "--kind", help="status: the kind it lies about."),
    name: str = typer.Option(None, "--name", help="status: the resource it lies about."),
    exit_code: int = typer.Option(1, "--exit-code", help="fail: the exit code."),
    message: str = typer.Option(None, "--message", help="What the failure says."),
    param: list[str] = typer.Option([], "--param", "-p", help="NAME=VALUE for a pack's fault."),
    world: str = WORLD,
    json: bool = JSON,
) -> None:
    """Inject a fault into the simulated world; it applies to every command run on the
    sim from now on (and to rehearsals, which copy the world)."""
    from fleetlog.engine.ops.twin import FaultSpec, inject

    params: dict[str, str] = {}
    for item in param:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--param {item!r}: expected NAME=VALUE")
        params[key] = value
    spec = FaultSpec(
        mode=mode,
        host=host,
        tool=tool,
        command=command,
        times=times,
        nth=nth,
        ms=ms,
        status=status,
        kind=kind,
        name=name,
        exit_code=exit_code,
        message=message,
        params=params,
    )
    session: Session = ctx.obj
    w = open_world(session, world)
    try:
        said = inject(w, spec)
    finally:
        w.close()
    if json:
        output.emit_json({"simulated": True, "injected": said})
        return
    say(said)


@fault_app.command("list")
def fault_list(ctx: typer.Context, world: str = WORLD, json: bool = JSON) -> None:
    """The faults in the world (with how many matching calls each has seen), and every
    fault mode there is."""
    from fleetlog.engine.backends.sim import world_faults
    from fleetlog.engine.ops.twin import GENERIC_MODES, describe

    session: Session = ctx.obj
    w = open_world(session, world)
    try:
        records = w.faults()
    finally:
        w.close()
    packs = world_faults()
    if json:
        output.emit_json(
            {
                "simulated": True,
                "faults": [
                    {"id": r.id, "hits": r.hits, "describe": describe(r.fault), **r.fault.to_json()}
                    for r in records
                ],
                "modes": {**GENERIC_MODES, **{n: f.help for n, f in packs.items()}},
            }
        )
        return
    if not records:
        say("no fault injected")
    for r in records:
        say(f"fault {r.id}: {describe(r.fault)} ({r.hits} matching call(s) so far)")
    output.say("modes:")
    for mode, text in {**GENERIC_MODES, **{n: f.help for n, f in packs.items()}}.items():
        output.say(f"  {mode:<15} {text}")


@fault_app.command("clear")
def fault_clear(
    ctx: typer.Context,
    ids: list[int] = typer.Argument(None, help="Fault ids to remove (default: every fault)."),
    world: str = WORLD,
    json: bool = JSON,
) -> None:
    """Remove faults. A pack's fault changed the world itself (a drifted status, a VIP
    that answers): that change stays, as it would on a real host."""
    session: Session = ctx.obj
    w = open_world(session, world)
    try:
        present = {r.id for r in w.faults()}
        chosen = sorted(present) if not ids else list(ids)
        unknown = [i for i in chosen if i not in present]
        if unknown:
            raise UsageError(f"no fault {unknown[0]} (`fleetlog sim fault list` shows them)")
        for fault_id in chosen:
            w.remove_fault(fault_id)
    finally:
        w.close()
    if json:
        output.emit_json({"simulated": True, "cleared": chosen})
        return
    say(f"cleared {len(chosen)} fault(s)")


@sim_app.command("log")
def log(
    ctx: typer.Context,
    host: str = typer.Option(None, "--host", help="Only effects on this host."),
    tool: str = typer.Option(None, "--tool", help="Only effects of this command."),
    last: int = typer.Option(None, "--last", min=1, help="Only the last N effects."),
    world: str = WORLD,
    json: bool = JSON,
) -> None:
    """The world's effect log: every change a command made, where and when, and the
    changes injected from outside. Read-only probes change nothing and are not in it."""
    session: Session = ctx.obj
    w = open_world(session, world)
    try:
        entries = w.log_entries(host=host, tool=tool)
    finally:
        w.close()
    if last is not None:
        entries = entries[-last:]
    rows: list[dict[str, Any]] = [
        {"seq": e.seq, "at": e.at, "host": e.host, "tool": e.tool, "effect": e.effect}
        for e in entries
    ]
    if json:
        output.emit_json({"simulated": True, "effects": rows})
        return
    if not rows:
        say("no effect logged")
    for r in rows:
        say(f"{r['seq']:>6} {r['at']} {r['host']:<12} {r['tool']:<12} {r['effect']}")


add_group(sim_app, "fault", fault_app)


def register(app: typer.Typer) -> None:
    from fleetlog.engine.cli.explore import explore
    from fleetlog.engine.cli.registration import add_commands

    add_commands(sim_app, {"explore": explore})  # the fault explorer (cli/explore.py)
    add_group(app, "sim", sim_app)
