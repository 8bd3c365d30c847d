"""Who and where an event comes from, when the caller does not say."""

from __future__ import annotations

import getpass
import os


def default_actor() -> str:
    """``FLEETLOG_ACTOR`` if set (a CI job or a wrapper names the human), else the OS user."""
    actor = os.environ.get("FLEETLOG_ACTOR")
    if actor:
        return actor
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        return f"uid:{os.getuid()}"


def default_host() -> str:
    """The host name, as ``socket.gethostname()`` gives it: on POSIX both it and
    ``uname`` read the kernel's node name, and importing ``socket`` for it would cost
    every command that opens a journal a millisecond."""
    return os.uname().nodename
