"""The SQLite journal and its environment: a disk that fills up, read-only openings, bad
paths. An environment fault is ``JournalUnavailable`` (exit 1) or ``JournalPathError``
(exit 2), never ``NotAJournal`` (exit 4); a checkpoint cut short by a full disk leaves a
file SQLite rebuilds from its WAL, not a truncated journal."""

from __future__ import annotations

import os
import shutil
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.journal import JournalError, NewEvent, open_journal
from fleetlog.journal.base import NotAJournal
from fleetlog.journal.environment import JournalPathError, JournalUnavailable, sqlite_fault
from fleetlog.journal.sqlite import SQLiteJournal
from fleetlog.journal.testing import ev
from fleetlog.journal.walfile import read_wal
from tests.mounts import Mounts, fill, mounts


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[Mounts]:
    with mounts(tmp_path / "mnt") as m:
        yield m


def _sqlite_rows(path: Path) -> list[tuple[int, str]]:
    uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        return [(int(s), str(h)) for s, h in conn.execute("SELECT seq, hash FROM events")]
    finally:
        conn.close()


def _short_of_its_header(path: Path) -> bool:
    data = path.read_bytes()
    page_size = int.from_bytes(data[16:18], "big")
    return len(data) < int.from_bytes(data[28:32], "big") * page_size


def _big(i: int) -> NewEvent:
    return NewEvent("noted", {"i": i, "text": "x" * 3000})


# -- disk full ----------------------------------------------------------------------------


def test_a_checkpoint_cut_short_by_a_full_disk_is_rebuilt_from_the_wal(
    disks: Mounts,
) -> None:
    disk = disks.tmpfs("disk", "4m")
    path = disk / "j.db"
    with SQLiteJournal(path) as j:
        for i in range(40):
            j.append(f"s{i % 4}", [_big(i)])
    filler = fill(disk, leave=160 * 1024)
    j = SQLiteJournal(path)
    with pytest.raises(JournalUnavailable) as info:
        for i in range(1000):
            j.append(f"s{i % 4}", [_big(i)])
    assert str(info.value).startswith(f"disk full writing {path}: ")
    assert info.value.exit_code == 1
    j.close()
    # The checkpoint SQLite runs when a connection closes (or every 1000 pages) runs out
    # of disk too, midway: the file's header already counts pages not yet copied.
    raw = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError, match="full"):
        raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    assert _short_of_its_header(path), "the scenario needs a checkpoint cut short"
    committed = _sqlite_rows(path)

    # Still full: it reads (read-only and read-write), it verifies, nothing is lost.
    with SQLiteJournal(path, read_only=True) as r:
        assert [(e.seq, e.hash) for e in r.read_all()] == committed
        assert r.verify().ok
    filler.unlink()
    with SQLiteJournal(path) as j:
        assert [(e.seq, e.hash) for e in j.read_all()] == committed
        (e,) = j.append("s0", [ev(after=True)])
        assert e.seq == len(committed) + 1 and j.verify().ok
    assert not _short_of_its_header(path)  # the checkpoint of that close completed
    assert not Path(f"{path}-wal").exists()


def test_creating_a_journal_on_a_full_disk_leaves_nothing(disks: Mounts) -> None:
    disk = disks.tmpfs("disk", "1m")
    fill(disk, leave=0)
    with pytest.raises(JournalUnavailable, match="disk full"):
        SQLiteJournal(disk / "j.db")
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


# -- truncation is still truncation -------------------------------------------------------


