"""The exit-code contract (docs/output.md), command by command: 0 ok, 1 an operation
failed, 2 usage error, 3 drift or needs attention, 4 journal integrity failure, 130
interrupted (tests/engine/cli/test_interrupt.py).

The commands are read from the app itself — the engine's and every machine pack's — so
a command added later is covered by the generic checks (``-h``, an unknown option) at
once, and ``test_every_command_has_exit_code_cases`` asks for its own rows in ``CASES``.
Each case runs in a fresh copy of one template site: a journal with ``rs/r1`` and
``rs/r2`` (new), ``rs/r3`` needing attention (a fire killed mid-step, then resumed) and
``kvm_host/n1``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main

from fleetlog.engine.cli import app, main
from tests.engine.cli.clirun import run

RS = """
machine rs "A kind for the exit-code tests" {
    param host: str = "h1"

    initial state new
    state done

    transition plain : new -> done {
        step s1 run "counter s1"
        step s2 run "counter s2"
    }

    transition bad : new -> done {
        step s1 run "fail boom"
    }
}
"""
BAD_FSM = "machine broken {\n    initial state a\n    state a\n}\n"
ENV = (
    "FLEETLOG_JOURNAL",
    "FLEETLOG_MACHINES",
    "FLEETLOG_BACKEND",
    "FLEETLOG_WITNESS",
    "FLEETLOG_NOTIFY",
    "FLEETLOG_TEST_CRASH_AFTER_EVENTS",
)


@dataclass(frozen=True)
class Case:
    """``fleetlog ARGS`` after each of ``before`` (each must exit 0) exits ``code``,
    and ``says`` is in its stdout or stderr."""

    args: tuple[str, ...]
    code: int
    says: str = ""
    before: tuple[tuple[str, ...], ...] = ()


def c(*args: str, code: int, says: str = "", before: tuple[tuple[str, ...], ...] = ()) -> Case:
    return Case(args, code, says, before)


SUBMIT_BAD = ("fire", "rs/r1", "bad", "--submit")

#: Command path -> its cases: at least one success and one refusal each.
CASES: dict[str, list[Case]] = {
    "add": [
        c("add", "rs/r9", code=0, says="created"),
        c("add", "rsx/r9", code=2, says="did you mean 'rs'"),
        c("add", "rs/r9", "-p", "host=a", "-p", "host=b", code=2, says="'host': given twice"),
    ],
    "status": [
        c("status", "kvm_host", code=0, says="kvm_host/n1"),
        c("status", code=3, says="rs/r3"),
        c("status", "rs", "--json", code=3, says='"needs_attention"'),
        c("status", "kvmhost", code=2, says="unknown kind 'kvmhost'; did you mean 'kvm_host'?"),
        c("status", "rs/r7", code=2, says="no resource rs/r7"),
        c("status", "rs/nothing*", code=0),
    ],
    "history": [
        c("history", "rs/r1", code=0, says="resource.created"),
        c("history", "rs/r9", code=2, says="no resource"),
    ],
    "replay": [c("replay", code=0, says="replayed"), c("replay", "rsx", code=2, says="kind")],
    "verify": [
        c("verify", code=0, says="hash chain intact"),
        c("--journal", "absent.db", "verify", code=2, says="no journal"),
    ],
    "export": [
        c("export", "-o", "again.jsonl", code=0, says="exported"),
        c("--journal", "absent.db", "export", code=2, says="no journal"),
    ],
    "import": [
        c("--journal", "new.db", "import", "all.jsonl", code=0, says="imported"),
        c("--journal", "new.db", "import", "absent.jsonl", code=2, says="absent.jsonl"),
    ],
    "fire": [
        c("fire", "rs/r1", "plain", code=0, says="completed"),
        c("fire", "rs/r[1-2]", "plain", code=0, says="completed"),
        c("fire", "rs/r1", "bad", code=1, says="failed at step s1"),
        c("fire", "rs/r[1-2]", "bad", code=1, says="failed at step s1"),
        c("fire", "rs/r1", "plian", code=2, says="plain"),
        c("fire", "rs/r1", "plain", "-p", "host=a", "-p", "host=b", code=2, says="given twice"),
        c("fire", "rs/r3", "plain", code=1, says="busy"),
    ],
    "resume": [
        c("resume", "rs/r1", code=0, says="nothing to resume"),
        c("resume", "--all", code=3, says="needs attention at step s2"),
        c("resume", code=2, says="say what to resume"),
    ],
    "resolve": [
        c("resolve", "rs/r3", "--step", "s2", "--as", "done", "--reason", "seen", code=0),
        c("resolve", "rs/r1", "--step", "s2", "--as", "done", "--reason", "x", code=2),
    ],
    "reconcile": [
        c("reconcile", "--read-only", code=0, says="no drift"),
        c("reconcile", "--passes", "2", code=2, says="--passes"),
    ],
    "ingest": [
        c("ingest", "empty.jsonl", code=0),
        c("ingest", "bad.jsonl", code=2),
    ],
    "audit": [
        c("audit", "rs/r1", code=0, says="rs/r1"),
        c("audit", "rs/r9", code=2),
    ],
    "worker": [
        c("worker", "--once", code=0, says="nothing to run"),
        c("worker", "--once", "--json", code=0, says='"outcomes": []'),
        c("worker", "--once", code=1, says="failed", before=(SUBMIT_BAD,)),
        c("worker", "--once", "--json", code=1, says='"status": "failed"', before=(SUBMIT_BAD,)),
        c("worker", "--parallel", "0", code=2),
    ],
    "completion": [
        c("completion", "bash", code=0, says="complete -o default"),
        c("completion", "csh", code=2, says="csh"),
    ],
    "metrics": [
        c("metrics", code=0, says="fleetlog_"),
        c("--journal", "absent.db", "metrics", code=2, says="no journal"),
    ],
    "demo": [c("demo", "--dir", "full", code=2, says="full")],
    "machines list": [c("machines", "list", code=0, says="kvm_host")],
    "machines show": [
        c("machines", "show", "rs", code=0, says="plain"),
        c("machines", "show", "rsx", code=2, says="did you mean 'rs'"),
    ],
    "machines check": [
        c("machines", "check", "m/rs.fsm", code=0),
        c("machines", "check", "broken.fsm", code=2),
    ],
    "graph": [c("graph", "rs", code=0, says="plain"), c("graph", "rsx", code=2)],
    "inventory load": [
        c("inventory", "load", "inv.toml", code=0, says="created"),
        c("inventory", "load", "broken.toml", code=2),
    ],
    "backend show": [c("backend", "show", code=0, says="bound to sim")],
    "backend set": [
        c("backend", "set", "local", "--reason", "moving", code=0),
        c("backend", "set", "nowhere", "--reason", "x", code=2, says="unknown backend"),
    ],
    "rehearse": [
        c("rehearse", "plain", "rs/r2", code=0),
        c("rehearse", "plian", "rs/r2", code=2, says="did you mean 'plain'?"),
    ],
    "sim explore": [
        c("sim", "explore", "plain", "rs/r2", "--runs", "5", "--seed", "1", code=0),
        c("sim", "explore", "plian", "rs/r2", code=2, says="did you mean 'plain'?"),
        c("sim", "explore", "plain", "rs/r2", "--faults", "meteor", code=2, says="meteor"),
    ],
    "sim init": [
        c("sim", "init", code=0),
        c("sim", "init", "--from-inventory", "absent.toml", code=2, says="absent.toml"),
    ],
    "sim show": [c("sim", "show", code=0), c("sim", "show", "nohost", code=2, says="nohost")],
    "sim log": [c("sim", "log", code=0), c("sim", "log", "--last", "0", code=2)],
    "sim fault add": [
        c("sim", "fault", "add", "fail", "--tool", "counter", code=0),
        c("sim", "fault", "add", "nonsense", code=2, says="nonsense"),
    ],
    "sim fault list": [c("sim", "fault", "list", code=0)],
    "sim fault clear": [
        c("sim", "fault", "clear", code=0),
        c("sim", "fault", "clear", "99", code=2, says="no fault 99"),
    ],
    "provisioner export": [c("provisioner", "export", "component/none", code=2)],
    "provisioner stage": [c("provisioner", "stage", "component/none", "config", code=2)],
    "provisioner check-idempotent": [
        c("provisioner", "check-idempotent", "component/none", "config", code=2)
    ],
}


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of ``fleetlog --help``, pack commands included."""
    found: list[tuple[str, ...]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        if path:
            found.append(path)
        for name, sub in sorted((getattr(command, "commands", None) or {}).items()):
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


def leaves() -> list[str]:
    paths = command_paths()
    return sorted(" ".join(p) for p in paths if not any(q[: len(p)] == p != q for q in paths))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("exit-codes")
    (root / "m").mkdir()
    (root / "m" / "rs.fsm").write_text(RS)
    (root / "broken.fsm").write_text(BAD_FSM)
    (root / "inv.toml").write_text('[kvm_host.n5]\nhost = "n5"\n')
    (root / "broken.toml").write_text("[kvm_host.n6\n")
    (root / "empty.jsonl").write_text("")
    (root / "bad.jsonl").write_text("{not json\n")
    (root / "full").mkdir()
    (root / "full" / "keep").write_text("x")
    env = {"FLEETLOG_MACHINES": str(root / "m"), "FLEETLOG_JOURNAL": str(root / "j.db")}

    def ok(*args: str, code: int = 0, **extra: str) -> None:
        res = run(*args, cwd=root, env={**env, **extra})
        assert res.returncode == code, (args, res.stdout, res.stderr)

    for name in ("rs/r1", "rs/r2", "rs/r3"):
        ok("add", name)
    ok("add", "kvm_host/n1", "-p", "host=n1")
    # Killed after s2's step.started: s2 is in doubt, and not idempotent.
    ok("fire", "rs/r3", "plain", code=-9, FLEETLOG_TEST_CRASH_AFTER_EVENTS="5")
    ok("resume", "--all", code=3)
    ok("export", "-o", "all.jsonl")
    yield root


@pytest.fixture
def site(template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "site"
    shutil.copytree(template, root)
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLEETLOG_MACHINES", str(root / "m"))
    monkeypatch.setenv("FLEETLOG_JOURNAL", str(root / "j.db"))
    monkeypatch.chdir(root)
    return root


def fleetlog(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err and "internal error" not in out + err, err
    return code, out, err


def test_every_command_has_exit_code_cases() -> None:
    """A new command gets rows in CASES: what it exits on success and on bad input."""
    missing = [name for name in leaves() if name not in CASES]
    assert not missing, f"add exit-code cases for: {missing}"
    gone = [name for name in CASES if name not in leaves()]
    assert not gone, f"cases for commands that no longer exist: {gone}"


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(case, id=f"{name}:{' '.join(case.args)}")
        for name, cs in CASES.items()
        for case in cs
    ],
)
def test_exit_code(case: Case, site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for before in case.before:
        assert fleetlog(capsys, *before)[0] == 0, before
    code, out, err = fleetlog(capsys, *case.args)
    assert code == case.code, (out, err)
    assert case.says in out + err
    if code == 2:  # a usage error says what, in one line (click's own: its usage lines)
        assert err.strip(), out


@pytest.mark.parametrize("path", [" ".join(p) for p in command_paths()])
@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_every_command_takes_h_for_help(
    path: str, flag: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = fleetlog(capsys, *path.split(), flag)
    assert code == 0
    assert out.startswith(f"Usage: fleetlog {path} ")


@pytest.mark.parametrize("path", [" ".join(p) for p in command_paths()])
def test_an_unknown_option_is_a_usage_error(
    path: str, site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = fleetlog(capsys, *path.split(), "--no-such-option")
    assert code == 2
    assert "No such option: --no-such-option" in err and not out


def test_version(site: Path) -> None:
    from fleetlog import __version__

    res = run("--version", cwd=site)
    assert (res.returncode, res.stdout, res.stderr) == (0, f"fleetlog {__version__}\n", "")


def test_command_id_names_one_request(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same id and request: the first result, nothing run again. Another request
    under it: refused, naming the original, nothing journaled."""
    code, out, _ = fleetlog(capsys, "fire", "rs/r1", "plain", "--command-id", "c1")
    assert code == 0 and "completed" in out
    _, head, _ = fleetlog(capsys, "verify")
    code, again, _ = fleetlog(capsys, "fire", "rs/r1", "plain", "--command-id", "c1")
    assert (code, again) == (0, out)
    for other in (
        ("fire", "rs/r2", "plain"),
        ("fire", "rs/r1", "bad"),
        ("fire", "rs/r1", "plain", "-p", "host=h2"),
        ("fire", "rs/r2", "plain", "--submit"),
    ):
        code, _, err = fleetlog(capsys, *other, "--command-id", "c1")
        assert code == 2, (other, err)
        assert "command id c1 was already used" in err and "`plain` on rs/r1" in err, err
    assert fleetlog(capsys, "verify")[1] == head  # nothing journaled
    code, out, _ = fleetlog(capsys, "fire", "rs/r2", "plain", "--submit", "--command-id", "c2")
    assert code == 0
    code, again, _ = fleetlog(capsys, "fire", "rs/r2", "plain", "--submit", "--command-id", "c2")
    assert (code, again) == (0, out)
    code, _, err = fleetlog(capsys, "fire", "rs/r2", "bad", "--submit", "--command-id", "c2")
    assert code == 2 and "`plain` on rs/r2" in err


def test_a_param_repeated_with_one_value_is_no_conflict(
    site: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = fleetlog(capsys, "add", "kvm_host/n2", "-p", "host=a", "--param", "host=a")
    assert code == 0, err
    code, _, err = fleetlog(capsys, "add", "kvm_host/n3", "-p", "host=a", "-p", "host=a=b")
    assert code == 2 and "kvm_host/n3: parameter 'host': given twice, as 'a' and as 'a=b'" in err
