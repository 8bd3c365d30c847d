"""Reading a key kept in a file of its own (the chain key, the notification secret).

One rule for every such file, so none is laxer than another: a regular file, readable
and writable by its owner only (as ssh insists for a private key), its contents
stripped of the line end an editor adds. Anything else is a usage error naming the file.
"""

from __future__ import annotations

import os
import stat

from fleetlog.errors import UsageError


def read_private(path: str, what: str) -> bytes:
    """The contents of ``path``, described as ``what`` ("chain key file") in errors."""
    try:
        st = os.stat(path)
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise UsageError(f"{what} {path}: {e.strerror or e}") from None
    if not stat.S_ISREG(st.st_mode):
        raise UsageError(f"{what} {path} is not a regular file")
    if st.st_mode & 0o077:
        raise UsageError(
            f"{what} {path} can be read or written by others (mode "
            f"{stat.S_IMODE(st.st_mode):04o}): chmod 600 it"
        )
    return raw.strip()
