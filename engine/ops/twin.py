"""The simulated datacenter as a twin of an inventory or a journal, and the faults an
operator injects into it (``fleetlog sim …``, ``fleetlog rehearse --faults``).

A twin holds exactly the hosts its resources imply — each kind's pack says what its
resources look like in the world (``@sim_seeder``) — so a step on a host the inventory
does not have fails as it would on a real network. Its file is private (0600) and holds
no secret's value. The inventory it was built from is kept in it (an inventory holds
parameters, never secrets), so a rehearsal can declare the same resources in its
scratch journal before they are loaded into the real one.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetlog.engine.backends.sim import (
    Fault,
    SeedResource,
    SimBackend,
    World,
    WorldFaultError,
    seed,
    world_faults,
)
from fleetlog.engine.backends.sim.world import SEEDED_KEY
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.replay import load_resource, replay_all
from fleetlog.engine.ops.inventory import InventoryError, plan, read_toml
from fleetlog.engine.ops.resources import create_resource
from fleetlog.errors import UsageError
from fleetlog.journal.base import Journal

#: World settings: the inventory text the twin was built from, and its file name.
INVENTORY_KEY = "inventory"
INVENTORY_SOURCE_KEY = "inventory_source"
#: The tool name ``sim log`` shows for a change injected from outside.
INJECTED = "(injected)"

#: Operator-facing fault modes (``sim fault add MODE``) the engine's simulator knows;
#: the packs add their own (``@sim_world_fault``).
GENERIC_MODES: dict[str, str] = {
    "unreachable": "the host does not answer: every command and observation fails",
    "fail": "a matching command fails: --times N (the first N), --nth N, else always",
    "latency": "a matching command takes --ms longer",
    "hang": "a matching command never answers (times out), or hangs --ms",
    "drop": "the connection drops after a matching command ran: its outcome is in doubt",
    "status": "observation reports --status for --kind/--name instead of the truth",
}


@dataclass(frozen=True)
class Inventory:
    """An inventory's text and where it came from."""

    text: str
    source: str

    def doc(self) -> dict[str, Any]:
        try:
            return tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise InventoryError(f"{self.source}: invalid TOML: {exc}") from None


@dataclass
class TwinReport:
    """What ``sim init`` built."""

    hosts: list[str]
    resources: list[str]
    notes: list[str] = field(default_factory=list)


def read_inventory(path: str) -> Inventory:
    read_toml(path)  # the loader's own errors for a missing or broken file
    with open(path, encoding="utf-8-sig") as fp:
        return Inventory(fp.read(), path)


def stored_inventory(world: World) -> Inventory | None:
    text = world.setting(INVENTORY_KEY)
    if text is None:
        return None
    return Inventory(text, world.setting(INVENTORY_SOURCE_KEY) or "inventory")


def twin_resources(
    registry: KindRegistry, journal: Journal | None, inventory: Inventory | None
) -> list[SeedResource]:
    """Every resource the twin is for: the inventory's (in their kind's initial state)
    and the journal's (in the state replayed from it; the journal wins)."""
    found: dict[str, SeedResource] = {}
    if inventory is not None:
        for entry in plan(inventory.doc(), registry, None, inventory.source).create:
            initial = registry.get(entry.kind).spec.initial
            found[entry.id] = SeedResource(entry.kind, entry.name, entry.params, initial)
    if journal is not None:
        for rid, rec in replay_all(journal, registry).items():
            if rec.kind in registry:
                found[rid] = SeedResource(rec.kind, rec.name, rec.params, rec.state)
    return list(found.values())


def build_twin(
    world: World,
    registry: KindRegistry,
    journal: Journal | None,
    inventory: Inventory | None,
) -> TwinReport:
    """Replace ``world`` by the twin of ``journal`` and ``inventory``."""
    through = journal.head() if journal is not None else 0
    resources = twin_resources(registry, journal, inventory)
    seeding = seed(resources)
    meta = {SEEDED_KEY: str(through)}
    if inventory is not None:
        meta |= {INVENTORY_KEY: inventory.text, INVENTORY_SOURCE_KEY: inventory.source}
    world.declare(seeding.states, meta)
    hosts = sorted(h for h in seeding.states if h not in seeding.pseudo)
    return TwinReport(hosts, sorted(r.id for r in resources), seeding.notes)


# --------------------------------------------------------- a world following its journal

#: Above this many new resources one fleet-wide replay is cheaper than one per resource.
REPLAY_ALL_ABOVE = 500


