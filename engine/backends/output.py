"""Size-capped output capture shared by the backends.

A step's output goes into the journal and onto the operator's terminal, so an unbounded
command (a log dump, a runaway loop) must not be able to exhaust memory or bloat the
journal. We keep the *tail*: the end of a command's output is where the error is.
"""

from __future__ import annotations

import os
import threading
from typing import IO

#: Default cap per stream (stdout and stderr separately), in bytes.
DEFAULT_MAX_OUTPUT = 64 * 1024


def truncation_note(dropped: int) -> str:
    """The marker put in front of a kept tail, so a reader knows output is missing."""
    return f"[... {dropped} bytes truncated ...]\n"


class TailBuffer:
    """Keeps the last ``limit`` bytes written to it and counts the rest.

    Memory stays bounded however much is written, unlike reading everything and slicing.
    """

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError("limit must be >= 0")
        self.limit = limit
        self.total = 0
        self._buf = bytearray()

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._buf += chunk
        excess = len(self._buf) - self.limit
        if excess > 0:
            del self._buf[:excess]

    def text(self) -> str:
        """The kept tail as text, prefixed with a note when anything was dropped."""
        body = bytes(self._buf).decode("utf-8", errors="replace")
        dropped = self.total - len(self._buf)
        return truncation_note(dropped) + body if dropped else body


def cap_text(text: str, limit: int = DEFAULT_MAX_OUTPUT) -> str:
    """Apply the same tail cap to output that was produced in-process (the sim)."""
    raw = text.encode("utf-8", errors="surrogatepass")  # lone surrogates must not crash
    if len(raw) <= limit:
        return text
    buf = TailBuffer(limit)
    buf.write(raw)
    return buf.text()


def drain_in_thread(stream: IO[bytes], buf: TailBuffer) -> threading.Thread:
    """Read ``stream`` to EOF into ``buf`` on a daemon thread.

    One thread per pipe avoids the classic deadlock where a child blocks writing stderr
    while we block reading stdout.
    """

    fd = stream.fileno()

    def pump() -> None:
        with stream:
            while chunk := os.read(fd, 65536):
                buf.write(chunk)

    thread = threading.Thread(target=pump, name="fleetlog-output-drain", daemon=True)
    thread.start()
    return thread
