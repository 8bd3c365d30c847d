"""The journal contract: the behaviour every journal backend must have, as a test suite
any backend can run (eventsourcing's ``tests/persistence.py`` does the same for its
recorders).

Subclass ``JournalContract``, name the subclass ``Test…`` so pytest collects it, and
implement ``make_journal``: return a fresh, empty journal (its actor ``tester`` and host
``testhost``) kept under ``directory``, which is empty and yours::

    from fleetlog.journal.testing import JournalContract

    class TestMyJournal(JournalContract):
        def make_journal(self, directory):
            return MyJournal(directory / "j.db", actor="tester", host="testhost")

fleetlog runs it against SQLite and PostgreSQL (``tests/journal/test_contract.py``).
Importing this module needs pytest; nothing in fleetlog imports it.
"""

from __future__ import annotations

import abc
import io
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlog.journal.base import (
    GENESIS_HASH,
    ConcurrencyConflict,
    Fence,
    Fenced,
    Head,
    Journal,
    JournalError,
    JournalIntegrityError,
    LeaseHeld,
    NewEvent,
    fence_of,
)
from fleetlog.journal.canonical import event_hash

JournalFactory = Callable[[], Journal]


def ev(type_: str = "step.started", command_id: str | None = None, **payload: Any) -> NewEvent:
    """A small event to append."""
    return NewEvent(type=type_, payload=payload, command_id=command_id)


def accepted(command_id: str, **payload: Any) -> NewEvent:
    """A ``command.accepted`` with ``command_id`` (idempotent submission)."""
    return NewEvent(type="command.accepted", payload=payload, command_id=command_id)


