"""SQLite-only behaviour: the file, its permissions, triggers, damage, processes."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import stat
import threading
import time
from pathlib import Path

import pytest

from fleetlog.journal import JournalError, NewEvent, open_journal
from fleetlog.journal.base import (
    ConcurrencyConflict,
    Lease,
    LeaseAppending,
    LeaseChanged,
    NotAJournal,
    SchemaTooNew,
)
from fleetlog.journal.schema import SCHEMA_VERSION
from fleetlog.journal.sqlite import SQLiteJournal
from fleetlog.journal.testing import ev
from tests.journal import _workers


def _filled(path: Path, n: int = 20) -> SQLiteJournal:
    j = SQLiteJournal(path, actor="tester", host="testhost")
    for i in range(n):
        j.append(f"s{i % 3}", [ev(i=i)])
    return j


def _fingerprint(path: Path) -> tuple[int, str]:
    return path.stat().st_mtime_ns, hashlib.sha256(path.read_bytes()).hexdigest()


def _raw(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path, isolation_level=None)


# -- the file -------------------------------------------------------------------------


def test_new_journal_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with _filled(path):
        for name in ("j.db", "j.db-wal", "j.db-shm"):
            mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
            assert mode == 0o600, (name, oct(mode))


def test_wal_full_sync_and_schema(tmp_path: Path) -> None:
    with _filled(tmp_path / "j.db") as j:
        conn = j._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert [r[1] for r in conn.execute("PRAGMA table_info(events)")] == list(
            j.read_all().__next__().COLUMNS
        )
        assert conn.execute("SELECT max(version) FROM schema_version").fetchone() == (
            SCHEMA_VERSION,
        )
    with SQLiteJournal(tmp_path / "n.db", synchronous="normal") as j:
        assert j._conn.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_open_journal_accepts_paths_and_urls(tmp_path: Path) -> None:
    with open_journal(f"sqlite:///{tmp_path}/a.db") as j:
        assert isinstance(j, SQLiteJournal) and j.head() == 0
    assert (tmp_path / "a.db").exists()


def test_triggers_refuse_update_and_delete(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with _filled(path):
        raw = _raw(path)
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE events SET payload = '{}' WHERE seq = 1")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM events WHERE seq = 1")
        raw.close()


def test_unique_constraints_back_the_checks(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with _filled(path, 2):
        raw = _raw(path)
        row = raw.execute("SELECT * FROM events WHERE seq = 1").fetchone()
        with pytest.raises(sqlite3.IntegrityError):  # same (stream, version)
            raw.execute(
                "INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (99, "other-id", *row[2:]),
            )
        raw.close()


def test_dropped_snapshot_table_is_recreated(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with _filled(path, 4) as j:
        j.put_snapshot("s0", 1, {"a": 1})
        raw = _raw(path)
        raw.execute("DROP TABLE snapshots")
        raw.close()
        assert j.get_snapshot("s0") is None
        j.put_snapshot("s0", 2, {"a": 2})
        assert j.get_snapshot("s0") == (2, {"a": 2})
        assert j.verify().ok


# -- damaged and foreign files --------------------------------------------------------


def _assert_refused_untouched(path: Path, match: str) -> None:
    before = _fingerprint(path)
    with pytest.raises(JournalError) as info:
        SQLiteJournal(path)
    assert str(path) in str(info.value)
    assert match in str(info.value)
    assert _fingerprint(path) == before
    assert not Path(f"{path}-wal").exists() or Path(f"{path}-wal").stat().st_size == 0


def test_non_sqlite_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("these are not the events you are looking for\n" * 10)
    _assert_refused_untouched(path, "not a SQLite database")


def test_truncated_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    with _filled(path, 3000) as j:
        j._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.truncate(size // 2 + 100)
    _assert_refused_untouched(path, "truncated")


def test_sqlite_file_that_is_not_a_journal_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    raw = _raw(path)
    raw.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    raw.execute("INSERT INTO customers (name) VALUES ('ada')")
    raw.close()
    _assert_refused_untouched(path, "no schema_version")
    raw = _raw(path)
    tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    raw.close()
    assert tables == {"customers"}


def test_newer_schema_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    _filled(path, 5).close()
    raw = _raw(path)
    raw.execute("INSERT INTO schema_version VALUES (?, 'later')", (SCHEMA_VERSION + 1,))
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    before = _fingerprint(path)
    with pytest.raises(SchemaTooNew) as info:
        SQLiteJournal(path)
    assert str(path) in str(info.value) and str(SCHEMA_VERSION + 1) in str(info.value)
    assert isinstance(info.value, NotAJournal)
    assert _fingerprint(path) == before


def test_missing_directory_is_a_journal_error(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot create"):
        SQLiteJournal(tmp_path / "no" / "such" / "dir.db")


def test_reopening_keeps_the_chain(tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    _filled(path, 5).close()
    with SQLiteJournal(path) as j:
        (e,) = j.append("s0", [ev()])
        assert e.seq == 6 and j.verify().ok


# -- tampering (an attacker who can drop the triggers) --------------------------------


def _tamper(path: Path, *statements: str) -> None:
    raw = _raw(path)
    raw.execute("DROP TRIGGER events_no_update")
    raw.execute("DROP TRIGGER events_no_delete")
    for sql in statements:
        raw.execute(sql)
    raw.close()


COLS = (
    "event_id, stream, version, type, command_id, causation_id, correlation_id, "
    "actor, host, recorded_at, payload, prev_hash, hash"
)


@pytest.mark.parametrize(
    ("statements", "bad_seq", "reason"),
    [
        (["UPDATE events SET payload = '{\"i\":999}' WHERE seq = 7"], 7, "hash mismatch"),
        (["DELETE FROM events WHERE seq = 5"], 5, "missing"),
        (
            [
                "DROP INDEX events_stream_version",
                "DROP INDEX events_event_id",
                "CREATE TEMP TABLE t AS SELECT * FROM events WHERE seq IN (8, 9)",
                f"UPDATE events SET ({COLS}) = (SELECT {COLS} FROM t WHERE t.seq = 9) "
                "WHERE seq = 8",
                f"UPDATE events SET ({COLS}) = (SELECT {COLS} FROM t WHERE t.seq = 8) "
                "WHERE seq = 9",
            ],
            8,
            "prev_hash",
        ),
        (
            ["UPDATE events SET actor = 'mallory' WHERE seq = 12"],
            12,
            "hash mismatch",
        ),
    ],
    ids=["edited-payload", "deleted-row", "swapped-rows", "edited-actor"],
)
def test_verify_names_the_first_tampered_seq(
    tmp_path: Path, statements: list[str], bad_seq: int, reason: str
) -> None:
    path = tmp_path / "j.db"
    _filled(path).close()
    _tamper(path, *statements)
    with SQLiteJournal(path) as j:
        report = j.verify()
    assert not report.ok
    assert report.first_bad_seq == bad_seq
    assert reason in (report.reason or "")


def test_verify_catches_a_rehashed_edit_at_the_next_link(tmp_path: Path) -> None:
    """Recomputing the edited row's own hash does not help: the next link breaks."""
    from fleetlog.journal.canonical import hash_row

    path = tmp_path / "j.db"
    _filled(path).close()
    raw = _raw(path)
    row = list(raw.execute("SELECT * FROM events WHERE seq = 4").fetchone())
    raw.close()
    row[11] = '{"i":1000}'
    new_hash = hash_row(*row[:13])
    _tamper(
        path,
        f"UPDATE events SET payload = '{row[11]}', hash = '{new_hash}' WHERE seq = 4",
    )
    with SQLiteJournal(path) as j:
        report = j.verify()
    assert (report.ok, report.first_bad_seq) == (False, 5)


