"""Files a command writes (``-o``/``--output``, ``--html``): checked before any work, and
written whole or not at all.

``check_output`` refuses, with the path, what could never be written: a directory, a
missing parent directory, a read-only file system, no permission (exit 2, a usage
error). ``writing`` writes beside the target and renames over it once complete, so a
disk that fills up midway leaves no half-written file (exit 1, "disk full writing …").
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from fleetlog.errors import FleetlogError, UsageError


def _read_only_fs(path: str) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def check_output(path: Path | None, option: str) -> None:
    """Refuse an output path that cannot be written, before the command does any work."""
    if path is None:
        return
    target = os.fspath(path)
    if os.path.isdir(target):
        raise UsageError(f"{option} {target}: is a directory, not a file")
    parent = os.path.dirname(os.path.abspath(target))
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "no such directory"
        raise UsageError(f"{option} {target}: {what}: {parent}")
    if _read_only_fs(parent):
        raise UsageError(f"{option} {target}: read-only file system")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {target}: permission denied (cannot write in {parent})")
    if os.path.exists(target) and not os.access(target, os.W_OK):
        raise UsageError(f"{option} {target}: permission denied")


def write_error(exc: OSError, target: str) -> FleetlogError:
    """An ``OSError`` met writing ``target`` as one line: disk full is an operation that
    failed (exit 1); a path that cannot be written is a usage error (exit 2)."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return FleetlogError(f"disk full writing {target}: {reason}")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOENT, errno.ENOTDIR):
        return UsageError(f"cannot write {target}: {reason}")
    if exc.errno == errno.EISDIR:
        return UsageError(f"cannot write {target}: is a directory")
    return FleetlogError(f"writing {target} failed: {reason}")


@contextlib.contextmanager
def writing(path: Path, *, binary: bool = False) -> Iterator[IO[Any]]:
    """A file object whose contents replace ``path`` only once all of them are written."""
    target = os.fspath(path)
    parent = os.path.dirname(os.path.abspath(target))
    import secrets  # writing a file only: not every command's start-up

    tmp = os.path.join(parent, f".{os.path.basename(target)}.{secrets.token_hex(4)}.tmp")
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        mode = 0o666  # a new file: as open() would make it (less the umask)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as e:
        raise write_error(e, target) from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", encoding=None if binary else "utf-8") as fp:
            yield fp
            fp.flush()
            os.fsync(fp.fileno())
        os.replace(tmp, target)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise write_error(e, target) from None
        raise


def write_file(path: Path, data: str | bytes) -> None:
    with writing(path, binary=isinstance(data, bytes)) as fp:
        fp.write(data)
