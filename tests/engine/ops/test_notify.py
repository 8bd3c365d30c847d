"""The notification sender and the journal watch, against a real HTTP server on
loopback and a real journal: signatures, retries, giving up, never waiting on ``put``,
and reading only what this process's command appended."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlog.engine.model import events as ev
from fleetlog.engine.ops.notify import (
    Notifier,
    Sender,
    Target,
    encode,
    load_target,
    notification,
    sign,
)
from fleetlog.errors import UsageError
from fleetlog.journal import Journal, open_journal
from tests.engine.ops.receiver import HANG_GUARD, Blackhole, Receiver, refused_url

SECRET = b"an-ops-test-secret-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    j = open_journal(str(tmp_path / "j.db"))
    yield j
    j.close()


def payload(n: int = 1) -> dict[str, Any]:
    return {"schema": "fleetlog.notification/1", "event": "needs_attention", "delivery": f"d{n}"}


@given(secret=st.binary(min_size=16, max_size=64), body=st.binary(min_size=1, max_size=200))
def test_the_signature_is_hmac_sha256_of_the_raw_body(secret: bytes, body: bytes) -> None:
    sig = sign(secret, body)
    assert sig == "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    tampered = bytes([body[0] ^ 1]) + body[1:]
    assert sign(secret, tampered) != sig


def test_the_timestamp_is_in_the_signed_body() -> None:
    body = encode(payload(), 1_700_000_000)
    assert b'"sent_at": 1700000000' in body
    assert sign(SECRET, body) != sign(SECRET, encode(payload(), 1_700_000_001))


def test_posts_are_signed_and_in_order(receiver: Receiver) -> None:
    sender = Sender(Target(receiver.url, SECRET), clock=lambda: 1_700_000_000.5)
    for n in range(1, 6):
        sender.put(payload(n))
    assert sender.close(HANG_GUARD) is None
    posts = receiver.wait_for(5)
    assert [p.json()["delivery"] for p in posts] == [f"d{n}" for n in range(1, 6)]
    assert all(p.signed_by(SECRET) for p in posts)
    assert {p.headers["x-fleetlog-timestamp"] for p in posts} == {"1700000000"}


def test_a_5xx_or_429_is_retried_with_the_same_delivery() -> None:
    receiver = Receiver(statuses=[500, 503, 429])
    try:
        sender = Sender(Target(receiver.url, SECRET), backoff=0.01)
        sender.put(payload())
        assert sender.close(HANG_GUARD) is None
        assert receiver.answered == [500, 503, 429, 200]
        assert {p.json()["delivery"] for p in receiver.posts} == {"d1"}
        assert all(p.signed_by(SECRET) for p in receiver.posts)
    finally:
        receiver.close()


def test_a_4xx_is_final_and_reported() -> None:
    receiver = Receiver(statuses=[401])
    try:
        sender = Sender(Target(receiver.url, SECRET), backoff=0.01)
        sender.put(payload())
        missing = sender.close(HANG_GUARD)
        assert missing is not None
        assert (missing.count, missing.total, missing.last_error) == (1, 1, "HTTP 401")
        assert receiver.answered == [401]  # not retried
    finally:
        receiver.close()


def test_a_refused_connection_is_retried_then_given_up() -> None:
    sender = Sender(Target(refused_url(), SECRET), attempts=3, backoff=0.01)
    sender.put(payload(1))
    sender.put(payload(2))
    missing = sender.close(HANG_GUARD)
    assert missing is not None
    assert (missing.count, missing.total) == (2, 2)
    assert missing.last_error is not None and "refused" in missing.last_error.lower()


def test_put_never_waits_on_a_hanging_receiver_and_close_is_bounded() -> None:
    hole = Blackhole()
    try:
        sender = Sender(Target(hole.url, SECRET), timeout=HANG_GUARD, capacity=2)
        for n in range(10):  # the queue holds 2; the rest are dropped, counted
            sender.put(payload(n))
        missing = sender.close(0.2)  # the request in flight is abandoned, not awaited
        assert missing is not None and (missing.count, missing.total) == (10, 10)
    finally:
        hole.close()


def test_the_url_is_shown_without_its_path_or_credentials() -> None:
    target = load_target(
        "https://user:pw@hooks.example.org:8443/services/T0/B0/XYZ?k=1", None, None
    )
    assert target is not None
    assert target.shown == "https://hooks.example.org:8443"
    assert "XYZ" not in repr(target) and "pw" not in repr(target)
    v6 = load_target("http://[::1]:9000/x", None, None)
    assert v6 is not None and v6.shown == "http://[::1]:9000"


def test_secret_sources(tmp_path: Path) -> None:
    key = tmp_path / "k"
    key.write_text("  a-secret-of-enough-length \n")
    key.chmod(0o600)
    target = load_target("http://h/", str(key), None)
    assert target is not None and target.secret == b"a-secret-of-enough-length"
    with pytest.raises(UsageError, match="given twice"):
        load_target("http://h/", str(key), "another-secret-of-length")
    with pytest.raises(UsageError, match=r"(?i)no such file"):
        load_target("http://h/", str(tmp_path / "missing"), None)
    assert load_target(None, str(key), None) is None  # no URL: nothing to sign


def journal_event(j: Journal, stream: str, p: ev.Payload) -> None:
    j.append(stream, [ev.new_event(p)])


def test_the_watch_reads_only_what_was_appended_after_it_started(
    journal: Journal, receiver: Receiver, tmp_path: Path
) -> None:
    journal_event(journal, "bell/old", ev.AttentionRequired(step="s", reason="before"))
    notifier = Notifier(Target(receiver.url, SECRET), interval=HANG_GUARD)
    notifier.watch(journal)
    failed = ev.TransitionFailed(trigger="ring", source="new", target="broken", step="a", error="x")
    journal_event(journal, "bell/b1", failed)
    journal_event(journal, "bell/b1", ev.StepStarted(step="a", attempt=1, token=None))
    assert notifier.finish() == []
    [post] = receiver.wait_for(1)
    body = post.json()
    assert (body["event"], body["resource"]) == ("transition_failed", "bell/b1")
    assert body["details"]["error"] == "x"


def test_a_command_that_wrote_nothing_notifies_nothing(
    journal: Journal, receiver: Receiver, tmp_path: Path
) -> None:
    reader = open_journal(str(tmp_path / "j.db"))
    try:
        notifier = Notifier(Target(receiver.url, SECRET), interval=HANG_GUARD)
        notifier.watch(reader)
        # Another writer (another process, as far as ``reader`` knows) appends meanwhile.
        journal_event(journal, "bell/b1", ev.AttentionRequired(step="s", reason="r"))
        assert notifier.finish() == []
        assert receiver.posts == []
    finally:
        reader.close()


def test_a_dead_receiver_is_one_warning_line(journal: Journal) -> None:
    notifier = Notifier(
        Target(refused_url() + "/private-token", SECRET),
        interval=HANG_GUARD,
        attempts=2,
        backoff=0.01,
    )
    notifier.watch(journal)
    journal_event(journal, "bell/b1", ev.AttentionRequired(step="s", reason="r"))
    [line] = notifier.finish()
    assert line.startswith("1 of 1 notification(s) not delivered to http://127.0.0.1:")
    assert "private-token" not in line and "refused" in line.lower()


def test_long_strings_are_cut(journal: Journal) -> None:
    [recorded] = journal.append(
        "bell/b1",
        [ev.new_event(ev.AttentionRequired(step="s", reason="r" * 10_000))],
    )
    body = notification(recorded, journal)
    assert body is not None and len(body["details"]["reason"]) == 2000


def test_a_long_command_reports_as_it_goes(journal: Journal, receiver: Receiver) -> None:
    """While the command still runs (before ``finish``), the periodic read sends what
    it journaled: a worker or a long fan-out does not keep news until it exits."""
    notifier = Notifier(Target(receiver.url, SECRET), interval=0.05)
    notifier.watch(journal)
    try:
        journal_event(journal, "bell/b1", ev.AttentionRequired(step="s", reason="first"))
        [first] = receiver.wait_for(1)
        assert first.json()["details"]["reason"] == "first"
        journal_event(journal, "bell/b2", ev.AttentionRequired(step="s", reason="second"))
        assert receiver.wait_for(2)[1].json()["resource"] == "bell/b2"
    finally:
        assert notifier.finish() == []
    assert len(receiver.posts) == 2  # each event once: the final read found nothing new
