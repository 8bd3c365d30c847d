"""Registry of fake tools and observers: the simulated datacenter's "installed software".

A fake tool is a plain function ``fn(ctx: ToolContext) -> ToolResult | (code, out, err)``
registered with ``@sim_tool("name")``. It reads and mutates ``ctx.state`` (this host's
state, persisted after the call), calls ``ctx.log(...)`` for every side effect, and may
read other hosts through ``ctx.world``. Raising :class:`ToolFailure` fails the call
*and* discards its state changes, which is how a real tool that validates before it acts
behaves.

Registration is a decorator so any module can add tools: the modules machine packs
declare (``Pack.sim_tools``; the built-in pack's families live with it) and modules named
by the entry-point group ``fleetlog.sim_tools``, all loaded once, lazily, on first
dispatch. The simulator itself ships no tool: what a host has installed is the packs'
business.

Observers (``@sim_observer("vm")``) say what status a backend reports for each resource
of a kind on one host; they are pure functions of the host's state.

The same modules say what a kind's resources look like in the world
(``@sim_seeder("kvm_host")``: ``fn(resource, seeding)``, used by ``fleetlog sim init``)
and which seed-specific faults an operator may inject (``@sim_world_fault("vip")``:
``fn(world, host, params) -> what changed``), e.g. a VIP that already answers.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import random
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeAlias

from fleetlog import packs

ENTRY_POINT_GROUP = "fleetlog.sim_tools"
#: Tool modules to load instead of asking the installed packs: set by the shims of
#: ``tool_main`` for a process that cannot see the installed distributions (a host of
#: the SSH lab runs the tools from a plain copy of the sources).
TOOLS_ENV = "FLEETLOG_SIM_TOOLS"


@dataclass(frozen=True, slots=True)
class ToolResult:
    """What a fake tool printed and returned."""

    exit_code: int = 0
    stdout: str = ""
    stderr: str = ""


class ToolFailure(Exception):
    """Raised by a tool to fail the call with no effect (its state changes are dropped)."""

    def __init__(self, message: str, exit_code: int = 1, stdout: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.stdout = stdout


class WorldReader(Protocol):
    """Other hosts, consistent with the call's own transaction.

    A tool mutates its own host through ``ctx.state``; ``write_host_state`` is the one
    way to change another (pseudo-)host, for shared volumes. Like ``ctx.state``, what
    it writes is kept only if the call succeeds.
    """

    def host_state(self, host: str) -> Mapping[str, Any]: ...

    def hosts(self) -> list[str]: ...

    def write_host_state(self, host: str, state: Mapping[str, Any]) -> None: ...


@dataclass(slots=True)
class ToolContext:
    """Everything a fake tool may touch during one call."""

    argv: list[str]
    env: Mapping[str, str]
    host: str
    state: dict[str, Any]
    world: WorldReader
    #: What seeds ``random``: (backend seed, host, tool, call number).
    seed: str
    #: 1-based number of this call of this tool on this host (drives ``random``).
    call_number: int
    effects: list[str] = field(default_factory=list)
    latency_ms: float = 0.0
    #: Secret values this call was given: logged as their digests (``conceal``).
    concealed: list[str] = field(default_factory=list)
    _rng: random.Random | None = None

    @property
    def random(self) -> random.Random:
        """This call's reproducible RNG, built on first use: seeding from a string
        hashes it, and most tools never draw a number."""
        if self._rng is None:
            self._rng = random.Random(self.seed)
        return self._rng

    @property
    def tool(self) -> str:
        return self.argv[0]

    @property
    def args(self) -> list[str]:
        return self.argv[1:]

    def log(self, effect: str) -> None:
        """Record a side effect in the world log. Read-only probes must not call this:
        the world log is how tests prove a step did (or did not) act twice."""
        self.effects.append(effect)

    def conceal(self, value: str) -> str:
        """Say that ``value`` (an argument) is a secret: the world log shows its digest
        wherever it would show the value. Returns the digest, which is what a tool
        keeps in the host's state when it must compare the secret later."""
        if value:
            self.concealed.append(value)
        return secret_digest(value)

    def add_latency(self, ms: float) -> None:
        """Make this call take ``ms`` longer. The sleep happens after the effect is
        committed and outside any lock, so parallel calls overlap like real ones."""
        self.latency_ms += max(0.0, ms)


def secret_digest(value: str) -> str:
    """What the world keeps instead of a secret's value: enough to compare, not to
    reveal (the world file is a simulation's, but it is still a file on disk)."""
    return "sha256:" + hashlib.sha256(("fleetlog-sim\0" + value).encode()).hexdigest()


def scrub(text: str, secrets: list[str]) -> str:
    """``text`` with every secret value replaced by its digest."""
    for value in sorted(secrets, key=len, reverse=True):
        if value and value in text:
            text = text.replace(value, secret_digest(value))
    return text


ToolReturn: TypeAlias = ToolResult | tuple[int, str, str]
ToolFn: TypeAlias = Callable[[ToolContext], ToolReturn]
#: ``fn(host, state)``: the status of each resource of the kind on the host, ``{}`` when
#: the host has none, None when the host has no view of the kind at all (a storage cell
#: says nothing about KVM guests): only a host with a view proves a resource absent.
ObserverFn: TypeAlias = Callable[[str, Mapping[str, Any]], Mapping[str, str] | None]


