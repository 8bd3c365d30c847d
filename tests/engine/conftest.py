"""Fixtures for the executor's tests: a journal + sim world in a temp dir, driven either
through the ``fleetlog`` CLI (in-process via ``fleetlog.engine.cli.main``, or in a subprocess when
it must be SIGKILLed) or through a :class:`~runtime.Runner` built on test
machines compiled from text."""

from __future__ import annotations

import abc
import contextlib
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleetlog import dsl
from fleetlog.engine.backends.sim import SimBackend
from fleetlog.engine.model import Kind, KindRegistry, discover_plugins
from fleetlog.engine.ops import create_resource
from fleetlog.engine.runtime import Runner
from fleetlog.journal import open_journal
from fleetlog.journal.base import Event, Journal

FIXTURES = Path(__file__).resolve().parent / "fixtures"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
CRASH_ENV = "FLEETLOG_TEST_CRASH_AFTER_EVENTS"
#: The CLI as a child process (``python -m engine.cli`` is not an entry point).
CLI_ARGV = [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def effects(world_backend: SimBackend, host: str | None = None) -> Counter[tuple[str, str]]:
    """The world log's side effects as a multiset of (host, effect), order ignored."""
    return Counter((e.host, e.effect) for e in world_backend.world.log_entries(host=host))


class CliDriver(abc.ABC):
    """``fleetlog --journal <journal_path>`` in this process (the real CLI code path) or
    in a child process (so a crash hook or fault may SIGKILL it), and the journal it
    writes. Mixed into the fixtures' dataclasses, which supply the fields."""

    root: Path
    capsys: pytest.CaptureFixture[str]
    _journal: Journal | None
    #: how long a child may run before the test fails as hung (not a timing assertion)
    child_timeout: float = 120.0

    @property
    @abc.abstractmethod
    def journal_path(self) -> str:
        """Where the journal is: a file path or a ``postgresql://`` URL."""

    def cli(self, *args: str) -> CliResult:
        from fleetlog.engine.cli import main

        self.capsys.readouterr()
        code = main(["--journal", self.journal_path, *args])
        captured = self.capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    def inherited_env(self) -> dict[str, str]:
        """What a child inherits from this process before ``env``'s additions."""
        env = dict(os.environ)
        env.pop(CRASH_ENV, None)
        return env

    def env(self, **extra: str) -> dict[str, str]:
        env = self.inherited_env()
        env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(extra)
        return env

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*CLI_ARGV, "--journal", self.journal_path, *args],
            env=self.env(**env),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def sub(self, *args: str, **env: str) -> CliResult:
        proc = self.spawn(*args, **env)
        out, err = proc.communicate(timeout=self.child_timeout)
        return CliResult(proc.returncode, out, err)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            self._journal = open_journal(self.journal_path)
        return self._journal

    def events(self, rid: str | None = None) -> list[Event]:
        if rid is None:
            return list(self.journal.read_all())
        return list(self.journal.read_stream(rid))


@dataclass
class Fleet(CliDriver):
    """One journal (``<tmp>/j.db``) and its sim world (``j.db.sim``) in a temp dir."""

    root: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    machines: list[Path] = field(default_factory=list)
    _sim: SimBackend | None = None
    _journal: Journal | None = None

    @property
    def journal_path(self) -> str:
        return str(self.root / "j.db")

    def use_machines(self, *dirs: Path) -> None:
        self.machines = [Path(d) for d in dirs]
        self.monkeypatch.setenv("FLEETLOG_MACHINES", os.pathsep.join(map(str, self.machines)))

    # -- looking at what happened --------------------------------------------------------
    @property
    def sim(self) -> SimBackend:
        if self._sim is None:
            self._sim = SimBackend(self.journal_path + ".sim")
        return self._sim

    def status(self) -> dict[str, dict[str, Any]]:
        res = self.cli("status", "--json")
        rows = {row["id"]: row for row in res.json()}
        # Exit 3 while a resource needs attention (docs/output.md), else 0.
        attention = any(row["needs_attention"] for row in rows.values())
        assert res.code == (3 if attention else 0), res.err
        return rows

    def effects(self, host: str | None = None) -> Counter[tuple[str, str]]:
        return effects(self.sim, host)

    def close(self) -> None:
        if self._sim is not None:
            self._sim.close()
        if self._journal is not None:
            self._journal.close()


