"""End-to-end tests of the journal commands: add, status, history, replay, verify, export,
import — and of what the CLI does with damaged journal files.

Most run ``fleetlog.engine.cli.main(argv)`` in-process; exit codes, "one line" and "no traceback"
are also checked on the real console script in a subprocess for the damaged files.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import sqlite3
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.cli import main
from fleetlog.journal import NewEvent
from fleetlog.journal.sqlite import SQLiteJournal
from tests.engine.cli.clirun import run

# -- helpers ---------------------------------------------------------------------------


class Cli:
    """``fleetlog --journal PATH ...`` in this process."""

    def __init__(self, capsys: pytest.CaptureFixture[str], journal: Path) -> None:
        self.capsys = capsys
        self.journal = journal

    def __call__(self, *args: str, journal: Path | None = None) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--journal", str(journal or self.journal), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def json(self, *args: str) -> Any:
        code, out, err = self(*args, "--json")
        assert code == 0, err
        return json.loads(out)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("FLEETLOG_JOURNAL", "FLEETLOG_MACHINES", "FLEETLOG_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return Cli(capsys, tmp_path / "j.db")


def events_of(path: Path) -> list[dict[str, Any]]:
    j = SQLiteJournal(path)
    try:
        return [e.to_dict() for e in j.read_all()]
    finally:
        j.close()


def append(path: Path, stream: str, events: list[NewEvent]) -> None:
    j = SQLiteJournal(path)
    try:
        j.append(stream, events)
    finally:
        j.close()


def started(trigger: str, src: str, dest: str) -> NewEvent:
    return NewEvent("transition.started", {"trigger": trigger, "from": src, "to": dest})


def completed(trigger: str, src: str, dest: str) -> NewEvent:
    return NewEvent("transition.completed", {"trigger": trigger, "from": src, "to": dest})


def step(kind: str, name: str) -> NewEvent:
    return NewEvent(f"step.{kind}", {"step": name, "attempt": 1})


def populate(cli: Cli) -> None:
    """kvm_host/n1 (ready), vm/g1 (in progress: create at step create), kvm_host/n2."""
    assert cli("add", "kvm_host/n1", "--param", "host=n1")[0] == 0
    assert cli("add", "vm/g1", "-p", "host=n1", "-p", "storage=asm")[0] == 0
    append(
        cli.journal,
        "kvm_host/n1",
        [
            started("validate", "discovered", "ready"),
            step("started", "dbserver"),
            step("succeeded", "dbserver"),
            completed("validate", "discovered", "ready"),
        ],
    )
    append(
        cli.journal,
        "vm/g1",
        [
            started("create", "defined", "BUILD"),
            NewEvent("step.skipped", {"step": "exascale", "reason": "when"}),
            step("started", "create"),
        ],
    )
    assert cli("add", "kvm_host/n2", "--param", "host=n2", "--param", "egs=yes")[0] == 0


# -- add / status ------------------------------------------------------------------------


def test_add_then_status_json_shape(cli: Cli) -> None:
    populate(cli)
    rows = cli.json("status")
    assert [r["id"] for r in rows] == ["kvm_host/n1", "kvm_host/n2", "vm/g1"]
    for r in rows:
        assert {"id", "kind", "state", "version", "in_progress"} <= set(r)
        assert r["kind"] == r["id"].split("/")[0]
        assert isinstance(r["version"], int)
        ip = r["in_progress"]
        assert ip is None or {"trigger", "target", "step"} <= set(ip)
    by_id = {r["id"]: r for r in rows}
    assert by_id["kvm_host/n1"]["state"] == "ready"
    assert by_id["kvm_host/n1"]["version"] == 5
    assert by_id["kvm_host/n1"]["in_progress"] is None
    assert by_id["kvm_host/n2"]["params"]["egs"] is True
    assert by_id["kvm_host/n2"]["state"] == "discovered"
    g1 = by_id["vm/g1"]
    assert g1["state"] == "defined"
    assert g1["version"] == 4
    assert g1["params"] == {"host": "kvm_host/n1", "storage": "asm", "image": "gold_image"}
    assert g1["in_progress"]["trigger"] == "create"
    assert g1["in_progress"]["target"] == "BUILD"
    assert g1["in_progress"]["step"] == "create"
    # a pattern selects
    assert [r["id"] for r in cli.json("status", "vm")] == ["vm/g1"]
    assert [r["id"] for r in cli.json("status", "kvm_host/n[1-2]")] == [
        "kvm_host/n1",
        "kvm_host/n2",
    ]
    # and the table names the in-progress transition
    code, out, _ = cli("status")
    assert code == 0
    assert "defined → BUILD" in out


def test_add_json_and_text(cli: Cli) -> None:
    code, out, _ = cli("add", "kvm_host/n1", "-p", "host=n1", "--json")
    assert code == 0
    rec = json.loads(out)
    assert rec["id"] == "kvm_host/n1" and rec["state"] == "discovered" and rec["version"] == 1
    code, out, _ = cli("add", "kvm_host/n2", "-p", "host=n2")
    assert code == 0
    assert out.strip() == "kvm_host/n2 created in state discovered (version 1)"


def test_journal_from_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("FLEETLOG_JOURNAL", str(db))
    assert main(["add", "kvm_host/n1", "-p", "host=n1"]) == 0
    capsys.readouterr()
    assert main(["status", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["kvm_host/n1"]
    assert [e["stream"] for e in events_of(db)] == ["kvm_host/n1"]
    assert not (tmp_path / "fleetlog.db").exists()
    # --journal wins over the environment
    other = tmp_path / "other.db"
    assert main(["--journal", str(other), "add", "kvm_host/n2", "-p", "host=n2"]) == 0
    capsys.readouterr()
    assert main(["--journal", str(other), "status", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == ["kvm_host/n2"]


def test_reading_commands_do_not_create_a_journal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "typo.db"
    for cmd in (["status"], ["history", "vm/x"], ["replay"], ["verify"], ["export"]):
        assert main(["--journal", str(missing), *cmd]) == 2
        assert "no journal at" in capsys.readouterr().err
    assert not missing.exists()


def test_default_journal_and_env_in_a_subprocess(tmp_path: Path) -> None:
    r = run("add", "kvm_host/n1", "-p", "host=n1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "fleetlog.db").exists()
    r = run("status", "--json", cwd=tmp_path, env={"FLEETLOG_JOURNAL": str(tmp_path / "e.db")})
    assert r.returncode == 2
    assert "no journal at" in r.stderr and "Traceback" not in r.stderr


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_journal_file_is_created_0600(tmp_path: Path, cli: Cli) -> None:
    old = os.umask(0o022)
    try:
        assert cli("add", "kvm_host/n1", "-p", "host=n1")[0] == 0
    finally:
        os.umask(old)
    assert _mode(cli.journal) == 0o600
    for suffix in ("-wal", "-shm"):
        side = Path(str(cli.journal) + suffix)
        if side.exists():
            assert _mode(side) == 0o600


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (["host=n9", "egs=maybe"], "parameter 'egs': expected true or false, got 'maybe'"),
        (["hots=n9"], "parameter 'hots': no such parameter; did you mean 'host'?"),
        ([], "parameter 'host': is required and has no default"),
        (["host"], "bad --param 'host': expected NAME=VALUE"),
    ],
    ids=["wrong-type", "unknown-name", "missing-required", "malformed"],
)
def test_add_with_a_bad_param_exits_2_and_journals_nothing(
    cli: Cli, params: list[str], message: str
) -> None:
    assert cli("add", "kvm_host/n1", "-p", "host=n1")[0] == 0
    before = events_of(cli.journal)
    args = [a for p in params for a in ("--param", p)]
    code, out, err = cli("add", "kvm_host/n9", *args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("fleetlog: error: kvm_host/n9: ") and message in err
    assert events_of(cli.journal) == before


def test_add_enum_and_ref_params_are_checked(cli: Cli) -> None:
    code, _, err = cli("add", "vm/g1", "-p", "host=n1", "-p", "storage=exascal")
    assert code == 2
    assert "'exascal' is not one of exascale, asm; did you mean 'exascale'?" in err
    code, _, err = cli("add", "vm/g1", "-p", "host=vm/x")
    assert code == 2
    assert "expected a kvm_host resource" in err
    assert events_of(cli.journal) == []


def test_add_existing_resource_exits_2(cli: Cli) -> None:
    assert cli("add", "kvm_host/n1", "-p", "host=n1")[0] == 0
    before = events_of(cli.journal)
    code, _, err = cli("add", "kvm_host/n1", "-p", "host=other")
    assert code == 2
    assert err.strip() == "fleetlog: error: kvm_host/n1 already exists (version 1)"
    assert events_of(cli.journal) == before


@pytest.mark.parametrize(
    ("rid", "message"),
    [("kvm_host", "bad resource id 'kvm_host'"), ("kvm_hots/n1", "did you mean 'kvm_host'?")],
)
def test_add_bad_resource_id_or_kind(cli: Cli, rid: str, message: str) -> None:
    code, _, err = cli("add", rid, "-p", "host=n1")
    assert code == 2
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "args",
    [["status", "--bogus"], ["add"], ["nosuchcommand"], ["replay", "--at"], []],
    ids=["unknown-option", "missing-argument", "unknown-command", "missing-value", "no-args"],
)
def test_usage_errors_exit_2_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code = main(args)
    _out, err = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in err
    assert "Usage: fleetlog" in err or "Error: " in err
    assert not (tmp_path / "fleetlog.db").exists()


def test_usage_error_in_a_subprocess(tmp_path: Path) -> None:
    r = run("add", "--param", "host=n1", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert "Missing argument" in r.stderr


# -- history / replay ----------------------------------------------------------------------


def test_history_json_and_table(cli: Cli) -> None:
    populate(cli)
    events = cli.json("history", "kvm_host/n1")
    assert [e["type"] for e in events] == [
        "resource.created",
        "transition.started",
        "step.started",
        "step.succeeded",
        "transition.completed",
    ]
    assert [e["version"] for e in events] == [1, 2, 3, 4, 5]
    assert all(e["stream"] == "kvm_host/n1" for e in events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs)
    assert {"event_id", "recorded_at", "actor", "host", "payload", "prev_hash", "hash"} <= set(
        events[0]
    )
    assert events[0]["payload"]["params"]["host"] == "n1"
    code, out, _ = cli("history", "kvm_host/n1")
    assert code == 0
    assert "resource.created" in out and "in discovered" in out
    # people read milliseconds in UTC; the exact ISO value is --json's
    assert re.search(r"\s\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}\s", out)
    assert not re.search(r"T\d{2}:\d{2}:\d{2}", out)
    code, _, err = cli("history", "kvm_host/nope")
    assert code == 2 and "no resource 'kvm_host/nope'" in err
    code, _, err = cli("history", "nonsense")
    assert code == 2 and "bad resource id" in err


def test_replay_at_seq(cli: Cli) -> None:
    populate(cli)
    everything = events_of(cli.journal)
    full = cli.json("replay")
    assert full["seq"] == len(everything)
    assert {r["id"]: r["state"] for r in full["resources"]} == {
        "kvm_host/n1": "ready",
        "kvm_host/n2": "discovered",
        "vm/g1": "defined",
    }
    assert cli.json("replay", "--at", "0") == {"seq": 0, "resources": []}
    at1 = cli.json("replay", "--at", "1")
    assert at1["seq"] == 1
    assert [(r["id"], r["state"], r["version"]) for r in at1["resources"]] == [
        ("kvm_host/n1", "discovered", 1)
    ]
    # just after n1's transition.started: in progress, not yet ready
    seq_started = next(e["seq"] for e in everything if e["type"] == "transition.started")
    mid = {r["id"]: r for r in cli.json("replay", "--at", str(seq_started))["resources"]}
    assert mid["kvm_host/n1"]["state"] == "discovered"
    assert mid["kvm_host/n1"]["in_progress"]["target"] == "ready"
    # beyond the head is the head
    assert cli.json("replay", "--at", "999")["seq"] == len(everything)
    # a pattern
    assert [r["id"] for r in cli.json("replay", "vm", "--at", "2")["resources"]] == ["vm/g1"]
    # status --at agrees with replay --at
    assert cli.json("status", "--at", "1") == at1["resources"]


def test_replay_at_iso_time(cli: Cli) -> None:
    populate(cli)
    everything = events_of(cli.journal)
    second = everything[1]
    assert second["stream"] == "vm/g1"
    at = cli.json("replay", "--at", second["recorded_at"])
    assert at["seq"] == second["seq"]
    assert {r["id"] for r in at["resources"]} == {"kvm_host/n1", "vm/g1"}
    # an offset other than Z, and no zone at all (UTC)
    naive = second["recorded_at"].removesuffix("Z")
    assert cli.json("replay", "--at", naive)["seq"] == second["seq"]
    assert cli.json("replay", "--at", naive + "+00:00")["seq"] == second["seq"]
    assert cli.json("replay", "--at", "2000-01-01T00:00:00Z") == {"seq": 0, "resources": []}
    assert cli.json("replay", "--at", "2999-01-01")["seq"] == len(everything)
    code, out, err = cli("replay", "--at", "yesterday")
    assert code == 2 and out == ""
    assert "--at 'yesterday': expected a seq number or an ISO time" in err


# -- verify / export / import ---------------------------------------------------------------


def test_verify_ok(cli: Cli) -> None:
    populate(cli)
    n = len(events_of(cli.journal))
    head = events_of(cli.journal)[-1]
    code, out, _ = cli("verify")
    assert code == 0
    assert out.splitlines() == [
        f"ok: {n} events, hash chain intact",
        f"head: seq {n} hash {head['hash']}",
    ]
    assert cli.json("verify") == {
        "ok": True,
        "events": n,
        "head": {"seq": n, "hash": head["hash"]},
        "first_bad_seq": None,
        "reason": None,
        "fencing": [],
        "witness": None,
        "sealed": False,
    }


def test_verify_finds_an_event_made_under_a_superseded_token(cli: Cli) -> None:
    """Appended here without a fence, as an older fleetlog could have: a paused holder's
    step.started under token 1 after another owner broke the lease and took token 2."""
    populate(cli)
    append(
        cli.journal,
        "vm/g1",
        [
            NewEvent("lock.acquired", {"owner": "a", "token": 1, "ttl": 3}),
            NewEvent("step.started", {"step": "create", "attempt": 1, "token": 1}),
            NewEvent(
                "lock.broken",
                {
                    "previous_owner": "a",
                    "previous_token": 1,
                    "reason": "lease expired",
                    "owner": "b",
                    "token": 2,
                },
            ),
            NewEvent("step.started", {"step": "create", "attempt": 2, "token": 2}),
            NewEvent("step.started", {"step": "tag", "attempt": 1, "token": 1}),
        ],
    )
    stale = len(events_of(cli.journal))
    code, out, err = cli("verify")
    assert code == 4 and out == ""
    assert f"fencing violation at seq {stale}: vm/g1 step.started was made under token 1 " in err
    report = json.loads(cli("verify", "--json")[1])
    assert report["ok"] is False and len(report["fencing"]) == 1


def test_export_import_roundtrip(cli: Cli, tmp_path: Path) -> None:
    populate(cli)
    code, _, err = cli("export", "-o", str(tmp_path / "out.jsonl"))
    assert code == 0
    n = len(events_of(cli.journal))
    assert err.strip() == f"exported {n} events"
    lines = (tmp_path / "out.jsonl").read_text().splitlines()
    assert len(lines) == n
    # export to stdout is the same text
    code, out, _ = cli("export")
    assert code == 0 and out.splitlines() == lines

    new = tmp_path / "new.db"
    code, out, err = cli("import", str(tmp_path / "out.jsonl"), journal=new)
    assert code == 0, err
    assert out.strip() == f"imported {n} events"
    code, out, _ = cli("verify", journal=new)
    assert code == 0 and f"ok: {n} events" in out
    assert events_of(new) == events_of(cli.journal)
    assert _mode(new) == 0o600
    # and the state replayed from the copy is the same
    assert cli("status", "--json", journal=new)[1] == cli("status", "--json")[1]
    # importing again into the now non-empty journal is refused and changes nothing
    code, out, err = cli("import", str(tmp_path / "out.jsonl"), journal=new)
    assert code != 0 and err.count("\n") == 1 and "not empty" in err
    assert events_of(new) == events_of(cli.journal)


def test_import_from_stdin(cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    populate(cli)
    cli("export", "-o", str(tmp_path / "out.jsonl"))
    monkeypatch.setattr(sys, "stdin", io.StringIO((tmp_path / "out.jsonl").read_text()))
    code, _, err = cli("import", "-", journal=tmp_path / "new.db")
    assert code == 0, err
    assert events_of(tmp_path / "new.db") == events_of(cli.journal)


def _edit_line(path: Path, lineno: int, old: str, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    assert old in lines[lineno - 1]
    lines[lineno - 1] = lines[lineno - 1].replace(old, new, 1)
    path.write_text("".join(lines))


@pytest.mark.parametrize(
    "damage",
    ["edited-payload", "dropped-line", "garbage-line"],
)
def test_import_of_a_broken_file_imports_nothing(cli: Cli, tmp_path: Path, damage: str) -> None:
    populate(cli)
    export = tmp_path / "out.jsonl"
    cli("export", "-o", str(export))
    if damage == "edited-payload":
        _edit_line(export, 2, '"storage":"asm"', '"storage":"exascale"')
    elif damage == "dropped-line":
        lines = export.read_text().splitlines(keepends=True)
        export.write_text("".join(lines[:2] + lines[3:]))
    else:
        _edit_line(export, 3, "{", "{{")
    new = tmp_path / "new.db"
    code, out, err = cli("import", str(export), journal=new)
    assert code == 4
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("fleetlog: error: ")
    assert "import refused" in err or "line 3" in err
    assert not new.exists() or events_of(new) == []


def test_import_of_a_missing_file(cli: Cli, tmp_path: Path) -> None:
    code, _, err = cli("import", str(tmp_path / "nope.jsonl"))
    assert code == 2 and "nope.jsonl" in err and err.count("\n") == 1


# -- damaged journal files ---------------------------------------------------------------


@pytest.fixture
def good_journal(cli: Cli) -> Path:
    populate(cli)
    assert len(events_of(cli.journal)) == 10
    return cli.journal


@contextlib.contextmanager
def _raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection, committed and closed (checkpointing any WAL)."""
    conn = sqlite3.connect(path)
    try:
        yield conn
        conn.commit()
    finally:
        conn.close()
    assert not Path(str(path) + "-wal").exists()


