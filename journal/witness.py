"""A witness: a file, kept by the operator away from the journal (another disk, another
host), that receives the journal's head after every write command.

One line per head, appended and never rewritten::

    # fleetlog witness v1: seq hash recorded-at [seal]
    1287 3f0c…(64 hex) 2026-11-25T14:02:00.123456Z
    1291 9ab1…(64 hex) 2026-11-25T14:05:12.000001Z hmac-sha256:…

``verify`` checks that the journal still holds every head a witness recorded (the same
seq with the same hash) and is not behind the last one, which a journal alone cannot
show: removing events from its tail, or rewriting its history and recomputing every
later hash, leaves a chain that is sound in itself. With a chain key a line also carries
an HMAC seal of itself (``journal.integrity``).

A line is written with one ``write`` on a descriptor opened ``O_APPEND`` (so the file
may be made append-only, ``chattr +a``), under an exclusive ``flock`` and followed by
``fsync``; the file is created 0600. A line cut short by a crash is ignored when read,
and the next line starts on a line of its own.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from fleetlog.errors import UsageError
from fleetlog.journal.base import Head, JournalError, JournalIntegrityError
from fleetlog.journal.clock import iso_from_us, now_us
from fleetlog.journal.integrity import check_seal, seal, witness_text

HEADER = "# fleetlog witness v1: seq hash recorded-at [seal]\n"
_MAGIC = b"# fleetlog witness "
_LINE = re.compile(r"(\d+) ([0-9a-f]{64}) (\S+)(?: ((?:sha256|hmac-sha256):[0-9a-f]{64}))?")
# What a line cut short by a crash can look like: a prefix of a well-formed line.
_TORN = re.compile(r"\d+(?: [0-9a-f]{0,64}(?: \S*(?: [a-z0-9-]*:?[0-9a-f]{0,64})?)?)?")
#: How much of the file's end ``recent`` reads: the last few dozen heads.
RECENT_BYTES = 8192


@dataclass(frozen=True, slots=True)
class WitnessedHead:
    seq: int
    hash: str
    at: str
    line: int  # 0 when read from the file's end (``recent``)

    @property
    def head(self) -> Head:
        return Head(self.seq, self.hash)


class Witness:
    """The witness file at ``path``; ``key``: the chain key, to seal and check lines."""

    def __init__(self, path: str | os.PathLike[str], key: bytes | None = None) -> None:
        self.path = Path(path)
        self.key = key

    def __str__(self) -> str:
        return str(self.path)

    # -- reading ---------------------------------------------------------------------------
    def _read_error(self, e: OSError) -> JournalError:
        return JournalError(f"cannot read witness {self.path}: {e.strerror or e}")

    def exists(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False
        except OSError as e:
            raise self._read_error(e) from e

    def heads(self) -> Iterator[WitnessedHead]:
        """Every head recorded, in file order (``verify``)."""
        try:
            with open(self.path, "rb") as f:
                first = f.readline()
                self._check_header(first)
                lineno = 1
                for raw in f:
                    lineno += 1
                    found = self._parse(raw, lineno, last=not raw.endswith(b"\n"))
                    if found is not None:
                        yield found
        except FileNotFoundError:
            return
        except OSError as e:
            raise self._read_error(e) from e

    def recent(self) -> list[WitnessedHead]:
        """The heads in the last ``RECENT_BYTES`` of the file: what a command checks
        before it writes (the latest head implies every earlier one once the chain up
        to it is sound)."""
        try:
            with open(self.path, "rb") as f:
                self._check_header(f.readline())
                body = f.tell()
                size = os.fstat(f.fileno()).st_size
                start = max(body, size - RECENT_BYTES)
                f.seek(start)
                data = f.read()
        except FileNotFoundError:
            return []
        except OSError as e:
            raise self._read_error(e) from e
        lines = data.split(b"\n")
        if start > body and lines:
            lines = lines[1:]  # the first piece may be the end of a longer line
        found = []
        for i, raw in enumerate(lines):
            last = i == len(lines) - 1
            if last and not raw:
                continue
            parsed = self._parse(raw, 0, last=last)
            if parsed is not None:
                found.append(parsed)
        return found

    def _check_header(self, first: bytes) -> None:
        if first and not first.startswith(_MAGIC):
            raise UsageError(
                f"{self.path} is not a fleetlog witness file (its first line is not "
                f"{HEADER.strip()!r}); give --witness a file of its own"
            )

    def _parse(self, raw: bytes, lineno: int, last: bool) -> WitnessedHead | None:
        text = raw.decode("utf-8", "replace").rstrip("\n")
        if not text or text.startswith("#"):
            return None
        m = _LINE.fullmatch(text)
        if m is None:
            if _TORN.fullmatch(text):
                return None  # cut short by a crash while it was written
            where = f"line {lineno}" if lineno else "a line near its end"
            raise JournalIntegrityError(
                f"witness {self.path} is damaged: {where} is not 'seq hash time [seal]'",
                seq=None,
                reason="damaged witness",
            )
        seq, hash_, at, sealed = int(m[1]), m[2], m[3], m[4]
        if (
            sealed is not None
            and check_seal(witness_text(seq, hash_, at), sealed, self.key) is False
        ):
            raise JournalIntegrityError(
                f"witness {self.path}: the seal of the line for seq {seq} does not match "
                "the chain key: the line was altered",
                seq=seq,
                reason="witness line altered",
            )
        return WitnessedHead(seq, hash_, at, lineno)

    # -- writing ---------------------------------------------------------------------------
    def record(self, head: Head) -> None:
        """Append ``head`` (one line, durable before this returns)."""
        at = iso_from_us(now_us())
        line = f"{head.seq} {head.hash} {at}"
        if self.key is not None:
            line += " " + seal(witness_text(head.seq, head.hash, at), self.key)
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as e:
            raise self._write_error(e, head) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            size = os.fstat(fd).st_size
            data = line + "\n"
            if size == 0:
                data = HEADER + data
            elif os.pread(fd, 1, size - 1) != b"\n":
                data = "\n" + data  # a line cut short by a crash stays on its own
            payload = data.encode("utf-8")
            written = os.write(fd, payload)
            if written != len(payload):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
            if size == 0:
                _fsync_dir(self.path.parent)
        except OSError as e:
            raise self._write_error(e, head) from e
        finally:
            os.close(fd)  # drops the lock

    def _write_error(self, e: OSError, head: Head) -> JournalError:
        return JournalError(
            f"cannot record the journal's head in witness {self.path}: {e.strerror or e} "
            f"(the head is seq {head.seq} hash {head.hash}; the next write command "
            "records it once the witness can be written)"
        )


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