class JournalContract(abc.ABC):
    """The contract's tests, for a backend's ``make_journal``."""

    @abc.abstractmethod
    def make_journal(self, directory: Path) -> Journal:
        """A fresh, empty journal of the backend under test."""

    @pytest.fixture
    def journal_factory(self, tmp_path: Path) -> Iterator[JournalFactory]:
        made: list[Journal] = []

        def make() -> Journal:
            directory = tmp_path / f"journal{len(made)}"
            directory.mkdir()
            made.append(self.make_journal(directory))
            return made[-1]

        yield make
        for j in made:
            j.close()

    @pytest.fixture
    def journal(self, journal_factory: JournalFactory) -> Journal:
        return journal_factory()

    # -- appending ------------------------------------------------------------------------

    def test_append_assigns_versions_seq_and_chain(self, journal: Journal) -> None:
        first = journal.append("host/a", [ev(n=1), ev(n=2)], expected_version=0)
        second = journal.append("host/b", [ev(n=3)], expected_version=0)
        third = journal.append("host/a", [ev(n=4)], expected_version=2)
        events = first + second + third
        assert [e.seq for e in events] == [1, 2, 3, 4]
        assert [(e.stream, e.version) for e in events] == [
            ("host/a", 1),
            ("host/a", 2),
            ("host/b", 1),
            ("host/a", 3),
        ]
        assert events[0].prev_hash == GENESIS_HASH
        for before, after in itertools.pairwise(events):
            assert after.prev_hash == before.hash
        for e in events:
            assert e.hash == event_hash(e.to_dict())
            assert e.actor == "tester" and e.host == "testhost"
            assert len(e.recorded_at) == 27 and e.recorded_at.endswith("Z")
        assert journal.head() == 4
        assert journal.stream_version("host/a") == 3
        assert journal.stream_version("nope") == 0

    def test_events_of_one_append_share_recorded_at_and_appends_increase(
        self, journal: Journal
    ) -> None:
        a = journal.append("s", [ev(), ev()])
        b = journal.append("s", [ev()])
        assert a[0].recorded_at == a[1].recorded_at
        assert b[0].recorded_at > a[1].recorded_at

    def test_event_ids_are_unique_uuidv7(self, journal: Journal) -> None:
        events = journal.append("s", [ev() for _ in range(50)])
        ids = [e.event_id for e in events]
        assert len(set(ids)) == 50
        assert ids == sorted(ids)
        assert all(i[14] == "7" and i[19] in "89ab" for i in ids)

    def test_actor_and_host_can_be_given_per_event(self, journal: Journal) -> None:
        (e,) = journal.append("s", [NewEvent("x", actor="alice", host="h1")])
        assert (e.actor, e.host) == ("alice", "h1")

    def test_stale_expected_version_conflicts_and_appends_nothing(self, journal: Journal) -> None:
        journal.append("host/a", [ev(), ev()], expected_version=0)
        with pytest.raises(ConcurrencyConflict) as info:
            journal.append("host/a", [ev()], expected_version=1)
        message = str(info.value)
        assert "host/a" in message and "1" in message and "2" in message
        assert (info.value.stream, info.value.expected, info.value.actual) == ("host/a", 1, 2)
        assert journal.head() == 2
        with pytest.raises(ConcurrencyConflict):
            journal.append("host/new", [ev()], expected_version=3)
        assert journal.head() == 2

    def test_payload_must_be_json(self, journal: Journal) -> None:
        with pytest.raises(JournalError):
            journal.append("s", [NewEvent("x", payload={"bad": object()})])
        with pytest.raises(JournalError):
            journal.append("s", [NewEvent("x", payload={"nan": float("nan")})])
        assert journal.head() == 0

    def test_empty_append_is_a_no_op(self, journal: Journal) -> None:
        assert journal.append("s", []) == []
        assert journal.head() == 0

    def test_payloads_round_trip(self, journal: Journal) -> None:
        payload = {"ünï": "cødé ☃", "nested": {"b": [1, 2.5, None, True]}, "q": '"\\\n\t\x01'}
        (e,) = journal.append("s", [NewEvent("x", payload=payload)])
        assert e.payload == payload
        assert journal.read_stream("s")[0].payload == payload

    # -- idempotent submission ------------------------------------------------------------

    def test_resubmitted_command_returns_original_events(self, journal: Journal) -> None:
        original = journal.append(
            "host/a", [accepted("cmd-1", op="drain"), ev(), ev()], expected_version=0
        )
        journal.append("host/a", [ev(after=True)])  # a later append must not be included
        again = journal.append("host/a", [accepted("cmd-1", op="drain")], expected_version=0)
        assert again == original
        assert journal.head() == 4
        assert journal.events_for_command("cmd-1") == [original[0]]

    def test_resubmission_in_the_same_batch_of_threads(self, journal: Journal) -> None:
        results: list[list[int]] = []
        lock = threading.Lock()

        def submit() -> None:
            got = journal.append("host/a", [accepted("cmd-x"), ev()])
            with lock:
                results.append([e.seq for e in got])

        threads = [threading.Thread(target=submit) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert journal.head() == 2
        assert all(r == [1, 2] for r in results)

    # -- reading --------------------------------------------------------------------------

    def test_read_stream_range_and_to_seq(self, journal: Journal) -> None:
        journal.append("a", [ev(i=1), ev(i=2)])
        journal.append("b", [ev(i=3)])
        journal.append("a", [ev(i=4)])
        assert [e.payload["i"] for e in journal.read_stream("a")] == [1, 2, 4]
        assert [e.version for e in journal.read_stream("a", from_version=2)] == [2, 3]
        assert [e.version for e in journal.read_stream("a", to_seq=3)] == [1, 2]
        assert journal.read_stream("missing") == []

    def test_read_all_ranges_and_types(self, journal: Journal) -> None:
        for i in range(5000):
            journal.append(f"s{i % 3}", [ev("step.started" if i % 2 else "step.succeeded", i=i)])
        everything = list(journal.read_all())
        assert [e.seq for e in everything] == list(range(1, 5001))
        assert [e.seq for e in journal.read_all(from_seq=10, to_seq=13)] == [11, 12, 13]
        started = list(journal.read_all(types=["step.started"]))
        assert len(started) == 2500 and all(e.type == "step.started" for e in started)
        assert list(journal.read_all(from_seq=5000)) == []

    def test_streams_with_prefix(self, journal: Journal) -> None:
        for s in ["host/b", "host/a", "rack/1", "host/a", "hostile"]:
            journal.append(s, [ev()])
        assert journal.streams() == ["host/a", "host/b", "hostile", "rack/1"]
        assert journal.streams("host/") == ["host/a", "host/b"]
        assert journal.streams("zzz") == []

    def test_streams_present_are_those_asked_about_that_have_events(self, journal: Journal) -> None:
        for s in ["host/b", "host/a", "rack/1", "hostile", "plain"]:
            journal.append(s, [ev()])
        asked = ["host/a", "host/c", "hostile", "rack/1", "rack/2", "plain", "host/a", "x/y"]
        expected = {"host/a", "hostile", "rack/1", "plain"}
        assert journal.streams_present(asked) == expected
        assert journal.streams_present(iter(asked)) == expected  # any iterable, read once
        # the default (a backend without its own) answers the same
        assert Journal.streams_present(journal, asked) == expected
        many = [f"host/{i}" for i in range(1200)] + ["host/a"]
        assert journal.streams_present(many) == {"host/a"}
        assert journal.streams_present([]) == set()

    def test_seq_at_time(self, journal: Journal) -> None:
        assert journal.seq_at_time("2030-01-01T00:00:00Z") == 0
        a = journal.append("s", [ev(), ev()])
        time.sleep(0.002)
        b = journal.append("s", [ev()])
        assert journal.seq_at_time("2000-01-01T00:00:00Z") == 0
        assert journal.seq_at_time(a[0].recorded_at) == 2
        assert journal.seq_at_time(b[0].recorded_at) == 3
        assert journal.seq_at_time("2999-01-01T00:00:00.000000Z") == 3
        with pytest.raises(JournalError):
            journal.seq_at_time("yesterday")

    def test_events_for_command(self, journal: Journal) -> None:
        journal.append("a", [accepted("c1"), NewEvent("step.started", command_id="c1")])
        journal.append("b", [ev()])
        journal.append("a", [NewEvent("step.succeeded", command_id="c1")])
        assert [e.seq for e in journal.events_for_command("c1")] == [1, 2, 4]
        assert journal.events_for_command("nope") == []

    def test_follow_yields_new_events(self, journal: Journal) -> None:
        journal.append("s", [ev(i=1)])
        seen: list[int] = []
        follower = journal.follow(poll=0.01)
        seen.append(next(follower).seq)
        journal.append("s", [ev(i=2)])
        seen.append(next(follower).seq)
        assert seen == [1, 2]

    # -- verify, export, import -----------------------------------------------------------

    def test_verify_empty_and_full(self, journal: Journal) -> None:
        assert journal.verify().ok
        for i in range(20):
            journal.append(f"s{i % 4}", [ev(i=i), ev(i=-i)])
        report = journal.verify()
        assert report.ok and report.events == 40 and report.first_bad_seq is None

    def test_export_import_round_trip(self, journal_factory: JournalFactory) -> None:
        source = journal_factory()
        for i in range(30):
            source.append(f"s{i % 4}", [accepted(f"c{i}", i=i), ev(x="ü")])
        buf = io.StringIO()
        assert source.export(buf) == 60
        lines = buf.getvalue().splitlines()
        assert lines[0].startswith('{"actor":"tester","causation_id":null')
        buf.seek(0)
        target = journal_factory()
        assert target.import_(buf) == 60
        assert list(target.read_all()) == list(source.read_all())
        assert target.verify().ok
        # Appending continues the imported chain.
        (nxt,) = target.append("s0", [ev()], expected_version=source.stream_version("s0"))
        assert nxt.seq == 61 and nxt.prev_hash == list(source.read_all())[-1].hash

    def test_import_refuses_a_non_empty_journal(self, journal_factory: JournalFactory) -> None:
        source = journal_factory()
        source.append("s", [ev()])
        buf = io.StringIO()
        source.export(buf)
        buf.seek(0)
        with pytest.raises(JournalError, match="not empty"):
            source.import_(buf)

    @pytest.mark.parametrize(
        ("damage", "line"),
        [
            (lambda ls: ls.__setitem__(6, ls[6].replace('"i":6', '"i":66')), 7),  # edited
            (lambda ls: ls.pop(3), 4),  # deleted
            (lambda ls: ls.__setitem__(slice(4, 6), [ls[5], ls[4]]), 5),  # swapped
            (lambda ls: ls.__setitem__(8, "{not json"), 9),
            (lambda ls: ls.__setitem__(9, '{"seq": 10}'), 10),
        ],
        ids=["edited", "deleted", "swapped", "not-json", "missing-columns"],
    )
    def test_import_refuses_a_broken_file_and_imports_nothing(
        self, journal_factory: JournalFactory, damage: object, line: int
    ) -> None:
        source = journal_factory()
        for i in range(12):
            source.append(f"s{i % 2}", [ev(i=i)])
        buf = io.StringIO()
        source.export(buf)
        lines = buf.getvalue().splitlines()
        damage(lines)  # type: ignore[operator]
        target = journal_factory()
        with pytest.raises(JournalIntegrityError) as info:
            target.import_(io.StringIO("\n".join(lines) + "\n"))
        assert f"line {line}" in str(info.value)
        assert info.value.exit_code == 4
        assert target.head() == 0

    # -- snapshots ------------------------------------------------------------------------

    def test_snapshots_are_a_cache(self, journal: Journal) -> None:
        journal.append("s", [ev(i=i) for i in range(5)])
        assert journal.get_snapshot("s") is None
        journal.put_snapshot("s", 3, {"state": "up"})
        journal.put_snapshot("s", 2, {"state": "old"})  # an older snapshot never wins
        assert journal.get_snapshot("s") == (3, {"state": "up"})
        journal.put_snapshot("s", 5, {"state": "down"})
        assert journal.get_snapshot("s") == (5, {"state": "down"})
        assert journal.snapshot_streams() == [("s", 5, 5)]
        # a snapshot is bound to an event: there must be one at its version
        with pytest.raises(JournalError, match="no such event"):
            journal.put_snapshot("s", 6, {"state": "later"})
        assert journal.snapshot_problems == []

    # -- integrity: the verified head, witnessed heads, refused writes ---------------------

    def test_the_check_starts_at_the_verified_head(self, journal: Journal) -> None:
        empty = journal.check_integrity()
        assert empty.ok and empty.head == Head(0, GENESIS_HASH) and empty.checked == 0
        for i in range(6):
            journal.append(f"s{i % 2}", [ev(i=i), ev(i=-i)])
        first = journal.check_integrity()
        assert first.ok and first.full and first.checked == 12
        assert first.head == journal.tail() and first.head.seq == 12
        sealed = journal.seal(first)
        assert sealed.ok and sealed.head == first.head
        journal.append("s0", [ev(i=99)])
        journal.append("s2", [ev(i=100)])
        later = journal.check_integrity()
        assert later.ok and not later.full
        assert later.checked == 2 and later.head == journal.tail() and later.head.seq == 14
        assert journal.seal(later).ok
        assert journal.check_integrity().checked == 0

    def test_witnessed_heads_must_be_held(self, journal: Journal) -> None:
        events = [e for i in range(4) for e in journal.append("s", [ev(i=i)])]
        heads = [Head(e.seq, e.hash) for e in events]
        assert journal.check_integrity(heads).ok
        rewritten = journal.check_integrity([heads[0], Head(3, "f" * 64)])
        assert not rewritten.ok and rewritten.first_bad_seq == 3
        assert "history was rewritten" in (rewritten.reason or "")
        behind = journal.check_integrity([*heads, Head(7, "e" * 64)])
        assert not behind.ok and behind.first_bad_seq == 5
        assert "removed from its tail" in (behind.reason or "")
        error = behind.error()
        assert isinstance(error, JournalIntegrityError) and error.exit_code == 4
        # sealing checks them too, and keeps nothing when they fail
        report = journal.check_integrity()
        assert not journal.seal(report, [Head(7, "e" * 64)]).ok

    def test_refused_writes_raise_and_write_nothing(self, journal: Journal) -> None:
        journal.append("s", [ev(), ev()])
        journal.put_snapshot("s", 2, {"x": 1})
        head = journal.tail()
        refusal = JournalIntegrityError(seq=2, reason="damaged")
        journal.refuse_writes(refusal)
        for write in (
            lambda: journal.append("s", [ev()]),
            lambda: journal.append_many([("s", [ev()])]),
            lambda: journal.acquire_lease("s", "me", 30),
        ):
            with pytest.raises(JournalIntegrityError) as info:
                write()
            assert info.value is refusal
        journal.put_snapshot("s", 1, {"x": 0})  # a cache: quietly not kept
        assert journal.get_snapshot("s") == (2, {"x": 1})
        assert journal.tail() == head and journal.get_lease("s") is None
        journal.refuse_writes(None)
        journal.append("s", [ev()])
        assert journal.tail().seq == 3

    def test_a_chain_key_seals_heads_and_snapshots_but_never_changes_a_hash(
        self, journal: Journal
    ) -> None:
        (plain,) = journal.append("s", [ev(i=1)])
        journal.seal(journal.check_integrity())  # verified without a key
        journal.chain_key = b"k" * 32
        (keyed,) = journal.append("s", [ev(i=2)])
        for e in (plain, keyed):
            assert e.hash == event_hash(e.to_dict())
        unsealed = journal.check_integrity()
        assert not unsealed.ok and unsealed.unsealed
        assert "verify --seal" in (unsealed.reason or "")
        assert journal.seal(unsealed).ok  # what `verify --seal` does
        assert journal.check_integrity().ok
        journal.put_snapshot("s", 2, {"x": 2})
        assert journal.get_snapshot("s") == (2, {"x": 2})
        journal.chain_key = b"another key, not this journal's"
        wrong = journal.check_integrity()
        assert not wrong.ok and "does not match the chain key" in (wrong.reason or "")
        journal.chain_key = None  # the seals cannot be checked, nor dropped
        assert journal.check_integrity().ok
        assert journal.get_snapshot("s") is None  # an HMAC seal needs the key
        refused = journal.seal(journal.check_integrity())
        assert not refused.ok and "sealed with a chain key" in (refused.reason or "")

    # -- leases ---------------------------------------------------------------------------

    def test_lease_lifecycle_and_fencing_tokens(self, journal: Journal) -> None:
        lease, broken = journal.acquire_lease("host/a", "alice", ttl=30)
        assert broken is None and lease.owner == "alice" and lease.token >= 1
        assert journal.get_lease("host/a") == lease
        with pytest.raises(LeaseHeld) as info:
            journal.acquire_lease("host/a", "bob", ttl=30)
        assert "host/a" in str(info.value) and "alice" in str(info.value)
        again, _ = journal.acquire_lease("host/a", "alice", ttl=60)
        assert again.token == lease.token and again.expires_at >= lease.expires_at
        renewed = journal.renew_lease(again, ttl=90)
        assert renewed.token == lease.token
        journal.release_lease(renewed)
        assert journal.get_lease("host/a") is None
        journal.release_lease(renewed)  # releasing twice is fine
        bob, broken = journal.acquire_lease("host/a", "bob", ttl=30)
        assert broken is None and bob.token > lease.token

    def test_expired_lease_is_broken_and_reported(self, journal: Journal) -> None:
        alice, _ = journal.acquire_lease("host/a", "alice", ttl=0.01)
        time.sleep(0.03)
        bob, broken = journal.acquire_lease("host/a", "bob", ttl=30)
        assert broken == alice
        assert bob.token > alice.token
        with pytest.raises(LeaseHeld):
            journal.renew_lease(alice, ttl=30)  # alice was fenced off
        journal.release_lease(alice)  # a stale release does not drop bob's lease
        assert journal.get_lease("host/a") == bob

    def test_append_releasing_lease_appends_then_frees_it(self, journal: Journal) -> None:
        lease, _ = journal.acquire_lease("host/a", "alice", ttl=30)
        (e,) = journal.append_releasing_lease("host/a", [NewEvent("lock.released")], lease)
        assert e.stream == "host/a" and e.version == 1
        assert journal.get_lease("host/a") is None
        bob, broken = journal.acquire_lease("host/a", "bob", ttl=30)
        assert broken is None and bob.token > lease.token

    # -- fencing --------------------------------------------------------------------------

    def test_an_append_under_a_current_lease_is_written(self, journal: Journal) -> None:
        lease, _ = journal.acquire_lease("host/a", "alice", ttl=30)
        (e,) = journal.append("host/a", [ev(n=1)], fence=fence_of(lease))
        assert (e.stream, e.version) == ("host/a", 1)
        renewed = journal.renew_lease(lease, ttl=60)  # renewing keeps the token current
        journal.append("host/a", [ev(n=2)], fence=fence_of(renewed))
        assert journal.stream_version("host/a") == 2

    def test_an_append_under_a_broken_lease_is_refused_and_writes_nothing(
        self, journal: Journal
    ) -> None:
        old, _ = journal.acquire_lease("host/a", "alice", ttl=0.05)
        time.sleep(0.1)
        new, broken = journal.acquire_lease("host/a", "bob", ttl=30)
        assert broken is not None and new.token > old.token
        with pytest.raises(Fenced) as info:
            journal.append("host/a", [ev(stale=True)], fence=fence_of(old))
        assert info.value.exit_code == 1 and "bob" in str(info.value)
        assert (info.value.resource, info.value.token) == ("host/a", old.token)
        assert journal.head() == 0
        # the new holder is not disturbed, and a fence on another resource is its own
        journal.append("host/a", [ev(fresh=True)], fence=fence_of(new))
        assert [e.payload for e in journal.read_stream("host/a")] == [{"fresh": True}]

    def test_an_append_under_a_released_or_never_taken_lease_is_refused(
        self, journal: Journal
    ) -> None:
        lease, _ = journal.acquire_lease("host/a", "alice", ttl=30)
        journal.release_lease(lease)
        with pytest.raises(Fenced, match="released"):
            journal.append("host/a", [ev()], fence=fence_of(lease))
        with pytest.raises(Fenced):
            journal.append("host/b", [ev()], fence=Fence("host/b", "alice", 1))
        assert journal.head() == 0

    def test_an_expired_lease_nobody_took_still_fences_its_owner_in(self, journal: Journal) -> None:
        """The journal refuses superseded tokens; a stale holder whose token is still the
        last one is stopped by its own check on the age of its last renewal."""
        lease, _ = journal.acquire_lease("host/a", "alice", ttl=0.05)
        time.sleep(0.1)
        journal.append("host/a", [ev()], fence=fence_of(lease))
        assert journal.head() == 1

    def test_fenced_appends_in_one_batch_are_judged_one_by_one(self, journal: Journal) -> None:
        leases = {}
        for host in ("a", "b", "c"):
            leases[host], _ = journal.acquire_lease(f"host/{host}", f"owner-{host}", ttl=30)
        journal.release_lease(leases["b"])
        outcomes: dict[str, object] = {}

        def append(host: str) -> None:
            try:
                journal.append(f"host/{host}", [ev(host=host)], fence=fence_of(leases[host]))
                outcomes[host] = "written"
            except Fenced as e:
                outcomes[host] = e

        threads = [threading.Thread(target=append, args=(h,)) for h in ("a", "b", "c") * 5]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert outcomes["a"] == outcomes["c"] == "written"
        assert isinstance(outcomes["b"], Fenced)
        assert journal.stream_version("host/a") == journal.stream_version("host/c") == 5
        assert journal.stream_version("host/b") == 0

    def test_append_releasing_a_broken_lease_is_refused(self, journal: Journal) -> None:
        old, _ = journal.acquire_lease("host/a", "alice", ttl=0.05)
        time.sleep(0.1)
        new, _ = journal.acquire_lease("host/a", "bob", ttl=30)
        with pytest.raises(Fenced):
            journal.append_releasing_lease("host/a", [ev(done=True)], old)
        assert journal.head() == 0
        assert journal.get_lease("host/a") == new

    # -- group commit ---------------------------------------------------------------------

    def test_group_commit_batches_and_isolates_conflicts(self, journal: Journal) -> None:
        threads_n, per_thread = 8, 150
        errors: list[BaseException] = []
        conflicts: list[ConcurrencyConflict] = []
        lock = threading.Lock()
        barrier = threading.Barrier(threads_n)

        def work(k: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                try:
                    if i % 10 == 9:  # a stale version: must fail alone
                        journal.append(f"t{k}", [ev(i=i)], expected_version=0)
                    else:
                        got = journal.append(f"t{k}", [ev(i=i)])
                        assert got[0].stream == f"t{k}" and got[0].payload == {"i": i}
                except ConcurrencyConflict as e:
                    with lock:
                        conflicts.append(e)
                except BaseException as e:
                    with lock:
                        errors.append(e)

        threads = [threading.Thread(target=work, args=(k,)) for k in range(threads_n)]
        before = journal.stats.commits
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert len(conflicts) == threads_n * per_thread // 10
        appended = threads_n * per_thread * 9 // 10
        assert journal.head() == appended
        commits = journal.stats.commits - before
        assert commits < threads_n * per_thread, "no batching happened"
        for k in range(threads_n):
            assert [e.version for e in journal.read_stream(f"t{k}")] == list(
                range(1, per_thread * 9 // 10 + 1)
            )
        assert journal.verify().ok

    def test_append_many_writes_each_append_in_order_in_one_transaction(
        self, journal: Journal
    ) -> None:
        journal.append("host/a", [ev(n=0)])
        commits = journal.stats.commits
        original = journal.append("host/c", [accepted("cmd-9")])
        got = journal.append_many(
            [
                ("host/a", [accepted("cmd-1"), ev(n=1)]),
                ("host/b", [accepted("cmd-2")]),
                ("host/b", []),
                ("host/c", [accepted("cmd-9")]),  # already recorded: the first one's events
            ]
        )
        assert [[(e.stream, e.version, e.seq) for e in g] for g in got] == [
            [("host/a", 2, 3), ("host/a", 3, 4)],
            [("host/b", 1, 5)],
            [],
            [(original[0].stream, original[0].version, original[0].seq)],
        ]
        assert journal.stats.commits == commits + 2  # host/c's first append, then one for all
        assert journal.verify().ok
        assert journal.append_many([]) == []

    def test_append_many_checks_expected_versions_one_by_one(self, journal: Journal) -> None:
        journal.append("host/a", [ev(n=0)])
        with pytest.raises(ConcurrencyConflict) as caught:
            journal.append_many(
                [("host/a", [ev(n=1)]), ("host/b", [ev(n=2)]), ("host/c", [ev(n=3)])],
                expected_versions=[0, 0, None],
            )
        assert caught.value.fields["stream"] == "host/a"
        # the others were decided on their own: written
        assert [e.version for e in journal.read_stream("host/a")] == [1]
        assert [e.payload["n"] for e in journal.read_stream("host/b")] == [2]
        assert [e.payload["n"] for e in journal.read_stream("host/c")] == [3]
        got = journal.append_many(
            [("host/a", [ev(n=4)]), ("host/d", [ev(n=5)])], expected_versions=[1, 0]
        )
        assert [[e.version for e in g] for g in got] == [[2], [1]]
        with pytest.raises(JournalError, match="one expected version per append"):
            journal.append_many([("host/e", [ev()])], expected_versions=[0, 0])
        assert journal.stream_version("host/e") == 0
        assert journal.verify().ok

    def test_read_all_rows_may_project_payloads_to_some_keys(self, journal: Journal) -> None:
        big: dict[str, Any] = {
            "from": "a",
            "to": "b",
            "plan": [{"step": i} for i in range(50)],
            "n": 1.5,
        }
        journal.append("host/a", [ev("transition.started", **big), ev(x={"y": [1, None]})])
        columns = ("seq", "type", "payload")
        rows = list(
            journal.read_all_rows(
                columns=columns, project={"transition.started": ("from", "to", "missing")}
            )
        )
        started, step = (json.loads(r[2]) for r in rows)
        # a backend may project (SQLite) or return the whole payload (the default)
        assert {k: started.get(k) for k in ("from", "to", "missing")} == {
            "from": "a",
            "to": "b",
            "missing": None,
        }
        assert set(started) <= {"from", "to", "missing"} or started == big
        assert step == {"x": {"y": [1, None]}}
        with pytest.raises(JournalError):
            list(journal.read_all_rows(columns=columns, project={"t'": ("a",)}))

    def test_append_many_on_a_closed_journal_fails(self, journal_factory: JournalFactory) -> None:
        j = journal_factory()
        j.close()
        with pytest.raises(JournalError, match="closed"):
            j.append_many([("host/a", [ev()])])
