"""End-to-end tests of ``fleetlog machines list|show|check`` and ``fleetlog graph``.

Exit codes and "no traceback" are checked on the real console script in a subprocess
where that matters; the rest runs ``fleetlog.engine.cli.main(argv)`` in-process, which returns the
exit code instead of exiting.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from fleetlog.dsl import compile_file
from fleetlog.engine.cli import main
from fleetlog.journal import NewEvent
from fleetlog.journal.sqlite import SQLiteJournal
from tests.engine.cli.clirun import run

ROOT = Path(__file__).resolve().parents[3]
MACHINES = sorted((ROOT / "machines").glob("*.fsm"))
VM_FSM = ROOT / "machines" / "vm.fsm"


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("FLEETLOG_JOURNAL", "FLEETLOG_MACHINES", "FLEETLOG_BACKEND"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)


# -- machines check ----------------------------------------------------------------------


def test_check_shipped_machines_lists_every_kind_with_counts(tmp_path: Path) -> None:
    assert MACHINES, "no shipped machines found"
    r = run("machines", "check", *map(str, MACHINES), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    lines = {
        m.group(1): m
        for m in re.finditer(
            r"^ok\s+(\S+)\s+(\d+) states\s+(\d+) transitions\s+(\d+) steps\s+(\S+)$",
            r.stdout,
            re.M,
        )
    }
    for path in MACHINES:
        spec, _ = compile_file(path)
        assert spec.name in lines, r.stdout
        m = lines[spec.name]
        assert int(m.group(2)) == len(spec.states)
        assert int(m.group(3)) == len(spec.transitions)
        assert int(m.group(4)) == sum(len(t.steps) for t in spec.transitions)
        assert Path(m.group(5)).resolve() == path.resolve()
    assert len(lines) == len(MACHINES)


def _broken_vm(tmp_path: Path) -> tuple[Path, dict[str, tuple[int, int, str]]]:
    """A copy of vm.fsm with a misspelt state and a bad default type; returns the file
    and, per problem, the (line, col, source line) it must be reported at."""
    text = VM_FSM.read_text()
    assert "defined -> BUILD {" in text
    assert 'param image: str = "gold_image"' in text
    text = text.replace("defined -> BUILD {", "defined -> BUILDD {", 1)
    text = text.replace('param image: str = "gold_image"', "param image: str = 3", 1)
    where: dict[str, tuple[int, int, str]] = {}
    for i, line in enumerate(text.splitlines(), 1):
        if "BUILDD" in line:
            where["state"] = (i, line.index("BUILDD") + 1, line)
        if "param image: str = 3" in line:
            where["default"] = (i, line.index("= 3") + 3, line)
    bad = tmp_path / "vm.fsm"
    bad.write_text(text)
    return bad, where


def _assert_caret_report(stderr: str, fname: str, line: int, col: int, source: str) -> None:
    lines = stderr.splitlines()
    head = [i for i, s in enumerate(lines) if f"{fname}:{line}:{col}: " in s]
    assert head, f"no {fname}:{line}:{col}: diagnostic in:\n{stderr}"
    i = head[0]
    assert lines[i + 1] == "    " + source
    caret = lines[i + 2]
    assert caret.startswith("    ") and caret.strip().startswith("^")
    assert caret.index("^") == 4 + col - 1, f"caret misplaced:\n{lines[i + 1]}\n{caret}"


def test_check_bad_copy_reports_every_error_with_caret_and_no_traceback(
    tmp_path: Path,
) -> None:
    _bad, where = _broken_vm(tmp_path)
    r = run("machines", "check", "vm.fsm", cwd=tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    line, col, src = where["state"]
    _assert_caret_report(r.stderr, "vm.fsm", line, col, src)
    assert "unknown state 'BUILDD'" in r.stderr
    assert "did you mean 'BUILD'?" in r.stderr
    line, col, src = where["default"]
    _assert_caret_report(r.stderr, "vm.fsm", line, col, src)
    assert "'image' is a str" in r.stderr
    assert "(and 1 more error)" not in r.stderr  # the full report, not the summary
    assert not re.search(r"^ok\s+vm\b", r.stdout, re.M)


def test_check_mixes_good_and_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad, where = _broken_vm(tmp_path)
    good = ROOT / "machines" / "kvm_host.fsm"
    code, out, err = cli(capsys, "machines", "check", str(good), str(bad))
    assert code == 2
    assert re.search(r"^ok\s+kvm_host\b", out, re.M)
    for line, col, _src in where.values():
        assert f"{bad}:{line}:{col}: " in err
    code, out, err = cli(capsys, "machines", "check", "--json", str(good), str(bad))
    assert code == 2
    report = json.loads(out)
    assert report["ok"] is False
    assert report["errors"] == 2  # both diagnostics counted, not just the one bad file
    assert [m["kind"] for m in report["machines"]] == ["kvm_host"]


def test_check_missing_file_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _out, err = cli(capsys, "machines", "check", str(tmp_path / "nope.fsm"))
    assert code == 2
    assert "nope.fsm: no such file" in err


def test_a_bad_machine_on_the_path_is_reported_in_full_by_any_command(
    tmp_path: Path,
) -> None:
    """Loading the registry raises DSLError: main prints every diagnostic with its caret."""
    pack = tmp_path / "pack"
    pack.mkdir()
    text = VM_FSM.read_text().replace('machine vm "Guest VM"', 'machine vmcopy "Copy"', 1)
    text = text.replace("defined -> BUILD {", "defined -> BUILDD {", 1)
    (pack / "vmcopy.fsm").write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "BUILDD" in s)
    col = text.splitlines()[line - 1].index("BUILDD") + 1
    r = run("machines", "list", cwd=tmp_path, env={"FLEETLOG_MACHINES": str(pack)})
    assert r.returncode == 2
    assert "Traceback" not in r.stderr
    assert r.stderr.startswith("fleetlog: error: ")
    _assert_caret_report(r.stderr, str(pack / "vmcopy.fsm"), line, col, text.splitlines()[line - 1])
    assert "did you mean 'BUILD'?" in r.stderr


def test_other_errors_stay_one_line(tmp_path: Path) -> None:
    r = run("machines", "show", "kvm_hots", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith("fleetlog: error: unknown kind 'kvm_hots'")
    assert "did you mean 'kvm_host'?" in r.stderr


# -- machines list / show --------------------------------------------------------------


def test_list_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "machines", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert isinstance(rows, list)
    by_kind = {r["kind"]: r for r in rows}
    for path in MACHINES:
        spec, _ = compile_file(path)
        row = by_kind[spec.name]
        assert set(row) >= {
            "kind",
            "title",
            "states",
            "transitions",
            "steps",
            "file",
            "definition_hash",
        }
        assert row["title"] == spec.title
        assert row["states"] == len(spec.states)
        assert row["transitions"] == len(spec.transitions)
        assert row["steps"] == sum(len(t.steps) for t in spec.transitions)
        assert row["definition_hash"] == spec.definition_hash
        assert re.fullmatch(r"[0-9a-f]{64}", row["definition_hash"])
    assert [r["kind"] for r in rows] == sorted(by_kind)


def test_list_table_names_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "machines", "list")
    assert code == 0
    assert "vm" in out and "kvm_host" in out


def test_show_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "machines", "show", "vm", "--json")
    assert code == 0
    data = json.loads(out)
    spec, _ = compile_file(VM_FSM)
    assert data["name"] == "vm"
    assert data["title"] == spec.title
    assert data["definition_hash"] == spec.definition_hash
    assert Path(data["file"]).resolve() == VM_FSM.resolve()
    assert [s["name"] for s in data["states"]] == list(spec.state_names)
    assert [s["name"] for s in data["states"] if s["initial"]] == ["defined"]
    assert {s["name"] for s in data["states"] if s["error"]} == {"ERROR"}
    assert {s["name"] for s in data["states"] if s["final"]} == {"DELETED"}
    params = {p["name"]: p for p in data["params"]}
    assert params["host"]["type"] == "ref" and params["host"]["ref_kind"] == "kvm_host"
    assert params["storage"]["type"] == "enum"
    assert params["storage"]["choices"] == ["exascale", "asm"]
    assert params["image"]["default"] == "gold_image"
    triggers = {t["trigger"]: t for t in data["transitions"]}
    assert set(triggers) == {t.trigger for t in spec.transitions}
    create = triggers["create"]
    assert create["sources"] == ["defined"] and create["dest"] == "BUILD"
    assert [s["name"] for s in create["steps"]] == ["exascale", "create"]
    assert triggers["start"]["sources"] == ["STOPPED", "ERROR"]
    json.dumps(data)  # plain data all the way down


def test_show_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "machines", "show", "kvm_host")
    assert code == 0
    assert "param host: str" in out
    assert "state discovered (initial)" in out
    assert "validate" in out and "dbserver" in out


# -- graph -----------------------------------------------------------------------------


def _need_dot() -> None:
    """CI installs graphviz: there a missing ``dot`` fails the test instead of skipping."""
    if shutil.which("dot") is None and os.environ.get("CI") != "true":
        pytest.skip("graphviz's dot is not installed (CI installs it)")


def test_graph_svg_is_rendered_by_graphviz(tmp_path: Path) -> None:
    _need_dot()
    r = run("graph", "vm", "--format", "svg", "-o", "vm.svg", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    data = (tmp_path / "vm.svg").read_text()
    assert data.startswith("<?xml") or "<svg" in data
    assert "<svg" in data
    for state in ("defined", "BUILD", "ACTIVE", "DELETED"):
        assert f">{state}" in data
    assert r.stdout == ""


def test_graph_png_has_png_magic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need_dot()
    code, _out, err = cli(capsys, "graph", "kvm_host", "-f", "png", "-o", "g.png")
    assert code == 0, err
    assert (tmp_path / "g.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_graph_binary_format_to_stdout_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "graph", "vm", "--format", "png")
    assert code == 2
    assert out == ""
    assert "give -o FILE" in err


def test_graph_mermaid(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "graph", "vm", "--format", "mermaid")
    assert code == 0
    assert out.startswith("stateDiagram-v2\n")
    assert "[*] --> s_defined" in out
    assert "s_defined --> s_BUILD: create" in out
    assert "s_STOPPED --> s_ACTIVE: start" in out
    assert "s_DELETED --> [*]" in out
    assert "class s_ERROR error" in out
    assert " current" not in out.replace("classDef current", "")
    # mermaid is the default
    code, default, _ = cli(capsys, "graph", "vm")
    assert code == 0 and default == out


def test_graph_dot(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "graph", "vm", "--format", "dot")
    assert code == 0
    assert out.lstrip().startswith("digraph")
    assert re.search(r"defined -> BUILD \[label=create\]", out)
    for state in ("defined", "BUILD", "ACTIVE", "STOPPED", "REBOOT", "ERROR", "DELETED"):
        assert re.search(rf"^\s*{state} \[", out, re.M), state


def _journal_with_vm_in_build(path: Path) -> None:
    """vm/g1 created and moved defined -> BUILD, written as the executor writes it."""
    j = SQLiteJournal(path, actor="tester", host="testhost")
    try:
        j.append(
            "kvm_host/n1",
            [
                NewEvent(
                    "resource.created",
                    {"kind": "kvm_host", "params": {"host": "n1"}, "state": "discovered"},
                )
            ],
            0,
        )
        j.append(
            "vm/g1",
            [
                NewEvent(
                    "resource.created",
                    {"kind": "vm", "params": {"host": "kvm_host/n1"}, "state": "defined"},
                )
            ],
            0,
        )
        j.append(
            "vm/g1",
            [
                NewEvent(
                    "transition.started", {"trigger": "create", "from": "defined", "to": "BUILD"}
                ),
                NewEvent("step.started", {"step": "create", "attempt": 1}),
                NewEvent("step.succeeded", {"step": "create", "attempt": 1}),
                NewEvent(
                    "transition.completed", {"trigger": "create", "from": "defined", "to": "BUILD"}
                ),
            ],
            1,
        )
    finally:
        j.close()


def test_graph_highlight_marks_the_resources_current_state(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    _journal_with_vm_in_build(db)
    code, out, err = cli(capsys, "--journal", str(db), "graph", "vm", "--highlight", "vm/g1")
    assert code == 0, err
    assert "class s_BUILD current" in out
    assert "class s_defined current" not in out
    code, out, err = cli(
        capsys, "--journal", str(db), "graph", "vm", "-f", "dot", "--highlight", "vm/g1"
    )
    assert code == 0, err
    styled = [ln.strip().split(" ")[0] for ln in out.splitlines() if "peripheries=2" in ln]
    assert styled == ["BUILD"]


def test_graph_highlight_of_a_missing_resource(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "j.db"
    _journal_with_vm_in_build(db)
    code, out, err = cli(capsys, "--journal", str(db), "graph", "vm", "--highlight", "vm/zz")
    assert code == 2
    assert out == ""
    assert "no resource 'vm/zz'" in err


def test_graph_bad_format_and_unknown_kind_exit_2_without_traceback(tmp_path: Path) -> None:
    r = run("graph", "vm", "--format", "jpg", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert "unknown graph format 'jpg'" in r.stderr
    r = run("graph", "nosuchkind", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    assert not (tmp_path / "fleetlog.db").exists()  # drawing never opens a journal


def test_check_strict_fails_on_warnings_and_the_shipped_machines_pass_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = cli(capsys, "machines", "check", "--strict", *map(str, MACHINES))
    assert (code, err) == (0, "")
    assert out.count("ok  ") == len(MACHINES)
    warned = tmp_path / "warned.fsm"
    warned.write_text(
        "machine warned {\n    initial state a\n    state b\n    state lost\n"
        "    state broken : error\n    transition go : a -> b { on failure -> broken }\n}\n"
    )
    code, _out, err = cli(capsys, "machines", "check", str(warned))
    assert code == 0  # warnings alone do not fail without --strict
    assert "warning: state 'lost' is unreachable from 'a'" in err
    assert "warning: error state 'broken' has no transition out" in err
    assert "add a way out, e.g. 'transition reset : broken -> a'" in err
    code, out, err = cli(capsys, "machines", "check", "--strict", "--json", str(warned))
    assert code == 2
    assert json.loads(out)["ok"] is False and json.loads(out)["warnings"] == 2
