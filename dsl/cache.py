"""Compiled machine specs kept between commands, so a command does not pay for Lark.

Every command loads every machine; parsing and checking nine ``.fsm`` files with Lark is
most of a short command's start-up. A spec depends only on the file's bytes, its name,
the DSL's own code (grammar, compiler, checks) and the plugin and listing-format names it
was checked against, so that is the key: a changed file, a new fleetlog or a new plugin
is simply a different key, and a stale entry is never read. Only successful compiles are
kept (an error is shown every time, from the source).

Entries are pickles in the user's cache directory (``$FLEETLOG_CACHE_DIR``, else
``$XDG_CACHE_HOME/fleetlog/specs``, else ``~/.cache/fleetlog/specs``). Unpickling runs
code, so an entry is read only from a directory and file owned by this user and not
writable by anyone else; it is written to a temporary file and renamed into place, so
concurrent writers never leave half an entry. Anything wrong with the cache (unwritable
home, damaged entry, foreign owner) means compiling as if there were none.
``FLEETLOG_CACHE_DIR=off`` turns it off.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import stat
import tempfile
from collections.abc import Collection
from functools import cache
from pathlib import Path

from fleetlog.dsl.diagnostics import Diagnostic
from fleetlog.dsl.spec import MachineSpec

__all__ = ["cache_dir", "compile_file"]

#: Bumped when what an entry holds changes shape without the DSL's code changing.
_FORMAT = b"fleetlog-spec-cache/1"


def cache_dir() -> Path | None:
    """Where entries live, or None when the cache is off."""
    given = os.environ.get("FLEETLOG_CACHE_DIR")
    if given is not None:
        return None if given.strip().lower() in ("", "off", "0", "none") else Path(given)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "fleetlog" / "specs"


@cache
def _dsl_fingerprint() -> bytes:
    """The DSL's own code: an upgrade that changes how a file compiles changes every key."""
    h = hashlib.sha256(_FORMAT)
    here = Path(__file__).resolve().parent
    for path in sorted([*here.glob("*.py"), *here.glob("*.lark")]):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.digest()


def _key(
    data: bytes, filename: str, plugins: Collection[str] | None, formats: Collection[str] | None
) -> str:
    h = hashlib.sha256(_dsl_fingerprint())
    for part in (
        filename.encode(),
        data,
        b"\0".join(sorted(p.encode() for p in plugins)) if plugins is not None else b"*",
        b"\0".join(sorted(f.encode() for f in formats)) if formats is not None else b"*",
    ):
        h.update(len(part).to_bytes(8, "big"))
        h.update(part)
    return h.hexdigest()


def _trusted(path: Path) -> bool:
    """Ours, and writable by no one else: only then may its pickle be loaded."""
    try:
        st = path.lstat()
    except OSError:
        return False
    if hasattr(os, "getuid") and st.st_uid != os.getuid():
        return False
    return not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not stat.S_ISLNK(st.st_mode)


def _read(where: Path, key: str) -> tuple[MachineSpec, list[Diagnostic]] | None:
    entry = where / f"{key}.pickle"
    if not (_trusted(where) and _trusted(entry)):
        return None
    try:
        with open(entry, "rb") as f:
            found = pickle.load(f)
    except Exception:  # a damaged or foreign entry: compile instead
        return None
    if (
        isinstance(found, tuple)
        and len(found) == 2
        and isinstance(found[0], MachineSpec)
        and isinstance(found[1], list)
    ):
        return found[0], found[1]
    return None


def _write(where: Path, key: str, value: tuple[MachineSpec, list[Diagnostic]]) -> None:
    try:
        where.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not _trusted(where):
            return
        fd, tmp = tempfile.mkstemp(dir=where, prefix=".tmp-", suffix=".pickle")
        try:
            with os.fdopen(fd, "wb") as f:
                pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
            os.replace(tmp, where / f"{key}.pickle")
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except Exception:  # read-only home, full disk, unpicklable: the cache is optional
        return


def compile_file(
    path: str | os.PathLike[str],
    plugins: Collection[str] | None = None,
    formats: Collection[str] | None = None,
) -> tuple[MachineSpec, list[Diagnostic]]:
    """``dsl.compile_file``, answered from the cache when this exact file was compiled
    before against the same plugins, formats and DSL."""
    filename = os.fspath(path)
    where = cache_dir()
    data: bytes | None = None
    text = ""
    if where is not None:
        try:
            with open(filename, "rb") as f:
                data = f.read()
            # What reading in text mode gives (universal newlines), from the very bytes
            # the key is made of.
            text = data.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
        except (OSError, UnicodeDecodeError):
            data = None  # compile_file says why, with the file's name
    if where is None or data is None:
        from fleetlog.dsl import api

        return api.compile_file(filename, plugins, formats)
    key = _key(data, filename, plugins, formats)
    hit = _read(where, key)
    if hit is not None:
        return hit
    from fleetlog.dsl import api  # Lark is imported only on a miss

    spec, warnings = api.compile_source(text, filename, plugins, formats)
    _write(where, key, (spec, warnings))
    return spec, warnings
