"""The journal's own integrity checks, on each backend: the verified head and the walk
from it (``check_integrity``, ``seal``), what damage each finds, snapshots bound to the
chain, and the witness file. The command line's use of them is tested in
``tests/engine/cli/test_integrity.py``."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.errors import UsageError
from fleetlog.journal import Head, IntegrityReport, Journal, JournalIntegrityError
from fleetlog.journal.canonical import canonical_json
from fleetlog.journal.sqlite import SQLiteJournal
from fleetlog.journal.testing import ev
from fleetlog.journal.witness import HEADER, Witness
from tests.journal.damage import (
    Raw,
    delete_rows,
    edit_payload,
    forge_snapshot,
    rehash,
    truncate_tail,
)
from tests.journal.pg import Schemas, require_postgres


@pytest.fixture(params=["sqlite", "postgres"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where a journal lives: an SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield str(tmp_path / "j.db")
        return
    require_postgres()
    schemas = Schemas()
    yield schemas.url()
    schemas.cleanup()


def _open(url: str, key: bytes | None = None) -> Journal:
    from fleetlog.journal import open_journal

    j = open_journal(url, actor="tester", host="testhost")
    j.chain_key = key
    return j


def _sealed(url: str, n: int = 12, key: bytes | None = None) -> list[Head]:
    """A journal of ``n`` events in three streams whose head is verified; the heads."""
    with _open(url, key) as j:
        heads = []
        for i in range(n):
            (e,) = j.append(f"s{i % 3}", [ev(i=i)])
            heads.append(Head(e.seq, e.hash))
        sealed = j.seal(j.check_integrity())
        assert sealed.ok and sealed.head == heads[-1]
    return heads


def _check(
    url: str, witnessed: list[Head] | None = None, key: bytes | None = None
) -> IntegrityReport:
    with _open(url, key) as j:
        return j.check_integrity(witnessed or [])


# -- what each damage does to the check ----------------------------------------------------


def test_a_sound_journal_checks_out_from_its_verified_head(url: str) -> None:
    heads = _sealed(url)
    with _open(url) as j:
        j.append("s0", [ev(), ev()])
        report = j.check_integrity(heads)
        assert report.ok and report.checked == 2 and not report.full
        assert report.head == j.tail() and report.head.seq == 14


def test_an_event_removed_after_the_verified_head_is_found(url: str) -> None:
    _sealed(url)
    with _open(url) as j:
        j.append("s0", [ev(), ev(), ev()])
    with Raw(url) as raw:
        delete_rows(raw, 14)
    report = _check(url)
    assert not report.ok and report.first_bad_seq == 14
    assert "seq 14 is missing" in report.reason


def test_removing_the_tail_is_found_by_the_verified_head(url: str) -> None:
    _sealed(url)
    with Raw(url) as raw:
        truncate_tail(raw, keep=9)
    report = _check(url)
    assert not report.ok and report.first_bad_seq == 10
    assert "ends at seq 9, but it held seq 12" in report.reason


def test_removing_the_tail_and_rewinding_the_verified_head_needs_the_witness(url: str) -> None:
    heads = _sealed(url)
    with Raw(url) as raw:
        truncate_tail(raw, keep=9, rewind_verified=True)
    assert _check(url).ok  # the journal alone cannot tell
    report = _check(url, heads[-3:])
    assert not report.ok and report.first_bad_seq == 10
    assert "witness recorded seq 12" in report.reason


def test_a_rehash_is_found_by_the_verified_head(url: str) -> None:
    _sealed(url)
    with Raw(url) as raw:
        rehash(raw, 4, lambda p: p.replace('"i":3', '"i":33'))
    with _open(url) as j:
        assert j.verify().ok  # the chain is sound in itself
        report = j.check_integrity()
    assert not report.ok and report.first_bad_seq == 12
    assert "no longer has the hash it had when it was verified" in (report.reason or "")


def test_a_rehash_that_also_fixes_the_verified_head_needs_the_witness_or_the_key(
    url: str,
) -> None:
    heads = _sealed(url)
    with Raw(url) as raw:
        rehash(raw, 4, lambda p: p.replace('"i":3', '"i":33'), fix_verified=True)
    assert _check(url).ok  # the journal alone cannot tell
    report = _check(url, heads[-1:])
    assert not report.ok and report.first_bad_seq == 12
    assert "history was rewritten" in report.reason


def test_with_a_chain_key_a_rehash_cannot_move_the_verified_head(url: str) -> None:
    key = b"0123456789abcdef0123456789abcdef"
    _sealed(url, key=key)
    assert _check(url, key=key).ok
    with Raw(url) as raw:
        rehash(raw, 4, lambda p: p.replace('"i":3', '"i":33'), fix_verified=True)
    report = _check(url, key=key)
    assert not report.ok and report.first_bad_seq == 12
    assert "does not match the chain key" in report.reason
    assert not report.unsealed  # `verify --seal` will not bless it
    # and removing the verified head altogether leaves a keyed journal unsealed
    with Raw(url) as raw:
        raw.q("DELETE FROM verified_head")
    report = _check(url, key=key)
    assert not report.ok and report.unsealed


def test_sqlite_an_edit_behind_the_verified_head_makes_the_check_walk_everything(
    tmp_path: Path,
) -> None:
    """Editing a row needs the append-only triggers gone, which changes the schema
    cookie the verified head was taken under: the next check walks the whole chain."""
    url = str(tmp_path / "j.db")
    _sealed(url, n=30)
    with Raw(url) as raw:
        edit_payload(raw, 3, '"i":2', '"i":22')
    report = _check(url)
    assert not report.ok and report.full
    assert report.first_bad_seq == 3
    assert "content was altered" in report.reason


def test_sqlite_the_check_walks_everything_once_after_a_schema_change(tmp_path: Path) -> None:
    url = str(tmp_path / "j.db")
    _sealed(url, n=30)
    with Raw(url):
        pass  # the triggers are dropped: nothing else
    with _open(url) as j:
        first = j.check_integrity()
        assert first.ok and first.full and first.checked == 30
        j.seal(first)
        again = j.check_integrity()
        assert again.ok and not again.full and again.checked == 0


# -- snapshots -------------------------------------------------------------------------------


def test_snapshots_are_sealed_and_bound_to_their_event(url: str) -> None:
    _sealed(url)
    with _open(url) as j:
        j.put_snapshot("s0", 4, {"state": "up"})
        j.put_snapshot("s1", 4, {"state": "down"})
        assert j.get_snapshot("s0") == (4, {"state": "up"})
        assert j.check_integrity().ok
    with Raw(url) as raw:
        (text,) = raw.q(
            "SELECT state" + ("::text" if raw.pg else "") + " FROM snapshots WHERE stream = 's0'"
        )[0]
        forge_snapshot(raw, "s0", 4, text.replace('"up"', '"gone"'))  # altered state
        forge_snapshot(raw, "s2", 4, text)  # s0's snapshot moved to another stream
    with _open(url) as j:
        assert j.get_snapshot("s0") is None and j.get_snapshot("s2") is None
        assert j.get_snapshot("s1") == (4, {"state": "down"})
        problems = [p for _, p in j.snapshot_problems]
        assert "does not match its seal: its state was altered" in problems[0]
        assert "names seq 10" in problems[1] and "the journal has seq 12" in problems[1]
        report = j.check_integrity()
        assert not report.ok and "the snapshot of s0" in (report.reason or "")


def test_an_unsealed_snapshot_is_a_forgery_once_heads_are_verified(url: str) -> None:
    """The issue's forgery: a row in the old format, naming a state the events never
    held. Before a head was ever verified such rows are just not used (a journal from
    an older fleetlog); keeping the first verified head drops them."""
    with _open(url) as j:
        j.append("s", [ev(), ev(), ev()])
    with Raw(url) as raw:
        forge_snapshot(raw, "s", 3, canonical_json({"definition_hash": None, "record": {}}))
    with _open(url) as j:
        assert j.get_snapshot("s") is None and j.snapshot_problems == []
        report = j.check_integrity()
        assert report.ok
        assert j.seal(report).ok  # keeping the first verified head drops the old cache
        assert j.snapshot_streams() == []
    with Raw(url) as raw:
        forge_snapshot(raw, "s", 3, canonical_json({"definition_hash": None, "record": {}}))
    with _open(url) as j:
        assert j.get_snapshot("s") is None
        assert "carries no seal" in j.snapshot_problems[0][1]
        assert not j.check_integrity().ok


# -- the witness file ------------------------------------------------------------------------


def test_a_witness_is_a_private_append_only_list_of_heads(tmp_path: Path) -> None:
    path = tmp_path / "w"
    w = Witness(path)
    assert w.recent() == [] and list(w.heads()) == []
    heads = [Head(i, f"{i:064x}") for i in (1, 5, 9)]
    for h in heads:
        w.record(h)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = path.read_text().splitlines()
    assert lines[0] == HEADER.strip() and len(lines) == 4
    assert [x.head for x in w.heads()] == heads
    assert [x.line for x in w.heads()] == [2, 3, 4]
    assert [x.head for x in w.recent()] == heads


def test_a_torn_witness_line_is_ignored_and_the_next_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "w"
    w = Witness(path)
    w.record(Head(1, "a" * 64))
    with open(path, "a") as f:
        f.write(f"2 {'b' * 30}")  # a crash in the middle of writing a line
    assert [x.seq for x in w.recent()] == [1]
    w.record(Head(3, "c" * 64))
    assert [x.seq for x in w.heads()] == [1, 3]
    assert [x.seq for x in w.recent()] == [1, 3]


def test_recent_reads_only_the_end_of_a_long_witness(tmp_path: Path) -> None:
    path = tmp_path / "w"
    w = Witness(path)
    for i in range(1, 150):
        w.record(Head(i, f"{i:064x}"))
    recent = w.recent()
    assert 10 < len(recent) < 100 and recent[-1].seq == 149
    assert [x.seq for x in recent] == list(range(150 - len(recent), 150))


def test_a_damaged_or_foreign_witness_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "w"
    Witness(path).record(Head(1, "a" * 64))
    with open(path, "a") as f:
        f.write("this is not a head\n")
    with pytest.raises(JournalIntegrityError, match="is damaged"):
        Witness(path).recent()
    journal = tmp_path / "j.db"
    SQLiteJournal(journal).close()
    with pytest.raises(UsageError, match="is not a fleetlog witness file"):
        Witness(journal).recent()


def test_a_keyed_witness_seals_its_lines(tmp_path: Path) -> None:
    path = tmp_path / "w"
    key = b"k" * 32
    Witness(path, key).record(Head(7, "a" * 64))
    assert path.read_text().splitlines()[1].split(" ")[3].startswith("hmac-sha256:")
    assert [x.seq for x in Witness(path, key).heads()] == [7]
    assert [x.seq for x in Witness(path).heads()] == [7]  # readable without the key
    path.write_text(path.read_text().replace("a" * 64, "b" * 64))
    with pytest.raises(JournalIntegrityError, match="was altered"):
        list(Witness(path, key).heads())


def test_a_witness_that_cannot_be_written_is_an_error_naming_the_head(tmp_path: Path) -> None:
    from fleetlog.journal import JournalError

    (tmp_path / "ro").mkdir()
    os.chmod(tmp_path / "ro", 0o500)
    try:
        if os.access(tmp_path / "ro", os.W_OK):
            target = tmp_path / "ro" / "missing-dir" / "w"  # root writes anywhere
        else:
            target = tmp_path / "ro" / "w"
        with pytest.raises(JournalError, match="cannot record the journal's head") as info:
            Witness(target).record(Head(3, "d" * 64))
        assert "d" * 64 in str(info.value)
    finally:
        os.chmod(tmp_path / "ro", 0o700)
