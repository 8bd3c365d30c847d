"""One meaning of ``run``: a command is POSIX shell text on every backend.

Over ssh the remote login shell runs it; the local backend runs ``/bin/sh -c``. Values are
interpolated with the same quoting (``shlex.quote``) for both, so one machine file has
byte-identical effects on local and over ssh, whatever the value: every hostile value
below is written by a ``run`` step, a ``check`` probe, a ``skip if`` probe, a ``wait``,
an ``undo run`` and an observe command, and the bytes each wrote are compared with the
value itself, on both backends.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from fleetlog import dsl
from fleetlog.engine.backends import Backend, CommandTimeout
from fleetlog.engine.backends.local import LocalBackend
from fleetlog.engine.backends.ssh import SSHBackend
from fleetlog.engine.model import Kind, KindRegistry
from fleetlog.engine.ops import create_resource
from fleetlog.engine.ops.observe import CommandSource, Seen
from fleetlog.engine.runtime import Runner
from fleetlog.journal import open_journal
from tests.lab.lab import ARGV_JSON, Lab

if TYPE_CHECKING:  # importing the plugin module itself would defeat assert rewriting
    from tests.lab.fixtures import SshRig

pytest_plugins = ["tests.lab.fixtures"]

MakeSSH = Callable[..., SSHBackend]
MakeRig = Callable[..., "SshRig"]

#: Shell metacharacters, quotes, newlines, substitutions, expansions, leading dashes,
#: blanks, unicode and the empty string: each must arrive as exactly these bytes.
HOSTILE = [
    "plain",
    "",
    " ",
    "two words",
    "tab\tseparated",
    "  leading and trailing  ",
    "x; rm -rf /",
    ";",
    "a|b",
    "a && b",
    "a & b",
    "&",
    "> out",
    "< /etc/passwd",
    "2>&1",
    "*",
    "?",
    "[a-z]*",
    "/*",
    "'",
    "it's",
    "'single'",
    '"',
    '"double"',
    "mixed '\"' quotes\"'",
    "line one\nline two",
    "\n",
    "trailing newline\n",
    "crlf\r\n",
    "$(id)",
    "$(touch pwned)",
    "`id`",
    "$HOME",
    "${HOME}",
    "$",
    "$'\\x41'",
    "\\",
    "back\\slash\\n",
    "-n",
    "--help",
    "-e foo",
    "-",
    "--",
    "#not a comment",
    "~",
    "~root",
    "a=b",
    "FOO=bar cmd",
    "{value}",
    "{{",
    "%s%d%n",
    "!",
    "!!",
    "ünïcödé ☃ 日本語 🙂",
    "\u00a0nbsp\u2028sep",
    # Control characters (\x01, ESC, DEL, NUL) never get this far: a value holding one
    # is refused where it is given (fleetlog.limits; tests/engine/cli/test_inputs.py).
]

MACHINE = r"""
machine shellfx "the same shell text on every backend" {
    param host: str
    param v: str = ""
    param out: str

    initial state new
    state done
    state unwound : error

    observe "printf '%s' {v} > {out}.observe && printf 'up\n'" {
        "up" -> done
    }

    transition write : new -> done {
        skip if probe "printf '%s' {v} > {out}.skip; exit 1"
        step plain run "printf '%s' {v} > {out}"
        step check run ":" check "printf '%s' {v} > {out}.check; exit 1"
        step wait  wait "printf '%s' {v} > {out}.wait" until succeeds timeout 10s
        step chain run "test -d {out}.nowhere || printf '%s' {v} | /bin/cat > {out}.chain"
        step shown run "printf '%s' {v}"
    }

    transition unwind : done -> unwound {
        step undoable run ":" undo run "printf '%s' {v} > {out}.undo"
        step boom run "exit 3"
        on failure -> unwound undo [undoable]
    }
}
"""

# In the lab, `cat`, `echo`, `true`, `test`, `sleep` (and more) are the simulator's tools
# on PATH; the shell's builtins win over PATH, and `/bin/cat` is the real program.
SUFFIXES = ("", ".skip", ".check", ".wait", ".chain", ".undo", ".observe")


def compile_kinds(source: str) -> KindRegistry:
    spec, _warnings = dsl.compile_source(source, "<shell semantics>")
    return KindRegistry([Kind(spec)], {})


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory the lab user can write (pytest's tmp dirs are 0700 root's)."""
    path = Path(tempfile.mkdtemp(prefix="fleetlog-shell-"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _exercise(
    runner: Runner, backend: Backend, host: str, out_dir: Path
) -> dict[str, dict[str, Any]]:
    """Run the machine for every hostile value; return per value: what each command
    wrote (bytes per file suffix), the journaled output of ``shown`` and the observed
    status."""
    registry = runner.registry
    kind = registry.get("shellfx")
    effects: dict[str, dict[str, Any]] = {}
    for i, value in enumerate(HOSTILE):
        rid = f"shellfx/v{i}"
        out = out_dir / f"v{i}"
        create_resource(runner.journal, registry, rid, {"host": host, "v": value, "out": str(out)})
        written = runner.fire(rid, "write")
        assert written.status == "completed", (value, written)
        unwound = runner.fire(rid, "unwind")
        assert (unwound.status, unwound.state) == ("failed", "unwound"), (value, unwound)
        verdict = CommandSource(kind, backend).verdict(runner.load(rid), host, {})
        shown = [
            e.payload.get("output")
            for e in runner.journal.read_stream(rid)
            if e.type == "step.succeeded" and e.payload["step"] == "shown"
        ]
        files = {s: out_dir / f"{out.name}{s}" for s in SUFFIXES}
        effects[value] = {
            "files": {s: f.read_bytes() if f.exists() else None for s, f in files.items()},
            "shown": shown,
            "observed": verdict.status if isinstance(verdict, Seen) else repr(verdict),
        }
    return effects


def test_the_same_machine_has_byte_identical_effects_on_local_and_over_ssh(
    make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab, tmp_path: Path, shared_dir: Path
) -> None:
    local_dir, ssh_dir = tmp_path / "local", shared_dir
    local_dir.mkdir()
    registry = compile_kinds(MACHINE)
    journal = open_journal(str(tmp_path / "local.db"))
    try:
        local = LocalBackend()
        runner = Runner(journal, registry, local, lock_wait=0.0)
        on_local = _exercise(runner, local, "localhost", local_dir)
    finally:
        journal.close()
    ssh = make_ssh()
    rig = ssh_rig(ssh, MACHINE)
    over_ssh = _exercise(rig.runner, ssh, "node1", ssh_dir)

    wrong = []
    for value in HOSTILE:
        expected = value.encode()
        for where, effects in (("local", on_local), ("ssh", over_ssh)):
            for suffix, got in effects[value]["files"].items():
                if got != expected:
                    wrong.append((where, suffix or "run", value, got))
            if effects[value]["observed"] != "up":
                wrong.append((where, "observe status", value, effects[value]["observed"]))
            if effects[value]["shown"] != [value]:
                wrong.append((where, "journaled output", value, effects[value]["shown"]))
    assert wrong == []
    # Nothing a value said ran as a command: no stray file appeared anywhere.
    for directory in (local_dir, ssh_dir):
        names = {p.name for p in directory.iterdir()}
        expected_names = {f"v{i}{s}" for i in range(len(HOSTILE)) for s in SUFFIXES}
        assert names == expected_names
    assert not Path("pwned").exists()


@pytest.fixture
def argv_json_dir(tmp_path: Path) -> Path:
    """The lab's ``argv_json`` helper, for the local backend too."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    helper = bin_dir / "argv_json"
    helper.write_text(ARGV_JSON.format(python=sys.executable))
    helper.chmod(0o755)
    return bin_dir


def test_words_split_the_same_on_local_and_over_ssh(
    make_ssh: MakeSSH, ssh_lab: Lab, argv_json_dir: Path
) -> None:
    """Each value is one argument on both backends, glued to literal text or not, and
    shell syntax written by the author (a pipe, `;`) works on both."""
    ssh = make_ssh()
    local = LocalBackend()
    env = {"PATH": f"{argv_json_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    for value in HOSTILE:
        q = shlex.quote(value)
        command = f"argv_json {q} x{q}y 'lit eral' -- {q} | /bin/cat; exit 0"
        here = local.run("localhost", command, env=env)
        there = ssh.run("node2", command)
        assert here.ok and there.ok, (value, here, there)
        assert json.loads(here.stdout) == [value, f"x{value}y", "lit eral", "--", value]
        assert here.stdout == there.stdout, value


# ---- the local backend is a shell ------------------------------------------------------
LOCAL_JOB = """
machine ljob {
    param host: str = "localhost"
    param f: str
    initial state new
    state done
    transition go : new -> done {
        step touch run "true && touch {f}"
    }
}
"""


def test_true_and_touch_creates_the_file_on_local(tmp_path: Path) -> None:
    registry = compile_kinds(LOCAL_JOB)
    journal = open_journal(str(tmp_path / "j.db"))
    try:
        runner = Runner(journal, registry, LocalBackend(), lock_wait=0.0)
        target = tmp_path / "made by && touch"
        create_resource(journal, registry, "ljob/a", {"f": str(target)})
        assert runner.fire("ljob/a", "go").status == "completed"
    finally:
        journal.close()
    assert target.exists()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("printf '%s\\n' a b | sort -r", "b\na\n"),
        ("echo one; echo two", "one\ntwo\n"),
        ("false || echo fallback", "fallback\n"),
        ("x=1; echo $((x + 1))", "2\n"),
        ("echo $FLEETLOG_SHELL_TEST", "from env\n"),
        ("cd / && pwd", "/\n"),
        ("for i in 1 2; do printf %s $i; done", "12"),
        ("cat", ""),  # stdin is /dev/null, as over ssh
    ],
)
def test_local_commands_are_shell_text(command: str, expected: str) -> None:
    result = LocalBackend().run("localhost", command, env={"FLEETLOG_SHELL_TEST": "from env"})
    assert (result.exit_code, result.stdout) == (0, expected)


def test_the_exit_status_is_the_shells() -> None:
    assert LocalBackend().run("localhost", "true; exit 7").exit_code == 7
    assert LocalBackend().run("localhost", "no-such-program-fleetlog").exit_code == 127


def test_redirection_into_a_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    value = "x; rm -rf / > y"
    cmd = f"printf %s {shlex.quote(value)} > {shlex.quote(str(out))}"
    assert LocalBackend().run("localhost", cmd).ok
    assert out.read_bytes() == value.encode()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


@pytest.mark.parametrize("nested", [False, True], ids=["sleep", "sh -c sleep"])
def test_a_timeout_kills_the_shell_and_its_children(tmp_path: Path, nested: bool) -> None:
    pidfile = tmp_path / "pid"
    inner = f"echo $$ > {shlex.quote(str(pidfile))}; exec sleep 100"
    command = f"sh -c {shlex.quote(inner)}; echo after" if nested else inner
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as info:
        LocalBackend().run("localhost", command, timeout=0.5)
    assert time.monotonic() - started < 10
    assert "after" not in info.value.fields["stdout"]
    assert _eventually_dead(int(pidfile.read_text()))  # the sleep itself


def _eventually_dead(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().split(") ", 1)[1].startswith("Z"):
            return True
        time.sleep(0.05)
    return False