def _drop_triggers_and(path: Path, sql: str, params: tuple[Any, ...] = ()) -> None:
    with _raw(path) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute(sql, params)


def damage_edited_row(path: Path) -> int:
    _drop_triggers_and(
        path,
        "UPDATE events SET payload = replace(payload, '\"ready\"', '\"failed\"') WHERE seq = ?",
        (3,),
    )
    return 3


def damage_deleted_row(path: Path) -> int:
    _drop_triggers_and(path, "DELETE FROM events WHERE seq = ?", (5,))
    return 5


def damage_reordered_version(path: Path) -> int:
    _drop_triggers_and(path, "UPDATE events SET version = 9 WHERE seq = ?", (4,))
    return 4


@pytest.mark.parametrize(
    "damage",
    [damage_edited_row, damage_deleted_row, damage_reordered_version],
    ids=["edited-row", "deleted-row", "edited-version"],
)
def test_verify_names_the_first_bad_seq_and_changes_nothing(
    good_journal: Path, tmp_path: Path, damage: Any, cli: Cli
) -> None:
    bad_seq = damage(good_journal)
    before = good_journal.read_bytes()
    r = run("verify", cwd=tmp_path, env={"FLEETLOG_JOURNAL": str(good_journal)})
    assert r.returncode == 4
    assert r.stdout == ""
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"fleetlog: error: journal integrity failure at seq {bad_seq}:")
    code, out, _ = cli("verify", "--json")
    assert code == 4
    report = json.loads(out)
    assert report["ok"] is False and report["first_bad_seq"] == bad_seq and report["reason"]
    assert good_journal.read_bytes() == before


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 + 100])