def follow_journal(
    backend: SimBackend,
    journal: Callable[[], Journal | None],
    registry: Callable[[], KindRegistry],
) -> list[str]:
    """Make the CLI's world hold what the journal's inventory says, and nothing else.

    A new (empty) world and a twin (``sim init``) are closed: every resource's host is
    in it, seeded by its kind's pack (``@sim_seeder``; a kind without one gets a plain
    host where its steps run), and any other host is unreachable. Only the resources
    created since the world was last seeded are handed over (the seq is kept in the
    world), so a command on a large journal reads a few events, not the fleet. A
    sandbox world someone filled on purpose (a test's, the demo's) is left as it is.
    ``journal`` is called when needed and may say there is none yet. Returns the
    seeders' notes (a resource seeded as shipped).
    """
    if not backend.world.is_twin and not backend.world.is_empty():
        return []

    def catch_up() -> list[str]:
        return sync_world(backend.world, registry(), journal())

    notes = catch_up()
    backend.follow(catch_up)
    return notes


def sync_world(world: World, registry: KindRegistry, journal: Journal | None) -> list[str]:
    """Seed ``world`` (closing it) with the resources ``journal`` created since the seq
    it is seeded through; the seeders' notes. A no-op read when it is up to date."""
    through = journal.head() if journal is not None else 0
    since = world.seeded_through()
    if since is not None and since >= through:
        return []
    notes: list[str] = []

    def build(since: int, existing: Callable[[str], dict[str, Any] | None]) -> dict[str, Any]:
        if journal is None:
            return {}
        resources = _created(journal, registry, since, through)
        lookup = _JournalLookup(journal, registry, through)
        seeding = seed(resources, existing=existing, lookup=lookup)
        notes.extend(seeding.notes)
        return seeding.states

    world.extend(through, build)
    return notes


def _created(
    journal: Journal, registry: KindRegistry, since: int, through: int
) -> list[SeedResource]:
    """The resources created in ``(since, through]``, in their state as of ``through``."""
    rows = journal.read_all_rows(
        since, through, types=(ev.RESOURCE_CREATED,), columns=("seq", "stream")
    )
    ids = list(dict.fromkeys(row[1] for row in rows))
    if not ids:
        return []
    if since == 0 or len(ids) > REPLAY_ALL_ABOVE:
        records = replay_all(journal, registry, through)
        found = [records[rid] for rid in ids if rid in records]
    else:
        loaded = (load_resource(journal, registry, rid, through, False) for rid in ids)
        found = [rec for rec in loaded if rec is not None]
    return [
        SeedResource(rec.kind, rec.name, rec.params, rec.state)
        for rec in found
        if rec.kind in registry
    ]


class _JournalLookup:
    """The resources seeded before, read from the journal when a seeder asks."""

    def __init__(self, journal: Journal, registry: KindRegistry, through: int) -> None:
        self.journal, self.registry, self.through = journal, registry, through
        self._cache: dict[str, SeedResource | None] = {}

    def resource(self, rid: str) -> SeedResource | None:
        if rid not in self._cache:
            kind = rid.partition("/")[0]
            rec = None
            if kind in self.registry:
                rec = load_resource(self.journal, self.registry, rid, self.through, False)
            self._cache[rid] = (
                None if rec is None else SeedResource(rec.kind, rec.name, rec.params, rec.state)
            )
        return self._cache[rid]

    def resources(self, kind: str) -> list[SeedResource]:
        found = (self.resource(rid) for rid in self.journal.streams(kind + "/"))
        return [r for r in found if r is not None]


# ------------------------------------------------------------------------------ faults


class FaultSpecError(UsageError):
    """A fault an operator described that cannot be injected."""


@dataclass(frozen=True)
class FaultSpec:
    """One fault as an operator writes it (``sim fault add`` options, a faults file)."""

    mode: str
    host: str | None = None
    tool: str | None = None
    command: str | None = None
    times: int | None = None
    nth: int | None = None
    ms: float | None = None
    status: str | None = None
    kind: str | None = None
    name: str | None = None
    exit_code: int = 1
    message: str | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], where: str) -> FaultSpec:
        """One ``[[fault]]`` table of a faults file."""
        known = set(cls.__dataclass_fields__) - {"params"}
        raw = dict(data)
        if "mode" not in raw:
            raise FaultSpecError(f"{where}: a fault needs a mode")
        params = raw.pop("params", {})
        if not isinstance(params, dict):
            raise FaultSpecError(f"{where}: params must be a table")
        unknown = sorted(set(raw) - known)
        if unknown:
            raise FaultSpecError(f"{where}: unknown key {unknown[0]!r} (keys: {sorted(known)})")
        try:
            return cls(**raw, params={str(k): str(v) for k, v in params.items()})
        except TypeError as exc:
            raise FaultSpecError(f"{where}: {exc}") from None

    def fault(self) -> Fault | None:
        """The simulator's fault, or None for a pack's world fault."""
        mode = self.mode
        tool = self.tool or "*"
        common: dict[str, Any] = {
            "host": self.host,
            "message": self.message,
            "command": self.command,
        }
        if mode == "unreachable":
            if self.tool or self.command:
                raise FaultSpecError("unreachable is a host's: give --host, not --tool")
            return Fault("*", mode="unreachable", n=self.nth, **common)
        if mode == "fail":
            if self.times is not None and self.nth is not None:
                raise FaultSpecError("fail takes --times N or --nth N, not both")
            if self.times is not None:
                kind = "fail_times"
            elif self.nth is not None:
                kind = "fail_nth"
            else:
                kind = "fail_always"
            n = self.times if self.times is not None else self.nth
            return Fault(tool, mode=kind, n=n, exit_code=self.exit_code, **common)  # type: ignore[arg-type]
        if mode == "latency":
            if self.ms is None:
                raise FaultSpecError("latency needs --ms")
            return Fault(tool, mode="slow", ms=self.ms, n=self.nth, **common)
        if mode == "hang":
            return Fault(tool, mode="hang", ms=self.ms, n=self.nth, **common)
        if mode == "drop":
            return Fault(tool, mode="drop", n=self.nth, **common)
        if mode == "status":
            if not self.status:
                raise FaultSpecError("status needs --status (what observation reports)")
            return Fault(
                mode="wrong_status",
                host=self.host,
                status=self.status,
                kind=self.kind,
                name=self.name,
            )
        if mode in world_faults():
            return None
        modes = sorted([*GENERIC_MODES, *world_faults()])
        raise FaultSpecError(f"unknown fault mode {mode!r} (modes: {', '.join(modes)})")


