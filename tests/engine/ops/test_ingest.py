"""Backend event messages: JSON lines and Ganeti's Python-literal job results become
``backend.observed`` events; redelivered and out-of-order messages are dropped and
counted; garbage is refused with its line number and journals nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from fleetlog.engine.model import load_registry, load_resource
from fleetlog.engine.ops.ingest import (
    IngestError,
    frame,
    read_messages,
)
from tests.engine.conftest import FIXTURES, Fleet

SEED = FIXTURES / "ganeti_query_data.txt"


@pytest.fixture
def guests(fleet: Fleet) -> Fleet:
    for host in ("store67", "node1"):
        assert fleet.cli("add", f"kvm_host/{host}", "--param", f"host={host}").code == 0
    for name, host in (("gousiosg-1", "store67"), ("g1", "node1"), ("g2", "node1")):
        assert fleet.cli("add", f"vm/{name}", "--param", f"host={host}").code == 0
    return fleet


def write(fleet: Fleet, name: str, text: str) -> str:
    path = fleet.root / name
    path.write_text(text)
    return str(path)


def msg(mid: str, rid: str, status: str, at: str) -> str:
    return f'{{"id": "{mid}", "resource": "{rid}", "status": "{status}", "event_time": "{at}"}}\n'


def observed(fleet: Fleet, rid: str) -> list[dict[str, object]]:
    return [e.payload for e in fleet.events(rid) if e.type == "backend.observed"]


# ---------------------------------------------------------------------------- the seed
def test_the_seeds_ganeti_query_data_parses() -> None:
    with SEED.open() as fp:
        messages, report = read_messages(fp, load_registry(), source=str(SEED))
    assert report.bad == [] and report.read == 1
    [m] = messages
    assert m.resource == "vm/gousiosg-1"
    assert m.status == "running"  # config_state up x run_state up
    assert m.event_time == "2011-05-26T16:33:38.616642Z"  # end_ts [1306427618, 616642]
    assert m.message_id == "18160/0/gousiosg-1"
    assert m.job is not None and m.job["pnode"] == "store67"


def test_the_seed_is_python_literals_not_json() -> None:
    text = SEED.read_text()
    assert "None" in text and "True" in text and "'gousiosg-1'" in text
    [(line, block)] = list(frame(text.splitlines(keepends=True), "seed"))
    assert line == 4 and block.startswith("{'status': 'success'")


def test_ingesting_the_seed_records_the_observation_once(guests: Fleet) -> None:
    res = guests.cli("ingest", str(SEED), "--json")
    assert res.code == 0, res.err
    assert res.json()["applied"] == 1
    [p] = observed(guests, "vm/gousiosg-1")
    assert p == {
        "status": "running",
        "event_time": "2011-05-26T16:33:38.616642Z",
        "message_id": "18160/0/gousiosg-1",
        "source": "ganeti",
        "job": {
            "id": "18160",
            "op": "OP_INSTANCE_QUERY_DATA",
            "opstatus": "success",
            "config_state": "up",
            "run_state": "up",
            "pnode": "store67",
        },
    }
    rec = load_resource(guests.journal, load_registry(), "vm/gousiosg-1")
    assert rec is not None and rec.observed == "running"
    assert rec.observed_at == "2011-05-26T16:33:38.616642Z"

    again = guests.cli("ingest", str(SEED), "--json")
    assert again.code == 0 and again.json()["duplicates"] == 1 and again.json()["applied"] == 0
    assert len(observed(guests, "vm/gousiosg-1")) == 1


# ---------------------------------------------------------------------------- ordering
def test_redelivered_and_out_of_order_messages_are_dropped_and_counted(guests: Fleet) -> None:
    text = (
        msg("m1", "vm/g1", "running", "2026-01-01T10:00:00Z")
        + msg("m2", "vm/g1", "stopped", "2026-01-01T10:05:00Z")
        + msg("m2", "vm/g1", "stopped", "2026-01-01T10:05:00Z")  # redelivered
        + msg("m3", "vm/g1", "running", "2026-01-01T10:03:00Z")  # older than m2
        + msg("m4", "vm/g1", "running", "2026-01-01T10:05:00Z")  # not newer than m2
        + '{"id": 5, "resource": {"kind": "vm", "name": "g2"}, "status": "running",'
        ' "event_time": "2026-01-01T09:00:00+00:00"}\n'
    )
    res = guests.cli("ingest", write(guests, "m.jsonl", text), "--json")
    assert res.code == 0, res.err
    s = res.json()
    assert (s["read"], s["applied"], s["duplicates"], s["out_of_order"]) == (6, 3, 1, 2)
    assert [p["message_id"] for p in observed(guests, "vm/g1")] == ["m1", "m2"]
    assert guests.status()["vm/g1"]["observed"] == "stopped"
    assert guests.status()["vm/g2"]["observed"] == "running"

    # Redelivery in a later run is recognised from the journal itself.
    res = guests.cli(
        "ingest",
        write(guests, "n.jsonl", msg("m1", "vm/g1", "running", "2026-01-01T11:00:00Z")),
        "--json",
    )
    assert res.json()["duplicates"] == 1 and res.json()["applied"] == 0
    res = guests.cli(
        "ingest",
        write(guests, "o.jsonl", msg("m9", "vm/g1", "running", "2026-01-01T10:04:59Z")),
        "--json",
    )
    assert res.json()["out_of_order"] == 1
    assert guests.cli("verify").code == 0


def test_messages_for_resources_the_journal_does_not_know_are_counted(guests: Fleet) -> None:
    path = write(guests, "u.jsonl", msg("x", "vm/nobody", "running", "2026-01-01T10:00:00Z"))
    res = guests.cli("ingest", path, "--json")
    assert res.code == 0
    assert res.json()["unknown"] == 1 and res.json()["unknown_resources"] == ["vm/nobody"]
    assert guests.events("vm/nobody") == []


def test_json_and_python_literal_messages_mix_with_comments(guests: Fleet) -> None:
    text = (
        "# one JSON message per line, Python-literal blocks may span lines\n"
        + msg("j1", "vm/g1", "running", "2026-01-01T10:00:00Z")
        + "\n{'id': 'p1', 'resource': 'vm/g2',\n 'status': 'USER_down',\n"
        " 'event_time': '2026-01-01T10:00:00Z', 'job': {'dry_run': None, 'ok': True}}\n"
        "  # trailing comment\n"
    )
    res = guests.cli("ingest", write(guests, "mix.txt", text), "--json")
    assert res.code == 0, res.err
    assert res.json()["applied"] == 2
    [p] = observed(guests, "vm/g2")
    assert p["job"] == {"dry_run": None, "ok": True} and p["status"] == "USER_down"


def test_stdin_is_read_with_a_dash(guests: Fleet, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(msg("s1", "vm/g1", "running", "2026-01-01")))
    res = guests.cli("ingest", "-", "--json")
    assert res.code == 0 and res.json()["applied"] == 1


# ---------------------------------------------------------------------------- garbage
GOOD = msg("ok1", "vm/g1", "running", "2026-01-01T10:00:00Z")


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        (GOOD + GOOD.replace("ok1", "ok2") + "this is not a message\n", 3, "expected a message"),
        (GOOD + '{"id": "b", "resource": "vm/g1", "status": "up"}\n', 2, "'event_time'"),
        (
            GOOD + '{"id": "b", "resource": "vm/g1", "status": "up", "event_time": "noon"}\n',
            2,
            "not an ISO time",
        ),
        (
            GOOD + '{"id": "b", "resource": "vmg1", "status": "up", "event_time": "2026"}\n',
            2,
            "KIND/NAME",
        ),
        (
            GOOD
            + '{"id": "b", "resource": "toaster/t", "status": "up", "event_time": "2026-01-01"}\n',
            2,
            "unknown kind",
        ),
        (
            GOOD + "{'id': 'b', 'resource': 'vm/g1', 'status': 'up', 'event_time': x}\n",
            2,
            "neither JSON",
        ),
        (GOOD + '["a", "list"]\n', 2, "expected a message"),
        (GOOD + '{"id": "b"} trailing\n', 2, "text after the end"),
        (GOOD + '{"id": "b", "status": "unterminated}\n', 2, "unterminated string"),
        (GOOD + '{"id": ["b"}\n', 2, "unbalanced"),
        (GOOD + "{'a': 1}\n" * 1, 2, "without 'id'"),
    ],
    ids=[
        "garbage",
        "missing",
        "time",
        "resource",
        "kind",
        "literal",
        "list",
        "trailing",
        "string",
        "brackets",
        "fields",
    ],
)
def test_a_bad_message_is_refused_with_its_line_and_journals_nothing(
    guests: Fleet, text: str, line: int, problem: str
) -> None:
    path = write(guests, "bad.txt", text)
    before = guests.journal.head()
    res = guests.cli("ingest", path)
    assert res.code == 2
    [err] = res.err.strip().splitlines()
    assert err.startswith(f"fleetlog: error: {path}:{line}: ")
    assert problem in err
    assert guests.journal.head() == before  # the good line before it was not journaled


def test_a_truncated_ganeti_message_is_refused_at_its_first_line(guests: Fleet) -> None:
    lines = SEED.read_text().splitlines(keepends=True)
    path = write(guests, "cut.txt", GOOD + "".join(lines[: len(lines) // 2]))
    res = guests.cli("ingest", path)
    assert res.code == 2
    assert f"{path}:5: truncated message" in res.err  # the block starts on line 5
    assert observed(guests, "vm/g1") == []


def test_python_literals_are_never_evaluated(guests: Fleet) -> None:
    marker = guests.root / "pwned"
    text = f"{{'id': __import__('os').system('touch {marker}'), 'resource': 'vm/g1'}}\n"
    res = guests.cli("ingest", write(guests, "evil.txt", text))
    assert res.code == 2 and "neither JSON" in res.err
    assert not marker.exists()


def test_non_utf8_input_is_a_usage_error(guests: Fleet) -> None:
    path = guests.root / "bin.txt"
    path.write_bytes(b'{"id": "\xff"}\n')
    res = guests.cli("ingest", str(path))
    assert res.code == 2 and "not UTF-8" in res.err


def test_skip_bad_journals_the_good_and_reports_the_bad(guests: Fleet) -> None:
    text = GOOD + "garbage\n"
    # Framing garbage stops the reading there: what was framed before it is kept.
    res = guests.cli("ingest", write(guests, "s.txt", text), "--skip-bad", "--json")
    assert res.code == 1
    assert res.json()["applied"] == 1 and res.json()["bad"] == 1
    assert ":2: expected a message" in res.err
    text = (
        msg("k2", "vm/g2", "running", "2026-01-01")
        + '{"id": "x"}\n'
        + msg("k3", "vm/g2", "stopped", "2026-01-02")
    )
    res = guests.cli("ingest", write(guests, "t.txt", text), "--skip-bad", "--json")
    assert res.code == 1 and res.json()["applied"] == 2


def test_framing_reports_the_line_of_garbage_between_messages() -> None:
    with pytest.raises(IngestError, match=r"^in:4: expected a message"):
        list(frame(["{'a': [1,\n", " 2]}\n", "\n", "oops\n"], "in"))


def test_a_missing_file_is_a_usage_error(guests: Fleet, tmp_path: Path) -> None:
    res = guests.cli("ingest", str(tmp_path / "nope.jsonl"))
    assert res.code == 2 and "nope.jsonl" in res.err


def test_fleetlog_messages_carry_job_outcomes_fields_and_progress(guests: Fleet) -> None:
    """A job's outcome moves the state by the kind's rules; fields become attributes
    only through ``compare`` (the ``vm`` kind compares none: nothing set); progress and
    the log line are journaled as they are."""
    lines = [
        '{"id": "j1", "resource": "vm/g1", "operation": "OP_INSTANCE_STARTUP",'
        ' "job_status": "running", "progress": 40, "logmsg": "starting",'
        ' "event_time": "2026-01-01T00:00:00Z"}\n',
        '{"id": "j2", "resource": "vm/g1", "status": "running",'
        ' "event_time": "2026-01-01T00:00:01Z", "fields": {"be/vcpus": 2}}\n',
    ]
    res = guests.cli("ingest", write(guests, "job.txt", "".join(lines)), "--json")
    assert res.code == 0 and res.json()["applied"] == 2
    assert res.json()["attributes"] == 0
    first, second = observed(guests, "vm/g1")
    assert first["job"] == {
        "operation": "OP_INSTANCE_STARTUP",
        "status": "running",
        "progress": 40.0,
        "logmsg": "starting",
    }
    assert second["status"] == "running"
    assert guests.cli("status", "vm/g1", "--json").json()[0]["state"] == "ACTIVE"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ('"operation": "OP_X"', "come together"),
        ('"operation": "OP_X", "job_status": ""', "come together"),
        ('"status": "running", "fields": [1]', "'fields' must be an object"),
        ('"status": "running", "progress": 101', "from 0 to 100"),
        ('"status": "running", "logmsg": 3', "'logmsg' must be a string"),
        ('"job_status": "success"', "come together"),
    ],
)
def test_malformed_job_fields_are_refused(guests: Fleet, extra: str, problem: str) -> None:
    text = f'{{"id": "x", "resource": "vm/g1", "event_time": "2026-01-01", {extra}}}\n'
    res = guests.cli("ingest", write(guests, "bad.txt", text))
    assert res.code == 2 and problem in res.err