def _not_a_journal(path: Path) -> None:
    path.unlink()
    with _raw(path) as conn:
        conn.execute("CREATE TABLE inventory (host TEXT)")
        conn.execute("INSERT INTO inventory VALUES ('n1')")


def _newer_schema(path: Path) -> None:
    with _raw(path) as conn:
        conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, '2030-01-01')")


def _text_file(path: Path) -> None:
    path.write_text("these are not the events you are looking for\n" * 50)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_truncate, "is not a usable fleetlog journal: the file is truncated"),
        (_not_a_journal, "is not a usable fleetlog journal: it has other tables (inventory)"),
        (_newer_schema, "has journal schema version 99, newer than"),
        (_text_file, "is not a usable fleetlog journal: not a SQLite database"),
    ],
    ids=["truncated", "not-a-journal", "newer-schema", "text-file"],
)
@pytest.mark.parametrize("command", [["verify"], ["status"], ["add", "kvm_host/x", "-p", "host=x"]])
def test_unusable_files_are_refused_in_one_line_untouched(
    good_journal: Path,
    tmp_path: Path,
    damage: Any,
    message: str,
    command: list[str],
    cli: Cli,
) -> None:
    damage(good_journal)
    before = good_journal.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    code, out, err = cli(*command)
    assert code != 0
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("fleetlog: error: ")
    assert message in err
    assert good_journal.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


