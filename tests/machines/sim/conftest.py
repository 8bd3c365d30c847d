"""Fixtures for the built-in pack's fake tools: the simulator's own."""

from tests.engine.backends.sim.conftest import make_sim, sim, world_path

__all__ = ["make_sim", "sim", "world_path"]