# -- processes ------------------------------------------------------------------------


def test_four_processes_append_to_one_file(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    SQLiteJournal(path).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        counts = pool.starmap(_workers.append_many, [(path, w, 2000) for w in range(4)])
    assert counts == [2000] * 4
    with SQLiteJournal(path) as j:
        assert j.head() == 8000
        events = list(j.read_all())
        assert [e.seq for e in events] == list(range(1, 8001))
        per_stream: dict[str, list[int]] = {}
        for e in events:
            per_stream.setdefault(e.stream, []).append(e.version)
        for versions in per_stream.values():
            assert versions == list(range(1, len(versions) + 1))
        assert {e.actor for e in events} == {f"worker{w}" for w in range(4)}
        report = j.verify()
        assert report.ok and report.events == 8000


def test_two_journals_on_one_file_take_turns_without_forking_the_chain(tmp_path: Path) -> None:
    """Each journal writes a batch of appends in one statement planned on its cached
    tail; when the other one appended meanwhile, that statement hits a taken seq, writes
    nothing, and the batch is planned again from the file. Versions, expected versions
    and the chain come out as if one writer had done it all."""
    path = tmp_path / "shared.db"
    with SQLiteJournal(path) as a, SQLiteJournal(path) as b:
        for i in range(20):
            writer = a if i % 2 else b
            writer.append("s", [ev(i=i)], expected_version=i)
            writer.append(f"t{i % 3}", [ev(i=i), ev(i=i)])
        with pytest.raises(JournalError):
            b.append("s", [ev()], expected_version=19)  # a's append made it 20
        events = list(a.read_all())
        assert [e.seq for e in events] == list(range(1, 61))
        assert [e.payload["i"] for e in events if e.stream == "s"] == list(range(20))
        assert [e.version for e in events if e.stream == "s"] == list(range(1, 21))
        assert a.verify().ok and b.verify().ok


def test_two_journals_with_many_threads_each_keep_one_contiguous_chain(tmp_path: Path) -> None:
    """Each journal plans its next batch while the one before is written; with another
    connection appending to the same file, batches planned on a tail that another
    connection took are planned again, and nothing forks or leaves a gap."""
    path = tmp_path / "shared.db"
    with SQLiteJournal(path) as a, SQLiteJournal(path) as b:

        def work(journal: SQLiteJournal, k: int) -> None:
            for i in range(60):
                journal.append(f"s{k % 5}", [ev(k=k, i=i), ev(k=k, i=i)])

        threads = [threading.Thread(target=work, args=(j, k)) for k, j in enumerate([a, b] * 8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        events = list(a.read_all())
        assert [e.seq for e in events] == list(range(1, 16 * 60 * 2 + 1))
        for stream in {e.stream for e in events}:
            versions = [e.version for e in events if e.stream == stream]
            assert versions == list(range(1, len(versions) + 1))
        assert a.verify().ok


def test_append_taking_lease_is_all_or_nothing(tmp_path: Path) -> None:
    """SQLite takes a lease in the transaction of the append that records it
    (PostgreSQL takes the two steps, so this is not part of the contract)."""
    journal = SQLiteJournal(tmp_path / "j.db")
    assert isinstance(journal, LeaseAppending)
    assert journal.lease_row("host/a") is None
    alice = Lease("host/a", "alice", 1, time.time() + 30)
    events = journal.append_taking_lease("host/a", [ev(), ev()], alice, None, 0)
    assert [e.version for e in events] == [1, 2]
    assert journal.get_lease("host/a") == alice
    seen = journal.lease_row("host/a")
    assert seen == ("alice", 1, alice.expires_at)
    # Decided on a row that has changed since (alice renewed): nothing is written.
    journal.renew_lease(alice, ttl=60)
    bob = Lease("host/a", "bob", 2, time.time() + 30)
    with pytest.raises(LeaseChanged):
        journal.append_taking_lease("host/a", [ev()], bob, seen, 2)
    assert journal.stream_version("host/a") == 2 and journal.get_lease("host/a").owner == "alice"
    # A stale expected version refuses the append and leaves the lease alone.
    fresh = journal.lease_row("host/a")
    with pytest.raises(ConcurrencyConflict):
        journal.append_taking_lease("host/a", [ev()], bob, fresh, 1)
    assert journal.get_lease("host/a").owner == "alice"
    assert journal.verify().ok
    journal.close()


# -- group commit on one connection ---------------------------------------------------


def test_single_thread_appends_commit_once_each(tmp_path: Path) -> None:
    with SQLiteJournal(tmp_path / "j.db") as j:
        for i in range(10):
            j.append("s", [ev(i=i)])
        assert j.stats.commits == 10 and j.stats.appends == 10


def test_a_large_append_many_is_one_transaction_deciding_each_append_alone(
    tmp_path: Path,
) -> None:
    """``append_many`` of many appends (``inventory load``) is written in one transaction
    of its own, with the versions of its streams read in a few statements: each append
    still gets its own expected-version check, against what the file holds (streams
    written by another connection included), and a stale one is refused alone."""
    path = tmp_path / "j.db"
    with SQLiteJournal(path) as j, SQLiteJournal(path) as other:
        other.append("s7", [ev(), ev(), ev()])  # not in j's caches
        j.append("s9", [ev()])
        commits = j.stats.commits
        appends = [(f"s{i}", [ev(i=i)]) for i in range(600)]  # more than a group commit
        expected: list[int | None] = [0] * 600
        expected[7] = 3
        expected[9] = 0  # stale: s9 is at 1
        expected[11] = None
        statements: list[str] = []
        j._conn.set_trace_callback(statements.append)
        with pytest.raises(ConcurrencyConflict) as caught:
            j.append_many(appends, expected_versions=expected)
        j._conn.set_trace_callback(None)
        assert caught.value.fields["stream"] == "s9"
        assert sum("max(version)" in s for s in statements) == 2  # 500 a statement
        assert j.stats.commits == commits + 1
        assert j.stream_version("s9") == 1 and j.stream_version("s7") == 4
        assert [j.stream_version(f"s{i}") for i in (0, 8, 10, 11, 599)] == [1, 1, 1, 1, 1]
        assert j.head() == 4 + 599
        # the versions it read are kept: the next large batch continues them
        again = j.append_many(appends, expected_versions=[1] * 7 + [4] + [1] * 592)
        assert again[7][0].version == 5 and again[599][0].version == 2
        assert j.append_many(appends, returning=False) == []
        assert j.head() == 4 + 599 + 1200 and j.stats.commits == commits + 3
        assert j.verify().ok and other.verify().ok


def test_a_large_append_many_that_fails_is_retried_one_append_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the one transaction fails (nothing is written), the appends go through the
    group commit, which writes them batch by batch and retries a failed batch one by
    one: only what the file refuses fails."""
    with SQLiteJournal(tmp_path / "j.db") as j:
        together = j._writer.write_together

        def failing(slots: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(j._writer, "write_together", failing)
        got = j.append_many([(f"s{i}", [ev(i=i)]) for i in range(100)])
        assert [g[0].stream for g in got] == [f"s{i}" for i in range(100)]
        assert j.head() == 100 and j.verify().ok
        monkeypatch.setattr(j._writer, "write_together", together)


def test_append_batch_unchecked_builds_a_valid_chain(tmp_path: Path) -> None:
    with SQLiteJournal(tmp_path / "j.db") as j:
        n = j.append_batch_unchecked(
            ((f"s{i % 10}", [NewEvent("x", {"i": i})]) for i in range(1000)), chunk=300
        )
        assert n == 1000 and j.head() == 1000
        assert j.stream_version("s3") == 100
        assert j.verify().ok
        (e,) = j.append("s3", [ev()], expected_version=100)
        assert e.seq == 1001


def test_read_all_rows_is_lean(tmp_path: Path) -> None:
    with _filled(tmp_path / "j.db", 5) as j:
        rows = list(j.read_all_rows(types=["step.started"]))
        assert [r[0] for r in rows] == [1, 2, 3, 4, 5]
        assert isinstance(rows[0][11], str)
        lean = list(j.read_all_rows(columns=("seq", "payload")))
        assert lean[0] == (1, '{"i":0}')
        with pytest.raises(JournalError):
            list(j.read_all_rows(columns=("payload",)))


def test_a_second_journal_on_the_same_file_keeps_the_first_one_s_locks(tmp_path: Path) -> None:
    """Opening the file again in this process must not close a descriptor of it (POSIX
    would drop the first journal's locks, and another process closing last would then
    delete the WAL under it)."""
    path = tmp_path / "j.db"
    first = _filled(path, 3)
    SQLiteJournal(path).close()
    other = (
        "import sys; from fleetlog.journal.sqlite import SQLiteJournal; "
        "SQLiteJournal(sys.argv[1]).close()"
    )
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", other, str(path)], check=True)
    assert (tmp_path / "j.db-wal").exists()
    first.append("s0", [ev(i=99)])
    assert first.head() == 4 and first.verify().ok
    first.close()