@pytest.mark.parametrize(
    "damage", [_truncate, _not_a_journal, _newer_schema], ids=["truncated", "foreign", "newer"]
)
def test_unusable_files_no_traceback_in_a_subprocess(
    good_journal: Path, tmp_path: Path, damage: Any
) -> None:
    damage(good_journal)
    before = good_journal.read_bytes()
    r = run("--journal", str(good_journal), "verify", cwd=tmp_path)
    assert r.returncode != 0
    assert "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    assert r.stdout == ""
    assert good_journal.read_bytes() == before


def test_reading_commands_do_not_modify_an_edited_journal(good_journal: Path, cli: Cli) -> None:
    damage_edited_row(good_journal)
    before = good_journal.read_bytes()
    for args in (
        ["status", "--json"],
        ["history", "vm/g1"],
        ["replay", "--at", "3"],
        ["export"],
        ["verify"],
    ):
        cli(*args)
    assert good_journal.read_bytes() == before


def test_an_unexpected_error_is_one_line_unless_debugging(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bug still gives the operator one line and exit 1; FLEETLOG_DEBUG shows it all."""
    from fleetlog.engine.cli import output

    def broken(_data: object) -> None:
        raise RuntimeError("boom")

    db = str(tmp_path / "j.db")
    assert main(["--journal", db, "add", "kvm_host/n1", "-p", "host=n1"]) == 0
    capsys.readouterr()
    monkeypatch.setattr(output, "emit_json_array", broken)
    assert main(["--journal", db, "status", "--json"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: RuntimeError: boom" in err
    monkeypatch.setenv("FLEETLOG_DEBUG", "1")
    with pytest.raises(RuntimeError, match="boom"):
        main(["--journal", db, "status", "--json"])