def clone_onto_unconfigured_host(fleet: Fleet, computes: int) -> None:
    """The seed's scenario: a rack of ``computes`` KVM hosts, node1..node3 in the journal
    (node1 and node2 configured for Exascale, node3 not), and vm/g9 cloned from
    vm/exa1_vm1 onto node3 — which its clone's ``ensure`` has to configure first."""
    from fleetlog.machines.sim.scenarios import exascale_rack

    exascale_rack(fleet.sim.world, computes=computes, guests={"node1": {"exa1_vm1": "exascale"}})
    for i in (1, 2, 3):
        assert fleet.cli("add", f"kvm_host/node{i}", "--param", f"host=node{i}").code == 0
    assert fleet.cli("add", "vm/exa1_vm1", "--param", "host=node1").code == 0
    assert fleet.cli("add", "vm/g9", "--param", "host=node3").code == 0
    res = fleet.cli(
        "fire", "vm/g9", "clone", "--param", "source=exa1_vm1", "--param", "target=node3"
    )
    assert res.code == 0, res.err


@pytest.fixture
def fleet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Fleet]:
    monkeypatch.delenv(CRASH_ENV, raising=False)
    monkeypatch.delenv("FLEETLOG_SIM_WORLD", raising=False)
    monkeypatch.delenv("FLEETLOG_JOURNAL", raising=False)
    monkeypatch.delenv("FLEETLOG_MACHINES", raising=False)
    monkeypatch.chdir(tmp_path)
    f = Fleet(tmp_path, monkeypatch, capsys)
    yield f
    f.close()


# -------------------------------------------------------------------- Runner on test text
@dataclass
class Rig:
    """A Runner over machines compiled from text, an SQLite journal and a file sim world."""

    runner: Runner
    journal: Journal
    sim: SimBackend
    registry: KindRegistry
    sleeps: list[float]

    def add(self, rid: str, **params: Any) -> None:
        create_resource(self.journal, self.registry, rid, params)

    def events(self, rid: str | None = None) -> list[Event]:
        return list(self.journal.read_all() if rid is None else self.journal.read_stream(rid))

    def types(self, rid: str) -> list[str]:
        return [e.type for e in self.events(rid) if not e.type.startswith("lock.")]

    def steps(self, rid: str) -> list[tuple[str, str, Any]]:
        """(event type, step, attempt-or-reason) of every step event, in order."""
        out = []
        for e in self.events(rid):
            if e.type.startswith("step."):
                p = e.payload
                out.append((e.type, p["step"], p.get("attempt", p.get("reason"))))
        return out

    def effects(self, host: str | None = None) -> Counter[tuple[str, str]]:
        return effects(self.sim, host)


def compile_kinds(*sources: str) -> KindRegistry:
    plugins = discover_plugins()
    specs = [
        dsl.compile_source(src, f"<test {i}>", plugins=set(plugins))[0]
        for i, src in enumerate(sources)
    ]
    return KindRegistry((Kind(s) for s in specs), plugins)


@contextlib.contextmanager
def rig_maker(journal_url: Callable[[int], str], tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    """``make(*sources)`` builds Rig number i on ``journal_url(i)`` and a sim world file
    of its own; every rig made is closed afterwards."""
    opened: list[Rig] = []

    def make(*sources: str, lease_ttl: float = 30.0, lock_wait: float = 0.0) -> Rig:
        registry = compile_kinds(*sources)
        journal = open_journal(journal_url(len(opened)))
        sim = SimBackend(str(tmp_path / f"rig{len(opened)}.sim"))
        sleeps: list[float] = []
        runner = Runner(
            journal, registry, sim, lease_ttl=lease_ttl, lock_wait=lock_wait, sleep=sleeps.append
        )
        rig = Rig(runner, journal, sim, registry, sleeps)
        opened.append(rig)
        return rig

    try:
        yield make
    finally:
        for rig in opened:
            rig.sim.close()
            rig.journal.close()


@pytest.fixture
def make_rig(tmp_path: Path) -> Iterator[Callable[..., Rig]]:
    with rig_maker(lambda i: str(tmp_path / f"rig{i}.db"), tmp_path) as make:
        yield make
