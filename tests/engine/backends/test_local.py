"""LocalBackend: ``/bin/sh -c`` like ssh, quoted values stay literal, timeouts kill the whole
process group, env, output cap. (tests/engine/backends/test_shell_semantics.py compares
local with ssh value by value.)"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetlog.engine.backends import Backend, BackendError, CommandTimeout
from fleetlog.engine.backends.local import LocalBackend

PY = shlex.quote(sys.executable)
ARGV_DUMP = f"{PY} -c 'import sys,json;print(json.dumps(sys.argv[1:]))'"
HOSTILE = "x; rm -rf / | cat & echo $(id) `id` 'single' \"double\" \\ \nsecond line"


@pytest.fixture
def local() -> LocalBackend:
    return LocalBackend()


def test_is_a_backend(local: LocalBackend) -> None:
    assert isinstance(local, Backend)
    assert local.name == "local"


def test_hostile_value_arrives_as_one_literal_argument(local: LocalBackend) -> None:
    result = local.run("localhost", f"{ARGV_DUMP} {shlex.quote(HOSTILE)} plain")
    assert result.ok, result.stderr
    assert json.loads(result.stdout) == [HOSTILE, "plain"]


@settings(max_examples=20, deadline=None)
@given(st.text(st.characters(codec="utf-8", blacklist_characters="\x00")))
def test_any_quoted_text_round_trips(value: str) -> None:
    result = LocalBackend().run("", f"{ARGV_DUMP} {shlex.quote(value)}")
    assert json.loads(result.stdout) == [value]


def test_exit_code_and_streams(local: LocalBackend) -> None:
    cmd = f'{PY} -c \'import sys; print("out"); print("err", file=sys.stderr); sys.exit(3)\''
    result = local.run("127.0.0.1", cmd)
    assert (result.exit_code, result.stdout, result.stderr) == (3, "out\n", "err\n")
    assert not result.ok
    assert result.duration > 0


def test_env_is_merged_into_the_environment(local: LocalBackend) -> None:
    cmd = f'{PY} -c \'import os; print(os.environ["FLEETLOG_X"], bool(os.environ.get("PATH")))\''
    assert local.run("localhost", cmd, env={"FLEETLOG_X": "a b;c"}).stdout == "a b;c True\n"


def test_timeout_kills_the_process_group(local: LocalBackend, tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    script = f"sleep 30 & echo $! > {shlex.quote(str(pidfile))}; wait"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        local.run("localhost", f"sh -c {shlex.quote(script)}", timeout=0.5)
    assert time.monotonic() - started < 10
    assert info.value.fields["timeout"] == 0.5
    grandchild = int(pidfile.read_text())
    assert _eventually_dead(grandchild)


def test_background_child_holding_the_pipes_is_killed_at_the_deadline(
    local: LocalBackend,
) -> None:
    started = time.monotonic()
    result = local.run("localhost", "sh -c 'echo started; sleep 30 &'", timeout=1)
    assert result.ok and result.stdout == "started\n"
    assert time.monotonic() - started < 10


def test_output_is_capped_keeping_the_tail() -> None:
    backend = LocalBackend(max_output=1000)
    cmd = f'{PY} -c \'print("a" * 100000 + "THE END")\''
    out = backend.run("localhost", cmd).stdout
    assert out.startswith("[... ") and "truncated" in out.splitlines()[0]
    assert out.endswith("THE END\n")
    assert len(out) < 1100


def test_unknown_program_is_127_like_a_shell(local: LocalBackend) -> None:
    result = local.run("localhost", "no-such-program-fleetlog --x")
    assert result.exit_code == 127
    assert "no-such-program-fleetlog" in result.stderr


@pytest.mark.parametrize("host", ["node3", "10.0.0.1", "localhost.evil"])
def test_refuses_remote_hosts(local: LocalBackend, host: str) -> None:
    with pytest.raises(BackendError, match="only runs commands on localhost"):
        local.run(host, "true")


@pytest.mark.parametrize("command", ["", "   ", "\n", "echo a\0b"])
def test_empty_or_nul_command_is_a_backend_error(local: LocalBackend, command: str) -> None:
    with pytest.raises(BackendError):
        local.run("localhost", command)


def test_a_shell_syntax_error_is_the_shells_exit_status(local: LocalBackend) -> None:
    # As over ssh: the shell refuses the text and exits 2; nothing ran.
    result = local.run("localhost", "echo 'unbalanced")
    assert result.exit_code == 2
    assert result.stderr


def test_invalid_env_name_is_a_backend_error(local: LocalBackend) -> None:
    with pytest.raises(BackendError, match="invalid environment variable name"):
        local.run("localhost", "true", env={"A=B": "x"})


def _eventually_dead(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"):
            return True  # a zombie waiting for a non-reaping init is dead enough
        time.sleep(0.05)
    return False
