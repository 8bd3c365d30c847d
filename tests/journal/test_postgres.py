"""PostgreSQL-only behaviour: schema, triggers, the append lock across processes, driver
errors converted at the boundary, LISTEN/NOTIFY, and moving journals between backends
with every hash intact. The contract itself runs in ``test_contract.py`` on both."""

from __future__ import annotations

import io
import logging
import multiprocessing
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlog.journal import ConcurrencyConflict, Journal, NewEvent, open_journal
from fleetlog.journal.appender import AppendRequest, prepare_events
from fleetlog.journal.base import (
    Fenced,
    JournalStats,
    Lease,
    LeaseChanged,
    NotAJournal,
    SchemaTooNew,
    fence_of,
)
from fleetlog.journal.canonical import hash_row
from fleetlog.journal.groupcommit import Slot
from fleetlog.journal.postgres import PostgresJournal
from fleetlog.journal.postgres.schema import SCHEMA_VERSION, lock_key
from fleetlog.journal.postgres.writer import PgBatchWriter, PgRequest, resolve
from fleetlog.journal.sqlite import SQLiteJournal
from fleetlog.journal.testing import accepted, ev
from tests.journal import _workers
from tests.journal.pg import PG_URL, Schemas, require_postgres


@pytest.fixture
def schemas() -> Iterator[Schemas]:
    require_postgres()
    made = Schemas()
    yield made
    made.cleanup()


def _raw(url: str) -> Any:
    import psycopg

    from fleetlog.journal.postgres.conninfo import split_url

    conninfo, schema = split_url(url)
    return psycopg.connect(conninfo, autocommit=True, options=f"-c search_path={schema}")


def _fill(j: Journal, n: int = 20) -> None:
    for i in range(n):
        j.append(f"s{i % 3}", [accepted(f"c{i}", i=i), ev(text="ü ☃ \x00 \t", n=i / 3)])


# -- schema ---------------------------------------------------------------------------


def test_open_journal_routes_urls_and_creates_the_schema(schemas: Schemas) -> None:
    url = schemas.url()
    with open_journal(url, actor="a") as j:
        assert isinstance(j, PostgresJournal)
        assert j.schema == url.rsplit("=", 1)[1]
        j.append("s", [ev()])
    with open_journal(url) as j:  # reopening keeps the chain
        (e,) = j.append("s", [ev()], expected_version=1)
        assert e.seq == 2 and j.verify().ok
    with _raw(url) as conn:
        (version,) = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    assert version == SCHEMA_VERSION


def test_triggers_refuse_update_delete_and_truncate(schemas: Schemas) -> None:
    import psycopg

    url = schemas.url()
    with PostgresJournal(url) as j:
        _fill(j, 3)
    with _raw(url) as conn:
        for statement in (
            "UPDATE events SET type = 'x' WHERE seq = 1",
            "DELETE FROM events WHERE seq = 2",
            "TRUNCATE events",
        ):
            with pytest.raises(psycopg.Error, match="append-only"):
                conn.execute(statement)
        (count,) = conn.execute("SELECT count(*) FROM events").fetchone()
    assert count == 6


def test_newer_schema_version_is_refused_untouched(schemas: Schemas) -> None:
    url = schemas.url()
    PostgresJournal(url).close()
    with _raw(url) as conn:
        conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNew, match="upgrade fleetlog") as info:
        PostgresJournal(url)
    assert info.value.exit_code == 4
    with _raw(url) as conn:
        (n,) = conn.execute("SELECT count(*) FROM schema_version").fetchone()
    assert n == SCHEMA_VERSION + 1  # a row per migration, and the one added above


def test_schema_holding_other_tables_is_refused(schemas: Schemas) -> None:
    url = schemas.url()
    schema = url.rsplit("=", 1)[1]
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.customers (id int)")
    with pytest.raises(NotAJournal, match="customers"):
        PostgresJournal(url)
    with _raw(url) as conn:
        tables = {
            r[0]
            for r in conn.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
                (schema,),
            )
        }
    assert tables == {"customers"}


def test_bad_schema_name_and_unreachable_server_are_journal_errors() -> None:
    from fleetlog.journal import JournalError

    with pytest.raises(JournalError, match="identifier"):
        PostgresJournal(f"{PG_URL}?schema=a;drop")
    with pytest.raises(JournalError, match="cannot connect"):
        PostgresJournal("postgresql://nobody@127.0.0.1:1/none", connect_timeout=2)


