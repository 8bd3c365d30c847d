"""The twin every explorer run starts from, built once and copied per run.

Built like a rehearsal's scratch copy (``rehearse``): the current journal (exported and
imported: the same events and hashes) and simulated world, or a fresh twin of a given
inventory with its resources declared in their initial states. Kept as two closed
SQLite files; each run copies them (on tmpfs when the machine has one, where a journal's
fsync costs nothing) and opens the copies, so no run sees another's effects.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from dataclasses import dataclass

from fleetlog.engine.backends.sim import World
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.ops.twin import Inventory, build_twin, declare_inventory
from fleetlog.journal import open_journal
from fleetlog.journal.base import Journal

_FAST_TMP = "/dev/shm"


@dataclass(frozen=True)
class Base:
    """The twin's files, and where its history ends (what a run adds comes after)."""

    directory: str
    journal: str
    world: str
    head: int
    effect_seq: int


def scratch_dir(prefix: str) -> str:
    """A private temporary directory, on tmpfs when there is one."""
    where = _FAST_TMP if os.access(_FAST_TMP, os.W_OK) else None
    path = tempfile.mkdtemp(prefix=prefix, dir=where)
    os.chmod(path, 0o700)
    return path


def build_base(
    registry: KindRegistry,
    *,
    journal: Journal | None,
    world_path: str | None,
    inventory: Inventory | None,
) -> Base:
    """The twin of ``inventory`` (fresh, when given) or of ``journal`` and its world."""
    directory = scratch_dir("fleetlog-explore-")
    jpath = os.path.join(directory, "base.db")
    wpath = os.path.join(directory, "base.db.sim")
    scratch = open_journal(jpath)
    world = World(wpath)
    try:
        if inventory is not None:
            build_twin(world, registry, None, inventory)
        else:
            if journal is not None:
                buf = io.StringIO()
                journal.export(buf)
                buf.seek(0)
                scratch.import_(buf)
            if world_path is not None and os.path.exists(world_path):
                world.close()
                os.unlink(wpath)
                source = World(world_path)
                try:
                    source.copy_to(wpath)
                finally:
                    source.close()
                world = World(wpath)
            else:
                build_twin(world, registry, scratch, None)
        declare_inventory(world, registry, scratch)
        head = scratch.head()
        entries = world.log_entries()
        effect_seq = entries[-1].seq if entries else 0
    finally:
        world.close()
        scratch.close()
    return Base(directory, jpath, wpath, head, effect_seq)


def copy_base(base: Base, directory: str) -> tuple[str, str]:
    """Fresh copies of the base's journal and world in ``directory``; their paths."""
    out = []
    for source, name in ((base.journal, "run.db"), (base.world, "run.db.sim")):
        target = os.path.join(directory, name)
        for suffix in ("-wal", "-shm"):
            if os.path.exists(target + suffix):
                os.unlink(target + suffix)
        shutil.copyfile(source, target)
        out.append(target)
    return out[0], out[1]


def remove(base: Base) -> None:
    shutil.rmtree(base.directory, ignore_errors=True)
