"""Environment faults: the disk is full, the media is read-only, permission is denied,
the path is a directory or its directory is missing. None of these says anything about
the journal's contents, so none of them is an integrity failure (exit 4): each is one
line naming the path and the cause, exit 1 (2 for a path the operator got wrong), and
the journal opens normally once the cause is gone.

SQLite reports these through its result codes (``SQLITE_FULL``, ``SQLITE_READONLY``,
``SQLITE_CANTOPEN``, ``SQLITE_IOERR``, ``SQLITE_PERM``), which say what failed but not
why; the file system is asked for the why (``statvfs`` for a read-only mount or no free
space, ``access`` for permissions). ``SQLITE_CORRUPT`` and ``SQLITE_NOTADB`` are about
the contents: ``sqlite_fault`` returns None for them and the caller decides.
"""

from __future__ import annotations

import errno
import os
import sqlite3

from fleetlog.errors import UsageError
from fleetlog.journal.base import JournalError


class JournalUnavailable(JournalError):
    """The journal's environment refused (disk full, read-only media, permissions):
    nothing in the journal was changed, and it works again once the cause is gone."""

    exit_code = 1


class JournalPathError(JournalUnavailable, UsageError):
    """A journal path that cannot be a journal: a directory, a file in a missing
    directory, a missing or empty file given to a reading command."""

    exit_code = 2


# SQLite's primary result codes (the low byte of an extended code).
_PERM, _NOMEM, _READONLY, _IOERR, _FULL, _CANTOPEN = 3, 7, 8, 10, 13, 14
_ENVIRONMENT = {_PERM, _NOMEM, _READONLY, _IOERR, _FULL, _CANTOPEN}
_DISK_FULL = {errno.ENOSPC, errno.EDQUOT}


def directory_of(path: str) -> str:
    return os.path.dirname(os.path.abspath(path))


def read_only_fs(path: str) -> bool:
    """``path`` (a file or a directory) lies on a file system mounted read-only."""
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _no_space(path: str) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail == 0 or (st.f_files > 0 and st.f_favail == 0)


def can_write_in(directory: str) -> bool:
    """New files (SQLite's ``-wal`` and ``-shm``) can be created in ``directory``."""
    return os.access(directory, os.W_OK | os.X_OK) and not read_only_fs(directory)


def check_path(path: str) -> None:
    """A journal path must name a file in an existing directory (``JournalPathError``)."""
    if os.path.isdir(path):
        raise JournalPathError(f"{path} is a directory, not a journal file (give a file path)")
    parent = directory_of(path)
    if not os.path.isdir(parent):
        what = "is not a directory" if os.path.exists(parent) else "no such directory"
        raise JournalPathError(f"cannot create journal {path}: {what}: {parent}")


def check_writable(path: str) -> None:
    """Before a writing command uses the existing journal at ``path``: refuse, in one
    line and before any work, what would fail at its first append."""
    parent = directory_of(path)
    if read_only_fs(parent):
        raise JournalUnavailable(
            f"read-only file system: cannot write journal {path} (reading commands "
            "such as status, history, verify and export still work)"
        )
    if not os.access(path, os.R_OK | os.W_OK):
        raise JournalUnavailable(f"permission denied: cannot write journal {path}")
    sides_exist = all(os.path.exists(f"{path}{s}") for s in ("-wal", "-shm"))
    if not sides_exist and not os.access(parent, os.W_OK | os.X_OK):
        raise JournalUnavailable(
            f"permission denied: cannot write journal {path}: SQLite must create its "
            f"-wal and -shm files in {parent}"
        )


def os_fault(exc: OSError, path: str, doing: str) -> JournalError:
    """``exc`` (from ``doing`` — "creating", "reading" — ``path``) as one line."""
    reason = exc.strerror or str(exc)
    code = exc.errno
    if code in _DISK_FULL:
        return JournalUnavailable(f"disk full {doing} {path}: {reason}")
    if code == errno.EROFS:
        return JournalUnavailable(f"read-only file system: cannot {_verb(doing)} {path}")
    if code in (errno.EACCES, errno.EPERM):
        return JournalUnavailable(f"permission denied: cannot {_verb(doing)} {path}")
    if code in (errno.ENOENT, errno.ENOTDIR):
        return JournalPathError(f"cannot {_verb(doing)} {path}: no such directory")
    if code == errno.EISDIR:
        return JournalPathError(f"{path} is a directory, not a journal file")
    return JournalUnavailable(f"{doing} {path} failed: {reason}")


def _verb(doing: str) -> str:
    return {"creating": "create", "reading": "read", "writing": "write", "opening": "open"}.get(
        doing, doing
    )


def sqlite_fault(exc: sqlite3.Error, path: str, doing: str) -> JournalError | None:
    """The environment fault behind SQLite's ``exc``, or None when it is not one (damage,
    a constraint, a busy lock: the caller's to report)."""
    code = getattr(exc, "sqlite_errorcode", None)
    if not isinstance(code, int) or code & 0xFF not in _ENVIRONMENT:
        return None
    primary = code & 0xFF
    detail = str(exc)
    parent = directory_of(path)
    if primary == _FULL or (primary == _IOERR and _no_space(parent)):
        kept = "nothing was created" if doing == "creating" else "the journal is intact"
        return JournalUnavailable(
            f"disk full {doing} {path}: {detail} ({kept}: free some space and run the "
            "command again)"
        )
    if read_only_fs(parent):
        return JournalUnavailable(
            f"read-only file system: cannot {_verb(doing)} journal {path} (reading "
            "commands such as status, history, verify and export still work)"
        )
    if primary in (_READONLY, _CANTOPEN, _PERM):
        for target, mode in ((path, os.R_OK), (parent, os.X_OK)):
            if os.path.exists(target) and not os.access(target, mode):
                return JournalUnavailable(f"permission denied: cannot read journal {path}")
        if primary != _CANTOPEN and os.path.exists(path) and not os.access(path, os.W_OK):
            return JournalUnavailable(f"permission denied: cannot write journal {path}")
        if primary == _CANTOPEN and not os.access(parent, os.W_OK | os.X_OK):
            return JournalUnavailable(
                f"permission denied: cannot open journal {path}: SQLite cannot create "
                f"its -wal and -shm files in {parent}"
            )
        if primary == _PERM:
            return JournalUnavailable(f"permission denied: cannot {_verb(doing)} {path}")
    return JournalUnavailable(f"{doing} journal {path} failed: {detail}")