class Seeding(Protocol):
    """The world being built by ``fleetlog sim init`` (``backends.sim.seeding``)."""

    def host(self, name: str) -> dict[str, Any]: ...

    def has_host(self, name: str) -> bool: ...

    def resource(self, rid: str) -> SeedResource | None: ...

    def resources(self, kind: str) -> list[SeedResource]: ...

    def shared(self, name: str) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class SeedResource:
    """One resource the twin is built for: its kind, name, parameters and the state the
    journal (or, for an inventory not yet loaded, the kind's initial state) gives it."""

    kind: str
    name: str
    params: Mapping[str, Any]
    state: str

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def host(self) -> str:
        """Where its commands run: its ``host`` param, else its name (``host_of``)."""
        host = self.params.get("host")
        return str(host) if host else self.name


#: ``fn(resource, seeding)``: put what ``resource`` is, in its state, into the world;
#: returns a note when the world cannot show that state (seeded as shipped instead).
SeederFn: TypeAlias = Callable[[SeedResource, Seeding], str | None]


class WorldFaultError(ValueError):
    """A seed-specific fault that cannot be injected as asked (no such guest, ...)."""


@dataclass(frozen=True, slots=True)
class WorldFault:
    """A change made behind the machines' backs: ``fn(world, host, params)`` applies it
    to the world and says what it did. ``params`` lists the ``--param`` names it reads."""

    name: str
    help: str
    params: tuple[str, ...]
    fn: Callable[[Any, str | None, Mapping[str, str]], str]


_tools: dict[str, ToolFn] = {}
_observers: dict[str, list[ObserverFn]] = {}
_seeders: dict[str, list[SeederFn]] = {}
_world_faults: dict[str, WorldFault] = {}
_loaded = False
_load_lock = threading.Lock()


def _same(a: Callable[..., Any], b: Callable[..., Any]) -> bool:
    """Re-registering the same function (a module re-imported) is not a conflict."""
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


def sim_tool(name: str, *, replace: bool = False) -> Callable[[ToolFn], ToolFn]:
    """Register ``fn`` as the fake executable ``name``.

    Two different functions claiming one name is a bug (which ``dbmcli`` would run?),
    so it raises unless ``replace=True`` says the override is deliberate.
    """

    def register(fn: ToolFn) -> ToolFn:
        existing = _tools.get(name)
        if existing is not None and not replace and not _same(existing, fn):
            raise ValueError(
                f"sim tool {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        _tools[name] = fn
        return fn

    return register


def sim_observer(kind: str) -> Callable[[ObserverFn], ObserverFn]:
    """Register an observer: ``fn(host, state) -> {resource name: status}`` for ``kind``
    (None: this host has no view of the kind).

    Several observers may serve one kind (a machine pack adding resources of a kind
    another module already models); their reports are merged.
    """

    def register(fn: ObserverFn) -> ObserverFn:
        group = _observers.setdefault(kind, [])
        group[:] = [f for f in group if not _same(f, fn)]
        group.append(fn)
        return fn

    return register


def sim_seeder(kind: str) -> Callable[[SeederFn], SeederFn]:
    """Register what a resource of ``kind`` looks like in the world, by its state."""

    def register(fn: SeederFn) -> SeederFn:
        group = _seeders.setdefault(kind, [])
        group[:] = [f for f in group if not _same(f, fn)]
        group.append(fn)
        return fn

    return register


def sim_world_fault(
    name: str, *, help: str, params: tuple[str, ...] = ()
) -> Callable[[Callable[[Any, str | None, Mapping[str, str]], str]], Any]:
    """Register a seed-specific fault (``fleetlog sim fault add NAME``)."""

    def register(
        fn: Callable[[Any, str | None, Mapping[str, str]], str],
    ) -> Callable[[Any, str | None, Mapping[str, str]], str]:
        _world_faults[name] = WorldFault(name, help, params, fn)
        return fn

    return register


def seeders_for(kind: str) -> list[SeederFn]:
    load_tools()
    return list(_seeders.get(kind, ()))


def world_faults() -> dict[str, WorldFault]:
    load_tools()
    return dict(_world_faults)


def load_tools() -> None:
    """Import the packs' tool modules and the ``fleetlog.sim_tools`` entry points.

    Done lazily so importing the sim costs nothing until it is used.
    """
    global _loaded
    if _loaded:
        return
    with _load_lock:
        if _loaded:
            return
        for module_name in tool_modules():
            importlib.import_module(module_name)
        if not os.environ.get(TOOLS_ENV):
            for ep in packs.entry_points(ENTRY_POINT_GROUP):
                ep.load()
        _loaded = True


def tool_modules() -> list[str]:
    """The modules that register the simulated datacenter's tools."""
    chosen = os.environ.get(TOOLS_ENV)
    if chosen:
        return [m for m in chosen.split(",") if m]
    return list(packs.discover().named("sim_tools"))


def get_tool(name: str) -> ToolFn | None:
    load_tools()
    return _tools.get(name)


def tool_names() -> list[str]:
    load_tools()
    return sorted(_tools)


def observers_for(kind: str) -> list[ObserverFn]:
    load_tools()
    return list(_observers.get(kind, ()))


def normalize(result: ToolReturn) -> ToolResult:
    """Accept the tuple shorthand tools may return."""
    if isinstance(result, ToolResult):
        return result
    code, out, err = result
    return ToolResult(int(code), str(out), str(err))
