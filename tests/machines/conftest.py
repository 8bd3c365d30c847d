"""A journal, the shipped machines and a simulated datacenter, driven through the
engine's own ``Runner`` — no mocks: every command runs a fake tool against the sim world,
and every assertion reads the journal or the world log."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import SimBackend
from fleetlog.engine.model import KindRegistry, load_registry
from fleetlog.engine.ops import create_resource
from fleetlog.engine.ops.inventory import load as load_inventory
from fleetlog.engine.runtime import Outcome, Runner
from fleetlog.journal import open_journal
from fleetlog.journal.base import Event, Journal
from fleetlog.machines.sim.scenarios import exascale_rack

SECRET_ENV = "FLEETLOG_SECRET_WALLET_PASSWORD"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class Lab:
    root: Path
    journal: Journal
    registry: KindRegistry
    sim: SimBackend
    runner: Runner

    def add(self, rid: str, **params: Any) -> None:
        create_resource(self.journal, self.registry, rid, params)

    def fire(self, rid: str, trigger: str, **params: Any) -> Outcome:
        return self.runner.fire(rid, trigger, params)

    def load(self, text: str, name: str = "inv.toml") -> Any:
        path = self.root / name
        path.write_text(text)
        return load_inventory(path, self.journal, self.registry)

    def state(self, rid: str) -> str:
        return self.runner.load(rid).state

    def events(self, rid: str) -> list[Event]:
        return self.journal.read_stream(rid)

    def effects(self, host: str | None = None) -> list[tuple[str, str]]:
        return [(e.host, e.effect) for e in self.sim.world.log_entries(host=host)]

    def last_run(self, rid: str) -> list[Event]:
        """The events of the latest transition of ``rid`` (from its command.accepted)."""
        events = self.events(rid)
        start = max(i for i, e in enumerate(events) if e.type == "command.accepted")
        return events[start:]

    def with_registry(self, registry: KindRegistry) -> Runner:
        return Runner(self.journal, registry, self.sim, sleep=lambda s: None)


def step_events(events: list[Event], step: str) -> list[Event]:
    return [e for e in events if e.payload.get("step") == step and e.type.startswith("step.")]


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv(SECRET_ENV, "s3cret-for-tests")
    monkeypatch.delenv("FLEETLOG_MACHINES", raising=False)
    journal = open_journal(str(tmp_path / "j.db"))
    sim = SimBackend(str(tmp_path / "j.db.sim"))
    registry = load_registry()
    runner = Runner(journal, registry, sim, sleep=lambda s: None)
    try:
        yield Lab(tmp_path, journal, registry, sim, runner)
    finally:
        sim.close()
        journal.close()


#: The seed's environment, small: 3 cells + KVM hosts, nothing configured.
CLUSTER_TOML = """
[defaults.kvm_host]
host = "{name}"
trust_node = "cell1"
exa_cluster = "exa"

[defaults.cell]
host = "{name}"

[kvm_host."node[1-4]"]
[cell."cell[1-3]"]

[exascale_cluster.exa]
cells = "cell[1-3]"
hosts = "node[1-3]"
"""


@pytest.fixture
def bare_rack(lab: Lab) -> Lab:
    """Cells and hosts as shipped: no Exascale anywhere."""
    exascale_rack(lab.sim.world, computes=4, configured=(), guests={}, cells=3)
    return lab


@pytest.fixture
def seed_rack(lab: Lab) -> Lab:
    """The seed's rack: node1 and node2 configured by an earlier deployment (outside
    fleetlog: configure_exascale adopts them by its skip probe), guests
    exa1_vm1 (Exascale) and asm1_vm1 (ASM) running on node1; node3.. never touched."""
    exascale_rack(lab.sim.world, computes=4)
    for i in range(1, 5):
        lab.add(f"kvm_host/node{i}", host=f"node{i}")  # as an operator adds them
    lab.add("vm/exa1_vm1", host="node1", storage="exascale")
    lab.add("vm/asm1_vm1", host="node1", storage="asm")
    return lab
