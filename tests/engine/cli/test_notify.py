"""``--notify URL``: the CLI posts a signed JSON event for each needs-attention, failed
transition, drift finding and finished fan-out plan it journals, to a real HTTP server
on loopback; a dead or hanging receiver never blocks the command or changes its exit
code; no secret value ever reaches a payload."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import Fault
from fleetlog.machines.sim.scenarios import exascale_rack
from tests.engine.conftest import PROJECT_ROOT, Fleet
from tests.engine.ops.receiver import Blackhole, Post, Receiver, refused_url

BELL = """
machine bell {
    param host: str = "bh"
    param doomed: bool = false
    secret token

    initial state new
    state done
    state broken : error

    transition ring : new -> done {
        step arm  run "fail {token}" when doomed
        step mark run "touch_flag {name}"
        on failure -> broken
    }

    transition give_up : new -> broken {
        step note run "touch_flag {name}-given-up"
    }
}
"""

SITE = """
machine site {
    param host: str
    initial state up
}
"""

BOX = """
machine box {
    param site: ref site
    initial state defined
    state running
    state stopped
    observe {
        list "vm_maker --list" on site format table columns "name,status"
        owned "box-"
        "running" -> running
        "stopped" -> stopped
    }
    transition adopt : defined -> running
}
"""

SIGNING = b"notify-signing-secret-0123456789"
STEP_SECRET = "tok-Secret-Value-4711"


@pytest.fixture
def bells(fleet: Fleet, monkeypatch: pytest.MonkeyPatch) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "bell.fsm").write_text(BELL)
    (d / "site.fsm").write_text(SITE)
    (d / "box.fsm").write_text(BOX)
    fleet.use_machines(d)
    monkeypatch.setenv("FLEETLOG_SECRET_TOKEN", STEP_SECRET)
    monkeypatch.setenv("FLEETLOG_NOTIFY_SECRET", SIGNING.decode())
    return fleet


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


def by_event(posts: list[Post]) -> dict[str, list[Post]]:
    out: dict[str, list[Post]] = {}
    for p in posts:
        out.setdefault(p.json()["event"], []).append(p)
    return out


def ring_three(fleet: Fleet, *notify: str) -> int:
    """b1 fails at `arm`, b2's `mark` is sent but its answer lost (needs attention), b3
    completes: one fan-out plan."""
    assert fleet.cli("add", "bell/b1", "--param", "doomed=true").code == 0
    assert fleet.cli("add", "bell/b2", "--param", "host=bh2").code == 0
    assert fleet.cli("add", "bell/b3").code == 0
    fleet.sim.world.inject(Fault("touch_flag", mode="drop", host="bh2"))
    return fleet.cli(*notify, "fire", "bell/b[1-3]", "ring").code


def test_each_event_of_a_fan_out_is_delivered_signed(bells: Fleet, receiver: Receiver) -> None:
    code = ring_three(bells, "--notify", receiver.url)
    assert code == 3  # needs attention outranks the failure
    posts = receiver.delivered()  # the command waited for its deliveries before exiting
    assert len(posts) == 3 == len(receiver.posts)
    assert all(p.signed_by(SIGNING) for p in posts)
    assert {p.path for p in posts} == {"/hooks/fleet-token-path"}
    events = by_event(posts)
    assert sorted(events) == ["needs_attention", "plan_finished", "transition_failed"]

    failed = events["transition_failed"][0]
    body = failed.json()
    assert failed.headers["x-fleetlog-event"] == "transition_failed"
    assert failed.headers["x-fleetlog-delivery"] == body["delivery"]
    assert body["schema"] == "fleetlog.notification/1"
    assert body["resource"] == "bell/b1"
    assert body["journal_event"]["type"] == "transition.failed"
    assert body["details"]["trigger"] == "ring"
    assert body["details"]["step"] == "arm"
    assert (body["details"]["from"], body["details"]["to"]) == ("new", "broken")
    journaled = [e for e in bells.events("bell/b1") if e.type == "transition.failed"]
    assert [body["delivery"]] == [e.event_id for e in journaled]
    assert body["journal_event"]["seq"] == journaled[0].seq

    attention = events["needs_attention"][0].json()
    assert attention["resource"] == "bell/b2"
    assert attention["details"]["step"] == "mark"
    assert attention["details"]["resolve"] == (
        "fleetlog resolve bell/b2 --step mark --as done --reason 'it took effect'"
    )

    plan = events["plan_finished"][0].json()
    assert plan["details"]["trigger"] == "ring"
    assert plan["details"]["members"] == 3
    assert plan["details"]["counts"]["done"] == 1
    assert plan["resource"] == "plan/" + plan["details"]["plan"]


def test_a_transition_into_an_error_state_is_delivered(bells: Fleet, receiver: Receiver) -> None:
    """Completing is not news, unless the state reached is one the machine declares
    ``: error`` (an HA pair left ``degraded`` by a compensated failover)."""
    assert bells.cli("add", "bell/b1").code == 0
    assert bells.cli("add", "bell/b2").code == 0
    assert bells.cli("--notify", receiver.url, "fire", "bell/b1", "ring").code == 0
    assert receiver.posts == []
    assert bells.cli("--notify", receiver.url, "fire", "bell/b2", "give_up").code == 0
    [post] = receiver.delivered()
    body = post.json()
    assert post.signed_by(SIGNING)
    assert (body["event"], body["resource"]) == ("entered_error_state", "bell/b2")
    assert body["details"] == {"trigger": "give_up", "from": "new", "to": "broken"}
    assert body["journal_event"]["type"] == "transition.completed"


def test_no_secret_value_is_ever_sent(bells: Fleet, receiver: Receiver) -> None:
    assert ring_three(bells, "--notify", receiver.url) == 3
    posts = receiver.wait_for(3)
    for p in posts:
        raw = p.body.decode() + repr(p.headers)
        assert STEP_SECRET not in raw
        assert SIGNING.decode() not in raw
    # The step's secret was on the failed command line: the journal has it redacted.
    failed = next(p for p in posts if p.json()["event"] == "transition_failed")
    assert "tok-" not in failed.body.decode()


def test_drift_found_by_reconcile_is_delivered(bells: Fleet, receiver: Receiver) -> None:
    exascale_rack(bells.sim.world, computes=1, guests={"node1": {"box-0": "asm"}})
    assert bells.cli("add", "site/s1", "--param", "host=node1").code == 0
    assert bells.cli("add", "box/box-0", "--param", "site=site/s1").code == 0
    assert bells.cli("--notify", receiver.url, "fire", "box/box-0", "adopt").code == 0
    assert receiver.posts == []  # a transition that completes is not news
    bells.sim.run("node1", "vm_maker --stop box-0")
    assert bells.cli("--notify", receiver.url, "reconcile", "box").code == 3
    [post] = receiver.delivered()
    body = post.json()
    assert post.signed_by(SIGNING)
    assert (body["event"], body["resource"]) == ("drift_found", "box/box-0")
    assert body["details"]["class"] == "unsynced"
    # A pass that journals nothing (--read-only) notifies nothing.
    assert bells.cli("--notify", receiver.url, "reconcile", "box", "--read-only").code == 3
    assert len(receiver.posts) == 1


def test_a_500_is_retried_and_then_delivered(bells: Fleet) -> None:
    receiver = Receiver(statuses=[500])
    try:
        assert bells.cli("add", "bell/b1", "--param", "doomed=true").code == 0
        res = bells.cli("--notify", receiver.url, "fire", "bell/b1", "ring")
        assert res.code == 1
        assert receiver.answered == [500, 200]
        first, second = receiver.posts
        assert first.signed_by(SIGNING) and second.signed_by(SIGNING)
        assert first.json()["delivery"] == second.json()["delivery"]
        assert "notify" not in res.err  # delivered in the end: nothing to warn about
    finally:
        receiver.close()


def test_a_secret_file_signs_and_an_unsigned_hook_has_no_signature(
    bells: Fleet, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert bells.cli("add", "bell/b1", "--param", "doomed=true").code == 0
    assert bells.cli("add", "bell/b2", "--param", "doomed=true").code == 0
    key = bells.root / "notify.key"
    key.write_bytes(b"file-held-secret-abcdefghij\n")
    key.chmod(0o600)
    monkeypatch.delenv("FLEETLOG_NOTIFY_SECRET")
    res = bells.cli(
        "--notify", receiver.url, "--notify-secret-file", str(key), "fire", "bell/b1", "ring"
    )
    assert res.code == 1
    [signed] = receiver.wait_for(1)
    assert signed.signed_by(b"file-held-secret-abcdefghij")
    assert bells.cli("--notify", receiver.url, "fire", "bell/b2", "ring").code == 1
    unsigned = receiver.wait_for(2)[1]
    assert "x-fleetlog-signature" not in unsigned.headers
    assert unsigned.json()["resource"] == "bell/b2"


@pytest.mark.parametrize("where", ["refused", "hanging"])
def test_a_dead_receiver_never_blocks_or_fails_the_command(bells: Fleet, where: str) -> None:
    hole = Blackhole() if where == "hanging" else None
    url = hole.url if hole is not None else refused_url()
    try:
        assert bells.cli("add", "bell/b1", "--param", "doomed=true").code == 0
        assert bells.cli("add", "bell/b2").code == 0
        # In a child process, as a script runs it: its exit code and stderr exactly.
        res = bells.sub("--notify", url, "fire", "bell/b[1-2]", "ring")
        assert res.code == 1, res.err
        assert "Traceback" not in res.err
        warnings = [line for line in res.err.splitlines() if "notify" in line]
        assert len(warnings) == 1, res.err
        assert warnings[0].startswith("fleetlog: warning: notify: 2 of 2 notification(s) not ")
        assert "/hook" not in warnings[0]  # the URL's path may be its credential
        # The work itself was done and journaled.
        states = {rid: row["state"] for rid, row in bells.status().items()}
        assert states == {"bell/b1": "broken", "bell/b2": "done"}
    finally:
        if hole is not None:
            hole.close()


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--notify", "ftp://example.org/x"], {}, "expected an http:// or https:// URL"),
        (["--notify", "http://:80/"], {}, "expected an http:// or https:// URL"),
        (["--notify", "http://h:99999/"], {}, "port"),
        (["--notify", "http://h/"], {"FLEETLOG_NOTIFY_SECRET": "short"}, "at least 16"),
    ],
)
def test_a_bad_notify_setting_is_a_usage_error(
    bells: Fleet,
    monkeypatch: pytest.MonkeyPatch,
    args: list[str],
    env: dict[str, str],
    message: str,
) -> None:
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    res = bells.cli(*args, "status")
    assert res.code == 2
    assert message in res.err and "Traceback" not in res.err


def test_a_secret_file_others_can_read_is_refused(
    bells: Fleet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("FLEETLOG_NOTIFY_SECRET")
    key = tmp_path / "open.key"
    key.write_text("x" * 32)
    os.chmod(key, 0o644)
    res = bells.cli("--notify", "http://127.0.0.1:9/", "--notify-secret-file", str(key), "status")
    assert res.code == 2 and "chmod 600" in res.err


def documented_verify() -> Any:
    """The ``verify`` function docs/notifications.md gives receivers, as printed."""
    text = (PROJECT_ROOT / "docs" / "notifications.md").read_text()
    [code] = re.findall(r"```python\n(.+?)\n```", text, re.S)
    scope: dict[str, Any] = {}
    exec(compile(code, "docs/notifications.md", "exec"), scope)
    return scope["verify"]


def test_the_documented_verification_accepts_a_delivery_once(
    bells: Fleet, receiver: Receiver
) -> None:
    verify = documented_verify()
    assert bells.cli("add", "bell/b1", "--param", "doomed=true").code == 0
    assert bells.cli("--notify", receiver.url, "fire", "bell/b1", "ring").code == 1
    [post] = receiver.wait_for(1)
    seen: set[str] = set()
    assert not verify(b"another-secret-0123456789", post.headers, post.body, seen)
    assert not verify(SIGNING, post.headers, post.body.replace(b"bell/b1", b"bell/b9"), seen)
    assert verify(SIGNING, post.headers, post.body, seen)
    assert not verify(SIGNING, post.headers, post.body, seen)  # the same delivery again
