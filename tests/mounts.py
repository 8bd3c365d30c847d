"""Real file systems for the environment-fault tests: a tiny tmpfs to fill, one remounted
read-only, and a process without the root privileges that ignore file modes.

Mounting needs root. The tests that use these skip when not root, unless ``CI=true``:
CI runs as root, so there they fail instead of silently not running.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Runs a command as root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH, so file
#: modes apply to it as to anyone (``chmod 000`` denies it). Dropping them from the
#: bounding set means root's exec never gets them back.
UNPRIVILEGED = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--"]


def require_root() -> None:
    """Skip unless root; under ``CI=true`` carry on (and fail loudly if mounting fails)."""
    if os.geteuid() != 0 and os.environ.get("CI") != "true":
        pytest.skip("needs root: mounts tmpfs file systems")


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, text=True)


class Mounts:
    """tmpfs mounts made under ``root``; every one is unmounted by ``unmount_all``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.made: list[Path] = []

    def tmpfs(self, name: str, size: str) -> Path:
        where = self.root / name
        where.mkdir(parents=True)
        _run("mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where))
        self.made.append(where)
        return where

    def read_only(self, where: Path) -> None:
        _run("mount", "-o", "remount,ro", str(where))

    def writable(self, where: Path) -> None:
        _run("mount", "-o", "remount,rw", str(where))

    def unmount_all(self) -> None:
        for where in reversed(self.made):
            if subprocess.run(["umount", str(where)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(where)], capture_output=True)
        self.made.clear()


@contextlib.contextmanager
def mounts(root: Path) -> Iterator[Mounts]:
    require_root()
    m = Mounts(root)
    try:
        yield m
    finally:
        m.unmount_all()


def fill(where: Path, leave: int) -> Path:
    """A filler file that leaves ``leave`` bytes free on ``where``'s file system."""
    free = shutil.disk_usage(where).free
    filler = where / "filler"
    with open(filler, "wb") as f:
        remaining = max(0, free - leave)
        chunk = b"\0" * (1 << 20)
        while remaining > 0:
            n = min(remaining, len(chunk))
            try:
                f.write(chunk[:n])
                f.flush()
            except OSError:
                break
            remaining -= n
    return filler


def tree(where: Path) -> dict[str, bytes]:
    """Every file under ``where`` with its bytes (what "unchanged" compares)."""
    return {
        str(p.relative_to(where)): p.read_bytes() for p in sorted(where.rglob("*")) if p.is_file()
    }
