"""A simulated-datacenter twin for the shipped machines: the real registry (every
``machines/*.fsm``), an SQLite journal and a sim world file in a temp dir, and a Runner
whose sleeps are recorded instead of slept (retries and polls cost no time)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import SimBackend
from fleetlog.engine.model import KindRegistry, load_registry
from fleetlog.engine.ops import create_resource
from fleetlog.engine.runtime import Outcome, Runner
from fleetlog.journal import open_journal
from fleetlog.journal.base import Event, Journal


@dataclass
class Twin:
    root: Path
    registry: KindRegistry
    journal: Journal
    sim: SimBackend
    runner: Runner
    sleeps: list[float] = field(default_factory=list)

    @property
    def journal_path(self) -> str:
        return str(self.root / "j.db")

    def add(self, rid: str, **params: Any) -> None:
        create_resource(self.journal, self.registry, rid, params)

    def fire(self, rid: str, trigger: str, **params: Any) -> Outcome:
        return self.runner.fire(rid, trigger, params)

    def state(self, rid: str) -> str:
        return self.runner.load(rid).state

    def host(self, host: str) -> dict[str, Any]:
        return self.sim.world.host_state(host)

    def effects(self, host: str | None = None) -> list[str]:
        return [e.effect for e in self.sim.world.log_entries(host=host)]

    def events(self, rid: str | None = None) -> list[Event]:
        return list(self.journal.read_all() if rid is None else self.journal.read_stream(rid))

    def steps(self, rid: str, step: str) -> list[Event]:
        return [
            e
            for e in self.events(rid)
            if e.type.startswith("step.") and e.payload.get("step") == step
        ]

    def exported(self) -> str:
        buf = io.StringIO()
        self.journal.export(buf)
        return buf.getvalue()

    def quirk(self, host: str, **quirks: Any) -> None:
        state = self.host(host)
        state.setdefault("quirks", {}).update(quirks)
        self.sim.world.set_host_state(host, state)


@pytest.fixture(name="twin")
def twin_fixture(tmp_path: Path) -> Iterator[Twin]:
    registry = load_registry()
    journal = open_journal(str(tmp_path / "j.db"), synchronous="NORMAL")
    # in memory: one connection behind a lock, so 64 threads queue instead of backing off
    sim = SimBackend(seed=3)
    sleeps: list[float] = []
    runner = Runner(journal, registry, sim, lock_wait=5.0, sleep=sleeps.append)
    t = Twin(tmp_path, registry, journal, sim, runner, sleeps)
    yield t
    sim.close()
    journal.close()