def test_psycopg_is_imported_only_for_postgresql_urls(tmp_path: Path) -> None:
    code = (
        "import sys, journal\n"
        f"journal.open_journal({str(tmp_path / 'j.db')!r}).close()\n"
        "assert 'psycopg' not in sys.modules, 'psycopg imported for an SQLite journal'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- writers --------------------------------------------------------------------------


def test_a_lost_unique_race_is_a_concurrency_conflict(schemas: Schemas) -> None:
    """A writer that bypasses the append lock commits (x, 1) while an append of (x, 1)
    waits on the unique index: the driver's UniqueViolation reaches the caller as the
    journal's ConcurrencyConflict naming both versions."""
    url = schemas.url()
    j = PostgresJournal(url, actor="tester", host="h")
    j.append("other", [ev()])
    intruder = _raw(url)
    intruder.autocommit = False
    intruder.execute(
        "INSERT INTO events (seq, event_id, stream, version, type, actor, host, recorded_at,"
        " payload, prev_hash, hash) VALUES (99, 'e-99', 'x', 1, 't', 'a', 'h',"
        " '2000-01-01T00:00:00.000000Z', '{}', '', '')"
    )
    outcome: list[BaseException | None] = []

    def append() -> None:
        try:
            j.append("x", [ev()], expected_version=0)
            outcome.append(None)
        except BaseException as e:
            outcome.append(e)

    t = threading.Thread(target=append)
    t.start()
    schema = url.rsplit("=", 1)[1]
    with _raw(url) as watcher:  # wait until the append blocks on the intruder's row
        for _ in range(600_000):  # a hang guard only
            if not t.is_alive():
                break
            (waiting,) = watcher.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND backend_type = 'client backend' AND datname = current_database() "
                "AND pid IN (SELECT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s) "
                "AND pid <> pg_backend_pid()",
                (schema,),
            ).fetchone()
            if waiting:
                break
    intruder.commit()
    intruder.close()
    t.join()
    j.close()
    (error,) = outcome
    assert isinstance(error, ConcurrencyConflict), error
    assert (error.stream, error.expected, error.actual) == ("x", 0, 1)
    assert "expected version 0" in str(error) and "at version 1" in str(error)


def test_four_processes_append_to_one_journal(schemas: Schemas) -> None:
    url = schemas.url()
    PostgresJournal(url).close()
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        counts = pool.starmap(_workers.append_many_url, [(url, w, 500) for w in range(4)])
    assert counts == [500] * 4
    with PostgresJournal(url) as j:
        events = list(j.read_all())
        assert [e.seq for e in events] == list(range(1, 2001))
        per_stream: dict[str, list[int]] = {}
        for e in events:
            per_stream.setdefault(e.stream, []).append(e.version)
        for versions in per_stream.values():
            assert versions == list(range(1, len(versions) + 1))
        assert {e.actor for e in events} == {f"worker{w}" for w in range(4)}
        assert [e.recorded_at for e in events] == sorted(e.recorded_at for e in events)
        report = j.verify()
        assert report.ok and report.events == 2000


# -- waiting --------------------------------------------------------------------------


def test_follow_and_wait_are_woken_by_another_process_s_append(schemas: Schemas) -> None:
    url = schemas.url()
    with PostgresJournal(url) as reader, PostgresJournal(url, actor="writer") as writer:
        assert reader.wait_for_append(0, timeout=0.05) is False
        follower = reader.follow(poll=30)
        t = threading.Thread(target=lambda: writer.append("s", [ev(i=1)]))
        t.start()
        first = next(follower)  # returns on NOTIFY, not after the 30 s poll
        t.join()
        assert (first.seq, first.actor) == (1, "writer")
        assert reader.wait_for_append(0, timeout=30) is True
        waiter = threading.Thread(target=lambda: writer.append("s", [ev(i=2)]))
        waiter.start()
        assert reader.wait_for_append(1, timeout=30) is True
        waiter.join()
        follower.close()


# -- moving journals between backends -------------------------------------------------


