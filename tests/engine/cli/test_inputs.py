"""Bounded, validated input at every entry of the CLI (``fleetlog.limits``,
``engine.cli.inputs``): each problem once reported is reproduced here — a NUL in an
inventory value, node sets that expand without limit, names without a length cap, a seq
too large for SQLite, a byte-order mark in a machine file, raw control bytes echoed in
errors — and each now ends in exit 2 with one line naming where, nothing journaled.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fleetlog import limits
from fleetlog.engine.cli import main
from fleetlog.journal.sqlite import SQLiteJournal

ESC = "\x1b"


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], journal: Path) -> None:
        self.capsys = capsys
        self.journal = journal

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--journal", str(self.journal), *args])
        out, err = self.capsys.readouterr()
        assert "Traceback" not in out + err and "internal error" not in out + err, err
        return code, out, err

    def events(self) -> int:
        j = SQLiteJournal(self.journal)
        try:
            return j.head()
        finally:
            j.close()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "FLEETLOG_JOURNAL",
        "FLEETLOG_MACHINES",
        "FLEETLOG_BACKEND",
        "FLEETLOG_MAX_NODESET",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    c = Cli(capsys, tmp_path / "j.db")
    assert c("add", "kvm_host/n1", "-p", "host=n1")[0] == 0
    return c


def one_error(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("fleetlog: error:")]
    assert len(lines) == 1, err
    assert ESC not in err and "\x00" not in err, err
    return lines[0]


def inventory(tmp_path: Path, text: str) -> str:
    path = tmp_path / "inv.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- NUL and control characters --------------------------------------------------------


def test_a_nul_in_an_inventory_value_is_refused_and_nothing_is_journaled(
    cli: Cli, tmp_path: Path
) -> None:
    # Seen: accepted, and `fire` later died with an internal error leaving the resource
    # needing attention.
    before = cli.events()
    path = inventory(tmp_path, '[kvm_host.n2]\nhost = "a\\u0000b"\n')

    code, _, err = cli("inventory", "load", path)

    assert code == 2
    assert one_error(err) == (
        f"fleetlog: error: {path}: [kvm_host.n2] kvm_host/n2: parameter 'host': "
        "a NUL character ('\\x00') cannot be in a value"
    )
    assert cli.events() == before


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (["add", "kvm_host/n2", "-p", "host=a\x00b"], "--param 'host=a\\x00b'"),
        (["add", "kvm_host/n\x002", "-p", "host=x"], "argument RESOURCE 'kvm_host/n\\x002'"),
        (["add", "kvm_host/n2", "-p", f"host={ESC}[31m"], "--param 'host=\\x1b[31m'"),
        (["fire", "kvm_host/n1", "validate", "-p", "x=\x00"], "--param 'x=\\x00'"),
        (["fire", "kvm_host/n1", "val\x00idate"], "argument TRIGGER 'val\\x00idate'"),
        (["status", "kvm_host/n\x001"], "argument PATTERN 'kvm_host/n\\x001'"),
        (["history", f"kvm_host/{ESC}]0;pwned\x07"], "argument RESOURCE"),
        (
            ["resolve", "kvm_host/n1", "--step", "s", "--as", "done", "--reason", "r\x00"],
            "--reason",
        ),
        (["fire", "kvm_host/n1", "validate", "--command-id", "c\x00"], "--command-id 'c\\x00'"),
        (["import", "a\x00b.jsonl"], "argument FILE 'a\\x00b.jsonl'"),
        (["ingest", "a\x00b"], "argument FILE 'a\\x00b'"),
        (["backend", "set", "local", "--reason", f"{ESC}[2J"], "--reason '\\x1b[2J'"),
        (["audit", "--since", "1\x00"], "--since '1\\x00'"),
        (["reconcile", "--now", "\udcff"], "--now '\\udcff'"),  # argv that was not UTF-8
    ],
)
def test_control_characters_in_any_argument_are_a_usage_error_naming_it(
    cli: Cli, args: list[str], where: str
) -> None:
    before = cli.events()
    code, _, err = cli(*args)
    assert code == 2
    line = one_error(err)
    assert line.startswith(f"fleetlog: error: {where}"), line
    assert "cannot be in a value" in line
    assert cli.events() == before


@pytest.mark.parametrize("value", ["\x00", "\ud800", "a\x00b.fsm"])
def test_a_file_argument_no_file_name_can_hold_is_a_usage_error(cli: Cli, value: str) -> None:
    """click's path type hands a value to ``os.stat`` before any check of ours sees it:
    a NUL or a lone surrogate there is still a usage error naming it, not a bug."""
    code, _, err = cli("machines", "check", value)
    assert code == 2
    line = one_error(err)
    assert line.startswith("fleetlog: error: argument "), line
    assert "cannot be in a value" in line and "internal error" not in line


def test_the_journal_option_and_its_environment_variable_are_checked(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--journal", "j\x00.db", "status"]) == 2
    assert one_error(capsys.readouterr().err).startswith("fleetlog: error: --journal 'j\\x00.db'")
    monkeypatch.setenv("FLEETLOG_JOURNAL", "j\x01.db")
    assert main(["status"]) == 2
    assert "--journal 'j\\x01.db'" in one_error(capsys.readouterr().err)


def test_free_text_may_hold_tabs_and_newlines(cli: Cli) -> None:
    code, _, err = cli("add", "kvm_host/n2", "-p", "host=n2", "-p", "cellinit_ip=a\tb\r\nc")
    assert code == 0, err
    [row] = json.loads(cli("status", "kvm_host/n2", "--json")[1])
    assert row["params"]["cellinit_ip"] == "a\tb\r\nc"


def test_raw_control_bytes_are_never_echoed_in_inventory_errors(cli: Cli, tmp_path: Path) -> None:
    # Seen: the table name and ClusterShell's message carried the raw ESC to the terminal.
    cases = {
        '[kvm_host."a\\u001b[31mb"]\nhost = "x"\n': '[kvm_host."a\\u001B[31mb"]',
        '["kvm\\u001b[31m".a]\nhost = "x"\n': '["kvm\\u001B[31m"]',
        '[kvm_host.a]\nhost = "{\\u001b[31m}"\n': "unknown placeholder {\\x1b[31m}",
        '[kvm_host.a]\nhost = "x"\negs = "\\u001b[31m"\n': "an escape character ('\\x1b')",
        '[kvm_host."n[1-2\\u001b"]\nhost = "x"\n': "\\u001B",
    }
    for text, shown in cases.items():
        code, _, err = cli("inventory", "load", inventory(tmp_path, text))
        assert code == 2
        assert shown in one_error(err)


def test_a_message_never_carries_a_raw_control_character(cli: Cli) -> None:
    # Even an error raised deep inside (here ClusterShell's, about a pattern) is escaped.
    code, _, err = cli("status", "kvm_host/n[1-2")
    assert code == 2 and one_error(err)


# -- node sets -------------------------------------------------------------------------


def test_a_huge_node_set_in_an_inventory_is_refused_before_it_is_expanded(
    cli: Cli, tmp_path: Path
) -> None:
    # Seen: [kvm_host."node[1-10000000]"] reached 8 GB of memory.
    path = inventory(tmp_path, '[kvm_host."node[1-10000000]"]\nhost = "{name}"\n')
    started = time.perf_counter()
    code, _, err = cli("inventory", "load", path)
    assert time.perf_counter() - started < 5  # counted, not built (it took minutes)
    assert code == 2
    assert one_error(err) == (
        f"fleetlog: error: {path}: [kvm_host.\"node[1-10000000]\"]: node set 'node[1-10000000]' "
        "names 10000000 resources, more than the 1000000 allowed (set FLEETLOG_MAX_NODESET "
        "to raise the cap)"
    )


@pytest.mark.parametrize(
    "args",
    [
        ["status", "kvm_host/n[1-100000000]"],  # seen: internal error: MemoryError
        ["fire", "kvm_host/x[1-99999999999]", "validate"],  # seen: AssertionError
        ["replay", "kvm_host/a[1-100000]b[1-100000]"],
        ["audit", "kvm_host/n[1-5000000]"],
        ["add", "vm/g1", "-p", "host=n1", "-p", "storage=asm", "--json"],
    ],
)
def test_huge_node_sets_in_patterns_are_refused(cli: Cli, args: list[str]) -> None:
    if args[0] == "add":  # a list[ref] param takes node sets too
        args = ["add", "exascale_cluster/e", "-p", "cells=cell[1-20000000]"]
    code, _, err = cli(*args)
    assert code == 2
    assert "more than the 1000000 allowed" in one_error(err)


def test_fleetlog_max_nodeset_sets_the_cap(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETLOG_MAX_NODESET", "3")
    code, _, err = cli("inventory", "load", inventory(tmp_path, '[kvm_host."h[1-4]"]\nhost="x"\n'))
    assert code == 2 and "names 4 resources, more than the 3 allowed" in err
    code, _, err = cli("inventory", "load", inventory(tmp_path, '[kvm_host."h[1-3]"]\nhost="x"\n'))
    assert code == 0, err
    monkeypatch.setenv("FLEETLOG_MAX_NODESET", "lots")
    code, _, err = cli("status", "kvm_host/h[1-3]")
    assert code == 2 and "FLEETLOG_MAX_NODESET='lots': expected a positive integer" in err


def test_node_groups_are_not_resolved_from_clustershell_configuration(
    cli: Cli, tmp_path: Path
) -> None:
    # '@*' would ask groups.conf (whose sources may run commands) for every node.
    code, _, err = cli("inventory", "load", inventory(tmp_path, '[kvm_host."@*"]\nhost="x"\n'))
    assert code == 2 and "'@' cannot be in a name" in one_error(err)
    code, _, err = cli("status", "kvm_host/@@x")  # a name no resource has: a typo
    assert code == 2 and "no resource kvm_host/@@x in the journal" in one_error(err)


# -- names -----------------------------------------------------------------------------


def test_names_are_capped_at_253_bytes(cli: Cli, tmp_path: Path) -> None:
    assert cli("add", "kvm_host/" + "a" * 253, "-p", "host=x")[0] == 0
    code, _, err = cli("add", "kvm_host/" + "b" * 254, "-p", "host=x")
    assert code == 2
    assert "a name is at most 253 bytes, as in DNS (this one is 254)" in one_error(err)
    assert len(err) < 300  # the name itself is cut short in the message
    path = inventory(tmp_path, f'[kvm_host."{"é" * 127}"]\nhost = "x"\n')
    code, _, err = cli("inventory", "load", path)
    assert code == 2 and "this one is 254" in one_error(err)
    code, _, err = cli("add", "vm/g1", "-p", "host=" + "c" * 300)
    assert code == 2 and "a name is at most 253 bytes" in one_error(err)


# -- numbers and times -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # Seen: internal error: OverflowError: Python int too large to convert to SQLite INTEGER
        (["status", "--at", "99999999999999999999"], "--at '99999999999999999999': a seq is at"),
        (["replay", "--at", "9" * 5000], "--at '999"),
        (["audit", "--at", "99999999999999999999"], "--at '99999999999999999999': a seq is"),
        (["audit", "--since", "99999999999999999999"], "--since '99999999999999999999': a seq"),
        (["status", "--at", "9999-12-31T23:59:59-14:00"], "--at '9999-12-31T23:59:59-14:00'"),
        (["status", "--at", "0001-01-01"], "between 1970 and 9999"),
        (["audit", "--since", "0001-01-01T00:00:00+14:00"], "--since '0001-01-01"),
        (["reconcile", "--now", "9999-12-31T23:59:59-14:00"], "--now"),
        (["reconcile", "--every", "9999999h", "--passes", "1"], "a duration lies in 0s..366"),
        (["fire", "kvm_host/n1", "validate", "--parallel", "1000000"], "--parallel"),
        (["fire", "kvm_host/n1", "validate", "--max-fail", "nan"], "--max-fail"),
        (["reconcile", "--max-fix-share", "inf"], "--max-fix-share"),
        (["worker", "--once", "--idle-wait", "inf"], "--idle-wait"),
        (
            ["add", "cell/c1", "-p", "host=c", "-p", "leader=c1", "-p", f"min_hc_gb={2**63}"],
            "an integer lies in",
        ),
    ],
)
def test_numbers_and_times_are_range_checked(cli: Cli, args: list[str], message: str) -> None:
    before = cli.events()
    code, _, err = cli(*args)
    assert code == 2
    assert message in err
    assert cli.events() == before


def test_an_in_range_seq_and_time_still_work(cli: Cli) -> None:
    assert cli("status", "--at", str(limits.MAX_SEQ))[0] == 0
    assert cli("status", "--at", "1970-01-01")[0] == 0
    assert cli("audit", "--since", "2026-01-01T00:00:00Z")[0] == 0


# -- imports ---------------------------------------------------------------------------


def test_an_import_holding_a_nul_is_refused_with_its_line(cli: Cli, tmp_path: Path) -> None:
    code, exported, _ = cli("export")
    assert code == 0
    first, *rest = exported.splitlines()
    record = json.loads(first)
    record["payload"]["params"]["host"] = "n\x001"
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join([json.dumps(record), *rest]) + "\n")
    target = Cli(cli.capsys, tmp_path / "fresh.db")

    code, _, err = target("import", str(path))

    assert code == 2
    assert one_error(err) == (
        "fleetlog: error: import refused: line 1: kvm_host/n1: parameter 'host': "
        "a NUL character ('\\x00') cannot be in a value"
    )
    for column, value in (("stream", "kvm_host/n\x1b1"), ("seq", 2**63)):
        record = json.loads(first)
        record[column] = value
        path.write_text(json.dumps(record) + "\n")
        code, _, err = target("import", str(path))
        assert code == 2 and "import refused: line 1: " + column in one_error(err)


# -- backend messages ------------------------------------------------------------------


def test_a_backend_message_carrying_an_escape_sequence_is_refused_with_its_line(
    cli: Cli, tmp_path: Path
) -> None:
    # A status journaled from a backend is shown to operators later (history, status).
    path = tmp_path / "messages.jsonl"
    good = {"id": "m1", "resource": "kvm_host/n1", "status": "exascale:online"}
    bad = {**good, "id": "m2", "status": "\x1b[31mexascale:online"}
    lines = [
        json.dumps({**good, "event_time": "2026-01-01T00:00:00Z"}),
        json.dumps({**bad, "event_time": "2026-01-01T00:00:01Z"}),
        json.dumps({**good, "id": "m3", "event_time": 99999999999999}),
    ]
    path.write_text("\n".join(lines) + "\n")
    before = cli.events()

    code, _, err = cli("ingest", str(path))

    assert code == 2
    assert one_error(err) == (
        f"fleetlog: error: {path}:2: status '\\x1b[31mexascale:online': an escape character "
        "('\\x1b') cannot be in a value"
    )
    assert cli.events() == before
    code, _, err = cli("ingest", "--skip-bad", str(path))
    assert code == 1 and ESC not in err
    assert f"{path}:3: not a time between 1970 and 9999: 99999999999999" in err


# -- machine files ---------------------------------------------------------------------


def test_a_byte_order_mark_at_the_start_of_a_machine_file_is_accepted(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "bom.fsm"
    path.write_bytes(b"\xef\xbb\xbfmachine m {\n    initial state a\n}\n")
    code, out, err = cli("machines", "check", str(path))
    assert code == 0, err
    assert out.startswith("ok  m ")


def test_a_control_character_in_a_machine_file_is_located_and_escaped(
    cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "esc.fsm"
    path.write_text("machine m {\n    initial state a  # \x1b[31mred\n}\n")
    code, _, err = cli("machines", "check", str(path))
    assert code == 2
    assert f"{path}:2:24: an escape character ('\\x1b') cannot be in a machine file" in err
    assert ESC not in err
    assert "# \\x1b[31mred" in err  # the source line, escaped, with its caret below


# -- plugin arguments ------------------------------------------------------------------


def test_a_node_set_a_step_plugin_is_given_is_capped_and_fails_the_step(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fleetlog.machines.steps import diskless

    monkeypatch.setenv("FLEETLOG_MAX_NODESET", "10")
    assert diskless._nodes("iscsi_srv[1-2]") == ["iscsi_srv1", "iscsi_srv2"]
    with pytest.raises(diskless.StepFailed, match="names 11 resources, more than the 10"):
        diskless._nodes("ocean[1-11]")
    with pytest.raises(diskless.StepFailed, match="clush: bad node set 'ocean\\[1-'"):
        diskless._nodes("ocean[1-")
    # The simulated iSCSI server reads an export's ACL the same way: over the cap, or
    # malformed, it admits no host (and never builds the set).
    from fleetlog.machines.sim.tools.diskless import _in_nodeset

    assert _in_nodeset("ocean3", "ocean[1-10]")
    assert not _in_nodeset("ocean3", "ocean[1-100000000]")
    assert not _in_nodeset("ocean3", "ocean[1-")