def test_a_truncated_file_is_refused_even_with_a_wal(tmp_path: Path) -> None:
    """The WAL excuses only the pages it holds: cut the file deeper and it is refused."""
    path = tmp_path / "j.db"
    j = SQLiteJournal(path)
    for i in range(300):
        j.append(f"s{i % 3}", [_big(i)])
    j._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.append("s0", [_big(-1)])  # a committed transaction in the WAL
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(path, copy / "j.db")
    shutil.copy(f"{path}-wal", copy / "j.db-wal")
    j.close()
    wal = read_wal(str(copy / "j.db-wal"))
    assert wal is not None and len(wal.pages) < 10
    size = (copy / "j.db").stat().st_size
    with open(copy / "j.db", "r+b") as f:
        f.truncate(size // 2 // 4096 * 4096)
    before = (copy / "j.db").read_bytes()
    for read_only in (False, True):
        with pytest.raises(NotAJournal, match="truncated"):
            SQLiteJournal(copy / "j.db", read_only=read_only)
    assert (copy / "j.db").read_bytes() == before


def test_a_torn_wal_frame_is_not_committed(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    j = SQLiteJournal(path)
    j.append("s0", [ev()])
    j._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    j.append("s0", [ev(n=1)])
    first = read_wal(f"{path}-wal")
    j.append("s0", [_big(2)])
    whole = Path(f"{path}-wal").read_bytes()
    j.close()
    assert first is not None
    torn = tmp_path / "torn-wal"
    torn.write_bytes(whole[:-100])  # the last frame is cut: its transaction never was
    assert read_wal(str(torn)) == first
    garbled = bytearray(whole)
    garbled[-50] ^= 0xFF  # a bad checksum ends the log there
    torn.write_bytes(bytes(garbled))
    assert read_wal(str(torn)) == first


# -- read-only openings -------------------------------------------------------------------


def test_read_only_refuses_a_missing_empty_or_directory_path(tmp_path: Path) -> None:
    missing = tmp_path / "missing.db"
    with pytest.raises(JournalPathError, match="no journal at") as info:
        SQLiteJournal(missing, read_only=True)
    assert info.value.exit_code == 2
    empty = tmp_path / "empty.db"
    empty.touch()
    with pytest.raises(JournalPathError, match="is empty"):
        open_journal(str(empty), read_only=True)
    with pytest.raises(JournalPathError, match="is a directory"):
        SQLiteJournal(tmp_path, read_only=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]
    assert empty.stat().st_size == 0


def test_read_only_sees_a_live_writer_and_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SQLiteJournal(path) as w:
        w.append("s0", [ev(i=0)])
        with SQLiteJournal(path, read_only=True) as r:
            w.append("s0", [ev(i=1)])  # committed to the WAL while the reader is open
            assert [e.payload["i"] for e in r.read_stream("s0")] == [0, 1]
            assert r.verify().ok
            with pytest.raises(JournalError) as info:
                r.append("s0", [ev(i=2)])
            assert not isinstance(info.value, NotAJournal)
            r.put_snapshot("s0", 2, {"ignored": True})  # a cache: skipped, not an error
            assert r.get_snapshot("s0") is None
        assert w.head() == 2


def test_reading_leaves_no_side_files_it_made(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with SQLiteJournal(path) as w:
        w.append("s0", [ev()])
    before = path.read_bytes()
    with SQLiteJournal(path, read_only=True) as r:
        assert r.head() == 1
        assert Path(f"{path}-shm").exists()  # SQLite's, while it reads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db"]
    assert path.read_bytes() == before
    # Opened by a writer meanwhile: its files are left to it.
    r = SQLiteJournal(path, read_only=True)
    r.head()
    w = SQLiteJournal(path)
    w.append("s0", [ev()])
    r.close()
    assert Path(f"{path}-wal").stat().st_size > 0
    w.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["j.db"]


def test_a_missing_directory_is_a_path_error(tmp_path: Path) -> None:
    with pytest.raises(JournalPathError, match="no such directory") as info:
        SQLiteJournal(tmp_path / "no" / "such" / "j.db")
    assert info.value.exit_code == 2 and "cannot create journal" in str(info.value)
    with pytest.raises(JournalPathError, match="is a directory"):
        SQLiteJournal(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_corruption_is_not_an_environment_fault(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    path.write_bytes(b"not a database at all" * 100)
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.DatabaseError) as info:
        conn.execute("SELECT * FROM sqlite_master").fetchall()
    conn.close()
    assert sqlite_fault(info.value, str(path), "reading") is None


def test_journals_are_created_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        with SQLiteJournal(tmp_path / "j.db") as j:
            j.append("s0", [ev()])
            modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    finally:
        os.umask(old)
    assert modes == dict.fromkeys(("j.db", "j.db-wal", "j.db-shm"), 0o600)