def test_sqlite_and_postgres_hash_identically_both_ways(schemas: Schemas, tmp_path: Path) -> None:
    """Export from SQLite, import into PostgreSQL, export again, import into SQLite: the
    three export files are byte-identical and every journal verifies."""
    with SQLiteJournal(tmp_path / "a.db", actor="tester", host="h") as lite:
        _fill(lite, 40)
        lite.put_snapshot("s0", 3, {"x": 1})
        first = io.StringIO()
        assert lite.export(first) == 80
    with PostgresJournal(schemas.url()) as pg:
        assert pg.import_(io.StringIO(first.getvalue())) == 80
        assert pg.verify().ok
        second = io.StringIO()
        pg.export(second)
        (nxt,) = pg.append("s0", [ev()], expected_version=pg.stream_version("s0"))
        assert nxt.seq == 81
    assert second.getvalue() == first.getvalue()
    with SQLiteJournal(tmp_path / "b.db") as back:
        back.import_(io.StringIO(second.getvalue()))
        third = io.StringIO()
        back.export(third)
        assert back.verify().ok
    assert third.getvalue() == first.getvalue()


def test_postgres_appends_hash_as_sqlite_verifies(schemas: Schemas, tmp_path: Path) -> None:
    """Rows written by the PostgreSQL writer (payloads with NUL, non-BMP text, floats)
    verify in SQLite after a move: both compute the one hash definition."""
    payload = {"nul": "a\x00b", "emoji": "🛰", "f": 0.1, "big": 2**60, "neg": -0.0, "e": 1e300}
    with PostgresJournal(schemas.url(), actor="tester", host="h") as pg:
        (e,) = pg.append("s", [NewEvent("x", payload)])
        assert pg.read_stream("s")[0].payload == payload
        buf = io.StringIO()
        pg.export(buf)
    with SQLiteJournal(tmp_path / "c.db") as lite:
        lite.import_(io.StringIO(buf.getvalue()))
        assert lite.verify().ok
        assert lite.read_stream("s")[0].hash == e.hash


def test_dropped_snapshot_table_is_recreated(schemas: Schemas) -> None:
    url = schemas.url()
    with PostgresJournal(url) as j:
        j.append("s", [ev(), ev()])
        j.put_snapshot("s", 1, {"a": 1})
        with _raw(url) as conn:
            conn.execute("DROP TABLE snapshots")
        assert j.get_snapshot("s") is None  # a cache may vanish
        j.put_snapshot("s", 2, {"a": 2})
        assert j.get_snapshot("s") == (2, {"a": 2})


# -- the server-side append -------------------------------------------------------------

_TEXT = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"))


def test_server_side_hashes_are_the_chain_s_for_any_text(schemas: Schemas) -> None:
    """``fleetlog_append`` hashes in SQL what ``journal.canonical`` hashes in Python:
    quotes, backslashes, control characters, non-BMP text in every hashed column."""
    with PostgresJournal(schemas.url(), actor="tester", host="h") as pg:

        @settings(max_examples=60, deadline=None)
        @given(
            stream=_TEXT.filter(bool),
            type_=_TEXT,
            actor=_TEXT,
            host=_TEXT,
            command_id=st.none() | _TEXT,
            payload=st.dictionaries(_TEXT, _TEXT | st.integers() | st.floats(allow_nan=False)),
        )
        def check(
            stream: str,
            type_: str,
            actor: str,
            host: str,
            command_id: str | None,
            payload: dict[str, Any],
        ) -> None:
            event = NewEvent(type_, payload, command_id=command_id, actor=actor, host=host)
            (e,) = pg.append(stream, [event])
            (row,) = list(pg.read_all_rows(from_seq=e.seq - 1))
            assert hash_row(*row[:13]) == row[13] == e.hash
            assert pg.read_stream(stream)[-1] == e

        check()
        assert pg.verify().ok


