"""pytest fixtures for the SSH lab. A test module uses them with::

    pytest_plugins = ["tests.lab.fixtures"]

``sshd_lab`` (session) starts 20 hosts once; ``ssh_lab`` (function) resets the shared world
(state and faults) before each test; ``make_ssh`` builds ``SSHBackend``s on the lab's
ssh_config and a per-test copy of its known_hosts, never touching ``~/.ssh``, and closes
them afterwards; ``ssh_rig`` adds a journal and a ``Runner`` over machines compiled from
text. Without sshd the lab's tests skip — except under CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fleetlog import dsl
from fleetlog.engine.backends.ssh import SSHBackend
from fleetlog.engine.model import Kind, KindRegistry, discover_plugins
from fleetlog.engine.ops import create_resource
from fleetlog.engine.runtime import Runner
from fleetlog.journal import open_journal
from fleetlog.journal.base import Event, Journal
from tests.lab.lab import Lab, LabUnavailable, start_lab

LAB_HOSTS = 20


@pytest.fixture(scope="session")
def sshd_lab() -> Iterator[Lab]:
    try:
        running = start_lab(LAB_HOSTS)
    except LabUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the SSH lab must run under CI: {exc}")
        pytest.skip(f"SSH lab unavailable: {exc}")
    yield running
    running.stop()


@pytest.fixture
def ssh_lab(sshd_lab: Lab) -> Lab:
    sshd_lab.reset_world()
    return sshd_lab


@pytest.fixture
def make_ssh(ssh_lab: Lab, tmp_path: Path) -> Iterator[Callable[..., SSHBackend]]:
    opened: list[SSHBackend] = []

    def make(**kwargs: Any) -> SSHBackend:
        if "known_hosts" not in kwargs:
            known = tmp_path / f"known_hosts{len(opened)}"
            shutil.copy(ssh_lab.known_hosts, known)
            kwargs["known_hosts"] = str(known)
        kwargs.setdefault("ssh_config", str(ssh_lab.ssh_config))
        kwargs.setdefault("allow_agent", False)
        kwargs.setdefault("look_for_keys", False)
        backend = SSHBackend(**kwargs)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


@dataclass
class SshRig:
    """A Runner on the SSH backend over machines compiled from text and a temp journal."""

    runner: Runner
    journal: Journal
    registry: KindRegistry

    def add(self, rid: str, **params: Any) -> None:
        create_resource(self.journal, self.registry, rid, params)

    def events(self, rid: str) -> list[Event]:
        return list(self.journal.read_stream(rid))

    def steps(self, rid: str) -> list[tuple[str, str, Any]]:
        """(type, step, attempt) of each step event, in order."""
        return [
            (e.type, e.payload["step"], e.payload.get("attempt"))
            for e in self.events(rid)
            if e.type.startswith("step.")
        ]

    def failures(self, rid: str) -> list[str]:
        return [str(e.payload["error"]) for e in self.events(rid) if e.type == "step.failed"]

    def with_backend(self, backend: SSHBackend) -> SshRig:
        """The same journal and machines, another backend (the fault is gone)."""
        runner = Runner(self.journal, self.registry, backend, lock_wait=0.0)
        return SshRig(runner, self.journal, self.registry)


def compile_kinds(*sources: str) -> KindRegistry:
    plugins = discover_plugins()
    specs = [
        dsl.compile_source(src, f"<ssh test {i}>", plugins=set(plugins))[0]
        for i, src in enumerate(sources)
    ]
    return KindRegistry((Kind(s) for s in specs), plugins)


@pytest.fixture
def ssh_rig(tmp_path: Path) -> Iterator[Callable[..., SshRig]]:
    journals: list[Journal] = []

    def make(backend: SSHBackend, *sources: str) -> SshRig:
        registry = compile_kinds(*sources)
        journal = open_journal(str(tmp_path / f"ssh{len(journals)}.db"))
        journals.append(journal)
        return SshRig(Runner(journal, registry, backend, lock_wait=0.0), journal, registry)

    yield make
    for journal in journals:
        journal.close()


# ------------------------------------------------------------------------------ Redfish
@pytest.fixture(scope="session")
def redfish_emulator() -> Iterator[Any]:
    """sushy-tools' emulator on a free loopback port: 60 fake systems (``node1`` …
    ``node60``, on), HTTP basic auth (``tests.lab.redfish.USER``/``PASSWORD``). Fails,
    never skips, under CI=true."""
    from tests.lab.redfish import EmulatorUnavailable, start_emulator

    try:
        emulator = start_emulator(60)
    except EmulatorUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the Redfish emulator must run under CI: {exc}")
        pytest.skip(f"Redfish emulator unavailable: {exc}")
    yield emulator
    emulator.stop()
