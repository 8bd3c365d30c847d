"""``fleetlog status``: rows folded into node sets by default, ``--all``, streamed JSON,
and ``add`` of a node set (engine/cli/statusview.py, the status and add commands)."""

from __future__ import annotations

import io
import json
import re
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlog.engine.cli import main, output, statusview
from fleetlog.engine.model.records import InProgress, Resource
from fleetlog.journal import NewEvent, open_journal


class Cli:
    """``fleetlog --journal PATH ...`` in this process (stdout is not a terminal)."""

    def __init__(self, capsys: pytest.CaptureFixture[str], journal: Path) -> None:
        self.capsys = capsys
        self.journal = journal

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--journal", str(self.journal), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def ok(self, *args: str) -> str:
        code, out, err = self(*args)
        assert code == 0, err
        return out


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("FLEETLOG_JOURNAL", "FLEETLOG_MACHINES", "FLEETLOG_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Cli:
    return Cli(capsys, tmp_path / "j.db")


def append(path: Path, stream: str, events: list[NewEvent]) -> None:
    j = open_journal(str(path))
    try:
        j.append(stream, events)
    finally:
        j.close()


def start(path: Path, rid: str, step: str | None = None) -> None:
    """``rid`` (a kvm_host in ``discovered``) in the middle of ``validate``."""
    events = [
        NewEvent("transition.started", {"trigger": "validate", "from": "discovered", "to": "ready"})
    ]
    if step is not None:
        events.append(NewEvent("step.started", {"step": step, "attempt": 1}))
    append(path, rid, events)


def complete(path: Path, rid: str) -> None:
    start(path, rid, "dbserver")
    append(
        path,
        rid,
        [
            NewEvent(
                "transition.completed", {"trigger": "validate", "from": "discovered", "to": "ready"}
            )
        ],
    )


def attention(path: Path, rid: str, reason: str) -> None:
    append(path, rid, [NewEvent("attention.required", {"step": "dbserver", "reason": reason})])


def rows_of(table: str) -> list[list[str]]:
    """The plain table's lines (header first), cells split on runs of two spaces."""
    return [re.split(r" {2,}", line.strip()) for line in table.splitlines()]


def fleet(cli: Cli) -> None:
    """kvm_host/n[1-10]: n1-n4 and n9 ready (n9 at version 5), n5-n6 at step dbserver of
    validate, n7 in validate with no step yet, n8 and n10 discovered; n5 and n10 need
    attention. vm/g[1-3] defined."""
    cli.ok("add", "kvm_host/n[1-10]", "-p", "host=n1")
    cli.ok("add", "vm/g[1-3]", "-p", "host=kvm_host/n1", "-p", "storage=asm")
    for n in (1, 2, 3, 4, 9):
        complete(cli.journal, f"kvm_host/n{n}")
    append(cli.journal, "kvm_host/n9", [NewEvent("backend.observed", {"status": "up"})])
    for n in (5, 6):
        start(cli.journal, f"kvm_host/n{n}", "dbserver")
    start(cli.journal, "kvm_host/n7")
    attention(cli.journal, "kvm_host/n5", "disk full")
    attention(cli.journal, "kvm_host/n10", "disk full")


def test_status_folds_identical_rows_and_never_folds_attention(cli: Cli) -> None:
    fleet(cli)
    code, out, _ = cli("status")
    assert code == 3  # resources need attention: as before folding
    rows = rows_of(out)
    assert rows[0] == ["resources", "count", "state", "version", "in progress", "attention"]
    assert rows[1:] == [
        ["kvm_host/n[1-4,9]", "5", "ready", "4-5"],
        [
            "kvm_host/n5",
            "1",
            "discovered",
            "4",
            "discovered → ready (validate @ dbserver)",
            "step dbserver: disk full",
        ],
        ["kvm_host/n6", "1", "discovered", "3", "discovered → ready (validate @ dbserver)"],
        ["kvm_host/n7", "1", "discovered", "2", "discovered → ready (validate)"],
        ["kvm_host/n8", "1", "discovered", "1"],
        ["kvm_host/n10", "1", "discovered", "2", "step dbserver: disk full"],
        ["vm/g[1-3]", "3", "defined", "1"],
    ]


def test_two_resources_needing_attention_for_the_same_reason_keep_a_row_each(
    cli: Cli,
) -> None:
    cli.ok("add", "kvm_host/n[1-3]", "-p", "host=n1")
    for n in (1, 2, 3):
        start(cli.journal, f"kvm_host/n{n}", "dbserver")
    for n in (1, 3):
        attention(cli.journal, f"kvm_host/n{n}", "disk full")
    code, out, _ = cli("status")
    assert code == 3
    assert [r[0] for r in rows_of(out)[1:]] == ["kvm_host/n1", "kvm_host/n2", "kvm_host/n3"]
    code, out, _ = cli("status", "kvm_host/n2")
    assert code == 0 and rows_of(out)[1][0] == "kvm_host/n2"


def test_all_shows_one_row_per_resource(cli: Cli) -> None:
    fleet(cli)
    code, out, _ = cli("status", "--all")
    assert code == 3
    rows = rows_of(out)
    assert rows[0] == ["resource", "state", "version", "in progress", "attention"]
    assert [r[0] for r in rows[1:]] == [f"kvm_host/n{i}" for i in range(1, 11)] + [
        "vm/g1",
        "vm/g2",
        "vm/g3",
    ]
    assert rows[9] == ["kvm_host/n9", "ready", "5"]
    code, out, _ = cli("status", "--all", "vm")
    assert code == 0 and len(rows_of(out)) == 4


def test_json_is_never_folded_and_keeps_its_shape(cli: Cli) -> None:
    fleet(cli)
    for args in (("status", "--json"), ("status", "--json", "--all")):
        code, out, _ = cli(*args)
        assert code == 3
        rows = json.loads(out)
        assert [r["id"] for r in rows] == [f"kvm_host/n{i}" for i in range(1, 11)] + [
            "vm/g1",
            "vm/g2",
            "vm/g3",
        ]
        assert all(
            set(r)
            == {
                "id",
                "kind",
                "name",
                "state",
                "version",
                "in_progress",
                "needs_attention",
                "observed",
                "params",
                "updated_at",
            }
            for r in rows
        )
        by_id = {r["id"]: r for r in rows}
        assert by_id["kvm_host/n5"]["needs_attention"]["reason"] == "disk full"
        assert by_id["kvm_host/n6"]["in_progress"] == {
            "trigger": "validate",
            "target": "ready",
            "step": "dbserver",
            "source": "discovered",
        }
        assert by_id["kvm_host/n9"]["observed"] == "up"
        assert by_id["vm/g2"]["params"]["host"] == "kvm_host/n1"
    # what the table shows of a folded row is what the JSON says of each member
    ready = [r for r in json.loads(cli("status", "--json")[1]) if r["state"] == "ready"]
    assert [r["id"] for r in ready] == [f"kvm_host/n{i}" for i in (1, 2, 3, 4, 9)]


def test_exit_codes_are_those_of_the_unfolded_status(cli: Cli) -> None:
    cli.ok("add", "kvm_host/n[1-3]", "-p", "host=n1")
    assert cli("status")[0] == 0
    assert cli("status", "--json")[0] == 0
    assert cli("status", "kvm_hots")[0] == 2
    assert cli("status", "--all", "kvm_host/n9")[0] == 2
    start(cli.journal, "kvm_host/n2", "dbserver")
    attention(cli.journal, "kvm_host/n2", "stuck")
    for args in (("status",), ("status", "--all"), ("status", "--json")):
        assert cli(*args)[0] == 3
    assert cli("status", "--at", "3")[0] == 0  # as of a seq: no exit 3


@pytest.mark.parametrize("count", [0, 1, 999, 1000, 1001, 2500])
def test_the_streamed_json_array_parses_to_the_list(count: int) -> None:
    items: list[Any] = [
        {"id": f"k/n{i}", "b": [i, None, "é\n\x00"], "a": {"z": 1.5, "y": True}}
        for i in range(count)
    ]
    out = io.StringIO()
    with redirect_stdout(out):
        output.emit_json_array(iter(items))
    text = out.getvalue()
    assert json.loads(text) == items
    assert text.endswith("\n") and text.count("\n") == (count + 2 if count else 1)
    plain = io.StringIO()
    with redirect_stdout(plain):
        output.emit_json(items)
    assert json.loads(plain.getvalue()) == json.loads(text)


_JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=6,
)
_ODD = st.none() | st.text() | st.integers() | st.booleans() | _JSONISH