def test_a_lease_is_taken_with_the_append_that_records_it(schemas: Schemas) -> None:
    with PostgresJournal(schemas.url()) as pg:
        lease = Lease("vm/a", "me", 1, 4e9)
        (e,) = pg.append_taking_lease("vm/a", [ev(i=1)], lease, None, expected_version=0)
        assert e.version == 1 and pg.get_lease("vm/a") == lease
        with pytest.raises(LeaseChanged):  # decided on a row that is no longer there
            pg.append_taking_lease("vm/a", [ev(i=2)], Lease("vm/a", "you", 2, 4e9), None)
        seen = pg.lease_row("vm/a")
        with pytest.raises(ConcurrencyConflict):  # refused before the lease is touched
            pg.append_taking_lease("vm/a", [ev()], Lease("vm/a", "you", 2, 4e9), seen, 0)
        assert pg.get_lease("vm/a") == lease and pg.stream_version("vm/a") == 1
        pg.append_releasing_lease("vm/a", [ev(i=3)], lease)
        assert pg.get_lease("vm/a") is None and pg.stream_version("vm/a") == 2
        with pytest.raises(Fenced):  # released: appends under it are refused
            pg.append("vm/a", [ev()], fence=fence_of(lease))


def test_an_append_in_doubt_is_found_by_its_event_ids_not_written_again(
    schemas: Schemas,
) -> None:
    """What ``_write_slots`` does after losing the connection with a batch in flight:
    the members that did commit are answered from the journal; the others are left to
    be sent again."""
    url = schemas.url()
    with PostgresJournal(url) as pg, _raw(url) as conn:
        sent = PgRequest.of(AppendRequest("s", prepare_events([ev(i=1), ev(i=2)], "a", "h"), 0))
        lost = PgRequest.of(AppendRequest("s", prepare_events([ev(i=3)], "a", "h"), None))
        writer = PgBatchWriter(lock_key(pg.schema), JournalStats())
        (rows,) = writer.call(conn, [sent])  # committed; say its answer never arrived
        slots: list[Slot[PgRequest]] = [Slot(sent), Slot(lost)]
        rest = resolve(conn, slots)
        assert rest == [slots[1]] and not slots[1].done
        assert slots[0].result == rows
        assert [e.seq for e in pg.read_all()] == [1, 2]


def test_a_call_refused_by_the_server_leaves_its_connection_usable(schemas: Schemas) -> None:
    """A batch flushed in the same round trip as its call runs in an explicit
    transaction: when the server refuses a statement in it, the transaction is ended,
    nothing of it is kept, and the next call on the same connection goes through."""
    import psycopg
    from psycopg.pq import TransactionStatus

    url = schemas.url()
    with PostgresJournal(url) as pg, _raw(url) as conn:
        writer = PgBatchWriter(lock_key(pg.schema), JournalStats())
        good = prepare_events([ev(i=1)], "a", "h")
        # The payload column is json: a text that is not JSON fails the INSERT itself.
        bad = PgRequest.of(AppendRequest("s", [(*good[0][:6], "{not json")], None))
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            writer.call(conn, [bad])
        assert conn.info.transaction_status == TransactionStatus.IDLE
        assert pg.head() == 0
        (rows,) = writer.call(conn, [PgRequest.of(AppendRequest("s", good, 0))])
        assert not isinstance(rows, BaseException) and [r[0] for r in rows] == [1]
        assert pg.verify().ok


def test_killed_connections_are_reconnected_and_reported_once(
    schemas: Schemas, caplog: pytest.LogCaptureFixture
) -> None:
    """Every backend of the journal is killed server-side between two appends (and
    while a waiter listens): the next calls reconnect by themselves, and the outage is
    one warning."""
    tag = schemas.url().rsplit("=", 1)[1]
    url = f"{PG_URL}{'&' if '?' in PG_URL else '?'}application_name={tag}&schema={tag}"
    with PostgresJournal(url, pool_size=4) as pg:
        pg.append("s", [ev(i=1)])
        assert pg.wait_for_append(0, timeout=5) is True
        import psycopg

        with psycopg.connect(PG_URL, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = %s",
                (tag,),
            ).fetchall()
        assert len(killed) >= 2  # a pooled connection and the waiter's
        with caplog.at_level(logging.WARNING, logger="fleetlog.journal"):
            (e,) = pg.append("s", [ev(i=2)], expected_version=1)
            assert pg.wait_for_append(1, timeout=5) is True
            assert [x.version for x in pg.read_stream("s")] == [1, 2]
        assert e.version == 2
        lines = [r.getMessage() for r in caplog.records if r.name == "fleetlog.journal"]
        assert len(lines) == 1 and "connection lost" in lines[0], lines
        assert "reconnected after" in lines[0]
        assert pg.verify().ok
