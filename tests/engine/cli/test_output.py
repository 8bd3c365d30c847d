"""Output that pipes (docs/output.md): without a terminal a table is one line per row,
never wrapped or truncated, and a fan-out's progress is a one-line summary on stderr
each tenth of the way; shell completion scripts that the shells accept.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleetlog.engine.cli import main, output
from fleetlog.limits import escape
from tests.engine.cli.clirun import fleetlog_cmd, run

LONG = "a-message-longer-than-any-terminal-" * 4
RS = f"""
machine rs "A kind whose failure says a lot" {{
    param host: str = "h1"

    initial state new
    state done

    transition plain : new -> done {{
        step s1 run "counter s1"
    }}

    transition bad : new -> done {{
        step s1 run "fail {LONG}"
    }}
}}
"""
NAME = "rs/" + "a-resource-name-that-is-long-" * 3 + "1"


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "rs.fsm").write_text(RS)
    for var in ("FLEETLOG_BACKEND", "FLEETLOG_WITNESS", "FLEETLOG_NOTIFY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLEETLOG_MACHINES", str(tmp_path / "m"))
    monkeypatch.setenv("FLEETLOG_JOURNAL", str(tmp_path / "j.db"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def env(site: Path) -> dict[str, str]:
    return {"FLEETLOG_MACHINES": str(site / "m"), "FLEETLOG_JOURNAL": str(site / "j.db")}


def test_a_piped_history_is_one_line_per_event_whole(site: Path) -> None:
    """`fleetlog history X | grep transition.failed` finds the event, and its whole
    error; nothing is wrapped at 80 columns or cut."""
    assert run("add", NAME, cwd=site, env=env(site)).returncode == 0
    assert run("fire", NAME, "bad", cwd=site, env=env(site)).returncode == 1
    res = run("history", NAME, cwd=site, env=env(site))
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].split() == ["seq", "v", "recorded", "at", "(UTC)", "type", "actor", "detail"]
    events = run("history", NAME, "--json", cwd=site, env=env(site))
    assert len(lines) == 1 + events.stdout.count('"event_id"')
    [failed] = [line for line in lines if " transition.failed " in line]
    assert failed.rstrip().endswith(f"bad new -> new: exit 1 on h1: {LONG}")
    assert not any(c in res.stdout for c in "│┃━")
    status = run("status", cwd=site, env=env(site))
    assert [line.split()[0] for line in status.stdout.splitlines()[1:]] == [NAME]


@given(
    st.lists(
        st.lists(st.text(max_size=30) | st.none() | st.integers(), min_size=3, max_size=3),
        max_size=6,
    )
)
def test_a_plain_table_is_a_header_and_one_line_per_row(rows: list[list[object]]) -> None:
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        output.plain_table(["a", "bb", "detail"], rows)
    lines = buffer.getvalue().split("\n")
    assert lines[-1] == "" and len(lines) == len(rows) + 2
    for line, row in zip(lines[1:], rows, strict=False):
        cells = [escape("" if v is None else str(v)) for v in row]
        assert cells[-1].rstrip() in line
        assert line.startswith(cells[0])


def test_a_fan_out_without_a_terminal_reports_progress_each_tenth(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(1, 21):
        assert main(["add", f"rs/r{n}"]) == 0
    for n in range(18, 21):
        assert main(["fire", f"rs/r{n}", "plain"]) == 0  # `plain` again is not allowed
    capsys.readouterr()
    assert main(["fire", "rs/r[1-20]", "plain", "--parallel", "4"]) == 1
    err = capsys.readouterr().err
    lines = re.findall(r"^fleetlog: plain: (\d+)/20 done(?:, (\d+) failed)?$", err, re.M)
    done = [int(d) for d, _ in lines]
    assert done == sorted(done) and done[-1] == 20
    assert set(range(2, 21, 2)) <= set(done)  # every tenth of the way is said
    assert lines[-1] == ("20", "3")
    assert not any(c in err for c in "━█")  # no bar drawn into a pipe


def test_json_output_has_no_progress_lines(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(1, 4):
        assert main(["add", f"rs/r{n}"]) == 0
    capsys.readouterr()
    assert main(["fire", "rs/r[1-3]", "plain", "--json"]) == 0
    assert "done" not in capsys.readouterr().err


def test_the_bash_completion_script_is_valid_and_completes_commands(site: Path) -> None:
    res = run("completion", "bash", cwd=site)
    assert res.returncode == 0 and "_FLEETLOG_COMPLETE=complete_bash" in res.stdout
    script = site / "fleetlog.bash"
    script.write_text(res.stdout)
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    # Sourced, its function asks fleetlog for the words that complete `fleetlog sta`.
    bindir = Path(fleetlog_cmd()[0]).parent
    probe = (
        f"source {script}; COMP_WORDS=(fleetlog sta); COMP_CWORD=1; "
        "_fleetlog_completion fleetlog; printf '%s\\n' \"${COMPREPLY[@]}\""
    )
    done = subprocess.run(
        ["bash", "-c", probe],
        env={"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(site)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "status" in done.stdout.split()


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_scripts_are_printed(shell: str, site: Path) -> None:
    res = run("completion", shell, cwd=site)
    assert res.returncode == 0 and f"_FLEETLOG_COMPLETE=complete_{shell}" in res.stdout
    binary = shutil.which(shell)
    if binary is not None:  # checked by the shell itself where it is installed
        path = site / f"fleetlog.{shell}"
        path.write_text(res.stdout)
        assert subprocess.run([binary, "-n", str(path)], check=False).returncode == 0
