"""How a reading command opens a SQLite journal: read-only, creating and changing nothing
of it, on any media that can be read.

- ``mode=ro`` wherever SQLite can keep its shared-memory index (``-shm``): the directory
  is writable, or the ``-wal`` and ``-shm`` are there already (a read-only mount that
  holds a WAL, e.g. after a failed checkpoint). A WAL's committed frames are read, and
  a writer in another process is seen as usual.
- ``immutable=1`` only when the directory cannot be written and there is no WAL with a
  committed transaction: the file alone is the journal, and nobody can be writing it
  (a writer keeps a ``-shm`` beside it).
- A private copy of the file and its WAL, opened ``mode=ro``, when the WAL holds
  committed transactions but SQLite cannot index it in place (a read-only directory
  without its ``-shm``). Nothing can change such a directory, so the copy is exact.

A missing file, an empty one, or a directory is refused (``JournalPathError``, exit 2):
a reading command never makes a journal.

SQLite makes the ``-wal`` and ``-shm`` of a WAL journal as soon as any connection reads
it, read-only ones included, and only a writing connection removes them. When a reading
command made them (nobody else had the journal open), ``ReadOnlySource.release`` removes
them again as SQLite's last connection would: only if nobody has opened the journal since
(SQLite's shared lock on the file can be taken exclusively) and the WAL is still empty.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
import urllib.parse
from dataclasses import dataclass

from fleetlog.journal.environment import (
    JournalPathError,
    JournalUnavailable,
    can_write_in,
    directory_of,
    os_fault,
)
from fleetlog.journal.walfile import read_wal

# SQLite's unix locking bytes: PENDING, RESERVED, then the SHARED range. Every connection
# to a WAL database holds a read lock in the SHARED range for as long as it is open.
_PENDING_BYTE = 0x40000000
_LOCK_BYTES = 2 + 510


@dataclass
class ReadOnlySource:
    """What to hand ``sqlite3.connect(uri, uri=True)``. ``copy_dir``: a private copy to
    remove when the journal is closed; ``tidy``: the ``-wal`` and ``-shm`` did not exist
    when it was opened."""

    uri: str
    copy_dir: str | None = None
    tidy: bool = False

    def release(self, path: str, last: bool) -> None:
        """After every connection to ``path`` is closed; ``last``: no other journal of
        this process has it open (closing a descriptor of the file drops every lock this
        process holds on it, SQLite's included)."""
        if self.copy_dir is not None:
            shutil.rmtree(self.copy_dir, ignore_errors=True)
            self.copy_dir = None
        if self.tidy and last:
            self.tidy = False
            _remove_side_files(path)


def _remove_side_files(path: str) -> None:
    """Remove the empty ``-wal`` and the ``-shm`` a read-only connection made, while
    holding SQLite's exclusive lock: no connection (in any process) has the journal open,
    and none can open it meanwhile."""
    wal, shm = f"{path}-wal", f"{path}-shm"
    try:
        fd = os.open(path, os.O_RDWR)  # a write lock needs a writable descriptor
    except OSError:
        return
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, _LOCK_BYTES, _PENDING_BYTE)
    except OSError:
        os.close(fd)
        return  # someone has it open: the files are theirs now
    try:
        if os.path.getsize(wal) == 0:
            os.unlink(wal)
            os.unlink(shm)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN, _LOCK_BYTES, _PENDING_BYTE)
        os.close(fd)


def _uri(path: str, query: str) -> str:
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?{query}"


def read_only_source(path: str) -> ReadOnlySource:
    if os.path.isdir(path):
        raise JournalPathError(f"{path} is a directory, not a journal file (give a file path)")
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        raise JournalPathError(
            f"no journal at {path} (give --journal PATH or set FLEETLOG_JOURNAL; "
            "`fleetlog add` or `fleetlog import` creates one)"
        ) from None
    except OSError as e:
        raise os_fault(e, path, "reading") from e
    wal, shm = f"{path}-wal", f"{path}-shm"
    if size == 0 and read_wal(wal) is None:
        raise JournalPathError(
            f"{path} is empty: no journal yet (a writing command such as `fleetlog add` "
            "or `fleetlog import` creates one)"
        )
    sides = [os.path.exists(wal), os.path.exists(shm)]
    if can_write_in(directory_of(path)):
        return ReadOnlySource(_uri(path, "mode=ro"), tidy=not any(sides))
    if all(sides):
        return ReadOnlySource(_uri(path, "mode=ro"))
    if read_wal(wal) is None:
        return ReadOnlySource(_uri(path, "mode=ro&immutable=1"))
    return _private_copy(path)


def _private_copy(path: str) -> ReadOnlySource:
    tmp = tempfile.mkdtemp(prefix="fleetlog-ro-")
    copy = os.path.join(tmp, "journal.db")
    try:
        shutil.copyfile(path, copy)
        shutil.copyfile(f"{path}-wal", f"{copy}-wal")
    except OSError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise JournalUnavailable(
            f"cannot read journal {path}: its WAL holds committed events that SQLite can "
            f"only read with a -shm file, its directory cannot be written, and copying "
            f"it to {tmp} failed: {e.strerror}"
        ) from e
    return ReadOnlySource(_uri(copy, "mode=ro"), copy_dir=tmp)
