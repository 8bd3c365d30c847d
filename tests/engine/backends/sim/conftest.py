"""Fixtures for the simulated datacenter's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlog import engine
from fleetlog.engine.backends.sim import SimBackend

PROJECT_ROOT = Path(engine.__file__).resolve().parent.parent


@pytest.fixture
def sim() -> Iterator[SimBackend]:
    backend = SimBackend(seed=1)
    yield backend
    backend.close()


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimBackend]]:
    """Open backends (several may share one world file); all are closed afterwards."""
    opened: list[SimBackend] = []

    def make(*args: Any, **kwargs: Any) -> SimBackend:
        backend = SimBackend(*args, **kwargs)
        opened.append(backend)
        return backend

    yield make
    for backend in opened:
        backend.close()


@pytest.fixture
def world_path(tmp_path: Path) -> str:
    return str(tmp_path / "world.db")


def run_python(
    code: str, *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter: a separate process sharing only the world file."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