def inject(world: World, spec: FaultSpec) -> str:
    """Inject ``spec`` into ``world``; what it did, in words."""
    fault = spec.fault()
    if fault is not None:
        fault_id = world.inject(fault)
        return f"fault {fault_id}: {describe(fault)}"
    wf = world_faults()[spec.mode]
    unknown = sorted(set(spec.params) - set(wf.params))
    if unknown:
        raise FaultSpecError(
            f"{spec.mode}: unknown param {unknown[0]!r} (params: {', '.join(wf.params)})"
        )
    try:
        said = wf.fn(world, spec.host, spec.params)
    except WorldFaultError as exc:
        raise FaultSpecError(f"{spec.mode}: {exc}") from None
    argv = [spec.mode, *(f"{k}={v}" for k, v in sorted(spec.params.items()))]
    world.record(spec.host or "-", INJECTED, argv, said)
    return f"{spec.mode}: {said} (a change to the world: `sim fault clear` does not undo it)"


def describe(fault: Fault) -> str:
    """A fault in an operator's words."""
    where = f"on {fault.host}" if fault.host else "on every host"
    what = "any command" if fault.tool == "*" else fault.tool
    if fault.command:
        what = f"a command matching {fault.command!r}"
    n = fault.n
    if fault.mode == "unreachable":
        return f"{fault.host or 'every host'} unreachable" + (f" (call {n} only)" if n else "")
    if fault.mode == "fail_times":
        return f"{what} {where} fails the first {n} time(s)"
    if fault.mode == "fail_nth":
        return f"{what} {where} fails on call {n}"
    if fault.mode == "fail_always":
        return f"{what} {where} always fails"
    if fault.mode == "slow":
        return f"{what} {where} takes {fault.ms:g} ms longer"
    if fault.mode == "hang":
        return f"{what} {where} hangs" + (f" {fault.ms:g} ms" if fault.ms else "")
    if fault.mode == "drop":
        return f"the connection drops after {what} ran {where}"
    if fault.mode == "wrong_status":
        target = f"{fault.kind or '*'}/{fault.name or '*'}"
        return f"observation of {target} {where} reports {fault.status!r}"
    return f"{fault.mode} {what} {where}"


def read_faults_file(path: str) -> list[FaultSpec]:
    """A faults file: TOML with one ``[[fault]]`` table per fault."""
    try:
        with open(path, "rb") as fp:
            doc = tomllib.load(fp)
    except FileNotFoundError:
        raise FaultSpecError(f"{path}: no such file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FaultSpecError(f"{path}: {exc}") from None
    tables = doc.get("fault", [])
    if not isinstance(tables, list) or set(doc) - {"fault"}:
        raise FaultSpecError(f"{path}: expected [[fault]] tables only")
    specs = [FaultSpec.from_mapping(t, f"{path}: fault {i}") for i, t in enumerate(tables, 1)]
    for spec in specs:
        spec.fault()  # an unknown mode or a missing option fails before anything runs
    return specs


def declare_inventory(world: World, registry: KindRegistry, journal: Journal) -> None:
    """The twin's inventory's resources that the journal does not hold yet."""
    inventory = stored_inventory(world)
    if inventory is None:
        return
    # Planned without the journal: a resource it holds keeps its own parameters (its
    # machine may have set some since it was loaded); only the missing ones are added.
    for entry in plan(inventory.doc(), registry, None, inventory.source).create:
        if journal.stream_version(entry.id) > 0:
            continue
        given = {k: v for k, v in entry.params.items() if v is not None}
        create_resource(journal, registry, entry.id, given)
