"""What a SQLite write-ahead log (``-wal``) holds, read from its bytes as SQLite's own
recovery reads it (https://www.sqlite.org/fileformat2.html#walformat): the header, then
frames (a 24-byte header and one page each) up to the first whose salts or cumulative
checksum do not match. A frame whose header carries a database size ends a transaction;
frames after the last such one were never committed.

The opener uses this to tell a journal that is short of pages because its last
checkpoint ran out of disk (every missing page is in the WAL, and SQLite rebuilds the
file from it) from a journal that was truncated.
"""

from __future__ import annotations

import os
import struct
from typing import BinaryIO

from fleetlog.frozen import frozen

_MAGIC = (0x377F0682, 0x377F0683)
_HEADER = 32
_FRAME_HEADER = 24


@frozen
class WalContents:
    page_size: int
    #: Pages written by committed transactions.
    pages: frozenset[int]
    #: The database's size in pages after the last committed transaction.
    db_pages: int


def _checksum(data: bytes, s0: int, s1: int, big_endian: bool) -> tuple[int, int]:
    words = struct.unpack(f"{'>' if big_endian else '<'}{len(data) // 4}I", data)
    for i in range(0, len(words), 2):
        s0 = (s0 + words[i] + s1) & 0xFFFFFFFF
        s1 = (s1 + words[i + 1] + s0) & 0xFFFFFFFF
    return s0, s1


def read_wal(path: str) -> WalContents | None:
    """The committed contents of the WAL at ``path``; None when there is no WAL or it
    holds no committed transaction."""
    try:
        with open(path, "rb") as f:
            return _read(f)
    except OSError:
        return None


def _read(f: BinaryIO) -> WalContents | None:
    header = f.read(_HEADER)
    if len(header) < _HEADER:
        return None
    magic, _version, page_size, _seq, salt1, salt2, c0, c1 = struct.unpack(">8I", header)
    if magic not in _MAGIC or page_size < 512 or page_size & (page_size - 1):
        return None
    big = bool(magic & 1)
    s0, s1 = _checksum(header[:24], 0, 0, big)
    if (s0, s1) != (c0, c1):
        return None
    pages: set[int] = set()
    pending: set[int] = set()
    db_pages = 0
    frame = _FRAME_HEADER + page_size
    size = os.fstat(f.fileno()).st_size
    for _ in range((size - _HEADER) // frame):
        data = f.read(frame)
        if len(data) < frame:
            break
        pgno, commit, fs1, fs2, k0, k1 = struct.unpack(">6I", data[:_FRAME_HEADER])
        if pgno == 0 or (fs1, fs2) != (salt1, salt2):
            break
        s0, s1 = _checksum(data[:8], s0, s1, big)
        s0, s1 = _checksum(data[_FRAME_HEADER:], s0, s1, big)
        if (s0, s1) != (k0, k1):
            break
        pending.add(pgno)
        if commit:
            pages |= pending
            pending = set()
            db_pages = commit
    if not db_pages:
        return None
    return WalContents(page_size, frozenset(pages), db_pages)