@st.composite
def _records(draw: st.DrawFn) -> Resource:
    """Records as replay makes them (strings where the fold checks them) and some it
    never makes: a step, an observed status, a version or a time of another type."""
    observed: Any = draw(st.none() | st.text() | _ODD)
    rec = Resource(
        id=draw(st.text()),
        kind=draw(st.text(max_size=8)),
        name=draw(st.text(max_size=8)),
        state=draw(st.text(max_size=8)),
        params=draw(st.dictionaries(st.text(max_size=6), _JSONISH, max_size=4)),
        version=draw(st.integers(0, 2**40) | st.booleans()),
        observed=observed,
        updated_at=draw(st.text(max_size=30) | st.none()),
        attention=draw(st.none() | st.fixed_dictionaries({"step": _ODD, "reason": st.text()})),
    )
    if draw(st.booleans()):
        step: Any = draw(st.none() | st.text(max_size=8) | _ODD)
        rec.in_progress = InProgress(
            draw(st.text(max_size=8)), draw(st.text(max_size=8)), draw(st.text()), "t", step
        )
    return rec


@settings(max_examples=400, deadline=None)
@given(st.lists(_records(), max_size=5))
def test_json_texts_are_what_the_encoder_makes_of_status_rows(records: list[Resource]) -> None:
    """``status --json`` writes each record field by field: the same text, byte for
    byte, as encoding its ``status_row`` (non-ASCII, quotes, control characters, NaN,
    nested params, and values of unusual types, which take the encoder's path)."""
    encode = output.item_encoder()
    assert list(statusview.json_texts(records)) == [
        encode(statusview.status_row(r)) for r in records
    ]


def test_status_json_is_the_encoded_status_rows(cli: Cli) -> None:
    fleet(cli)
    attention(cli.journal, "kvm_host/n6", 'stuck on "é"\n')
    streamed = io.StringIO()
    with redirect_stdout(streamed):
        output.emit_json_array(statusview.json_rows(_records_of(cli.journal)))
    code, out, _ = cli("status", "--json")
    assert code == 3 and out == streamed.getvalue()


def _records_of(path: Path) -> list[Resource]:
    from fleetlog.engine.model import load_registry, replay_all
    from fleetlog.engine.model.patterns import select

    j = open_journal(str(path))
    try:
        records = replay_all(j, load_registry())
    finally:
        j.close()
    return [records[i] for i in select(None, records)]


def test_add_of_a_node_set_creates_every_member_or_none(cli: Cli) -> None:
    out = cli.ok("add", "kvm_host/n[1-4],m7", "-p", "host=h")
    assert out.strip() == "created 5 in state discovered: kvm_host/m7,n[1-4]"
    # one already there: refused before anything is written
    before = json.loads(cli.ok("status", "--json"))
    code, _, err = cli("add", "kvm_host/n[4-9]", "-p", "host=h")
    assert code == 2 and err.strip() == "fleetlog: error: kvm_host/n4 already exists (version 1)"
    assert json.loads(cli.ok("status", "--json")) == before
    # a reference to a resource that is not there: refused, nothing written
    code, _, err = cli("add", "vm/g[1-3]", "-p", "host=kvm_host/n9", "-p", "storage=asm")
    assert code == 2 and "names 'kvm_host/n9': no such resource" in err
    created = json.loads(cli.ok("add", "vm/g[1-3]", "-p", "host=kvm_host/n1", "--json"))
    assert created == {"created": ["vm/g1", "vm/g2", "vm/g3"]}
    assert [r["id"] for r in json.loads(cli.ok("status", "--json", "vm"))] == created["created"]
    j = open_journal(str(cli.journal))
    try:
        assert j.verify().ok and j.head() == 8
    finally:
        j.close()


def test_add_of_a_node_set_adopts_an_orphan_stream(cli: Cli) -> None:
    cli.ok("add", "kvm_host/n1", "-p", "host=h")
    append(cli.journal, "kvm_host/n2", [NewEvent("drift.detected", {"class": "orphan"})])
    cli.ok("add", "kvm_host/n[2-3]", "-p", "host=h")
    rows = {r["id"]: r for r in json.loads(cli.ok("status", "--json"))}
    assert (rows["kvm_host/n2"]["state"], rows["kvm_host/n2"]["version"]) == ("discovered", 2)
    assert rows["kvm_host/n3"]["version"] == 1
