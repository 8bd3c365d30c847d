"""Fuzzing the command line: hostile arguments never end in an internal error.

Hypothesis builds command lines for the reading commands and the cheap writing ones
(``add``, ``fire --dry-run|--submit``, ``resolve --no-run``, ``ingest``, ``import`` into
a journal that is not empty, ``reconcile --read-only``) with hostile values in every
place — NUL and other control characters, lone surrogates, bidi overrides, names around
the 253-byte cap, node sets far over the cap, seqs past SQLite's INTEGER, times that
overflow, NaN and infinities, option-looking words — and runs each in-process through
``fleetlog.engine.cli.main`` on one journal. Every run must exit with a contract code
(0-4), print neither a traceback nor "internal error", whose meaning is reserved for
real bugs, and never send a raw control character to the terminal.

5,000 command lines per run under the default ``fuzz-ci`` profile, derandomized so CI
is reproducible; ``FLEETLOG_FUZZ=fuzz-quick`` for a fast local loop, ``fuzz-deep`` to dig.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetlog.engine.backends import BACKENDS
from fleetlog.engine.cli import main
from fleetlog.engine.model import KindRegistry, load_registry

PROFILES = {"fuzz-quick": 500, "fuzz-ci": 5000, "fuzz-deep": 50000}
EXAMPLES = PROFILES[os.environ.get("FLEETLOG_FUZZ", "fuzz-ci")]
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

CONTRACT_CODES = {0, 1, 2, 3, 4}

#: Characters no input may hold, and a few that look like them but may.
CONTROL = [
    *"\x00\x01\x07\x08\t\n\r\x0b\x1b\x7f\x85\x9b",
    "\u200b",
    "\u200e",
    "\u202e",
    "\u2028",
    "\u2066",
    "\ufeff",
    "\udcff",
    "\ud800",
]
SYNTAX = [*"[]-,!&^@*?/:=%{}$'\"\\ .", "é", "日", "🙂", "0", "1", "9", "a", "n"]

INTERESTING = [
    "",
    " ",
    "-",
    "--",
    "-x",
    "--json",
    "0",
    "-1",
    "1",
    "007",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999",
    "9" * 400,
    "١٢٣",
    "²",
    "1e400",
    "nan",
    "inf",
    "-inf",
    "0.5",
    "1_000",
    "0001-01-01",
    "1969-12-31T23:59:59Z",
    "1970-01-01",
    "2026-11-25T14:02:00Z",
    "2026-11-25T14:02:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T23:59:59.999999+00:00",
    "yesterday",
    "0s",
    "250ms",
    "60s",
    "9999999999h",
    "1.5m",
    "kvm_host",
    "vm",
    "cell",
    "nope",
    "kvm_host/n1",
    "kvm_host/n[1-3]",
    "kvm_host/n[1-100000000]",
    "kvm_host/x[1-99999999999]",
    "kvm_host/a[1-100000]b[1-100000]",
    "kvm_host/n[1-3]!n2",
    "kvm_host/n[3-1]",
    "kvm_host/n[01-100]",
    "kvm_host/@*",
    "kvm_host/@@x",
    "kvm_host/*",
    "vm/g1",
    "vm/*",
    "a/b/c",
    "/n1",
    "kvm_host/",
    "validate",
    "retire",
    "create",
    "done",
    "retry",
    "abort",
    "host=n1",
    "host=",
    "=x",
    "egs=maybe",
    "cells=cell[1-20000000]",
    "cells=cell[1-3],cell2",
    "min_hc_gb=99999999999999999999",
    "storage=asm",
    "{name}",
    "{{",
    "%s%n",
    "$(id)",
    "x; rm -rf /",
    "a" * 253,
    "a" * 254,
    "é" * 127,
    "x" * 70000,
    "\x00",
    "a\x00b",
    "\x1b[31mred",
    "\x1b]0;title\x07",
    "\udcff",
    "\u202eevil",
    "\ufeffbom",
]


def hostile() -> st.SearchStrategy[str]:
    huge = st.integers(min_value=0, max_value=10**15)
    return st.one_of(
        st.sampled_from(INTERESTING),
        st.text(alphabet=st.sampled_from(CONTROL + SYNTAX), max_size=24),
        st.text(max_size=12),
        st.builds(
            lambda p, a, b: f"{p}[{a}-{b}]", st.sampled_from(["n", "x", "kvm_host/n"]), huge, huge
        ),
        st.integers(min_value=-(10**25), max_value=10**25).map(str),
        st.floats().map(str),
        st.builds(
            lambda d, zone: d.isoformat() + zone,
            st.datetimes(),
            st.sampled_from(["", "Z", "+00:00", "+14:00", "-14:00", "+23:59"]),
        ),
        st.builds(lambda c, n: c * n, st.sampled_from(["a", "é", "9"]), st.integers(240, 300)),
    )


H = hostile()
#: Plausible values too, so that commands get past the checks and run on their merits.
NAME = st.sampled_from(["n1", "n2", "g1", "n3", "cell1"]) | st.builds(
    lambda first, rest: first + rest,
    st.sampled_from("abcnx"),
    st.text(alphabet="abcn0123456789-_.", max_size=8),
)
KIND = st.sampled_from(["kvm_host", "vm", "cell", "exascale_cluster", "nope"]) | H
RESOURCE = st.builds(lambda k, n: f"{k}/{n}", KIND, NAME | H) | H
PATTERN = RESOURCE | KIND
PARAM_NAME = st.sampled_from(["host", "egs", "cells", "storage", "image", "min_hc_gb", "leader"])
ASSIGNMENT = st.builds(lambda k, v: f"{k}={v}", PARAM_NAME | H, NAME | H) | H
BACKEND_NAME = H.filter(lambda s: s not in BACKENDS)


def maybe(draw: st.DrawFn, *args: str) -> list[str]:
    return list(args) if draw(st.booleans()) else []


def option(draw: st.DrawFn, name: str, values: st.SearchStrategy[str] = H) -> list[str]:
    return [name, draw(values)] if draw(st.booleans()) else []


def json_flag(draw: st.DrawFn) -> list[str]:
    # Tables are drawn by rich, which costs more than the commands: mostly --json.
    return ["--json"] if draw(st.integers(0, 4)) else []


def params(draw: st.DrawFn) -> list[str]:
    out: list[str] = []
    for value in draw(st.lists(ASSIGNMENT, max_size=3)):
        out += [draw(st.sampled_from(["-p", "--param"])), value]
    return out


Template = Callable[[st.DrawFn, Path], list[str]]


def _ingest_file(draw: st.DrawFn, tmp: Path) -> str:
    lines = draw(
        st.lists(
            st.one_of(
                H,
                st.builds(
                    lambda r, s, t, i: json.dumps(
                        {"id": i, "resource": r, "status": s, "event_time": t}
                    ),
                    RESOURCE,
                    H,
                    H | st.floats() | st.integers(),
                    H,
                ),
            ),
            max_size=3,
        )
    )
    path = tmp / "messages.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8", errors="surrogatepass")
    return str(path)


TEMPLATES: list[Template] = [
    lambda d, t: ["status", *maybe(d, d(PATTERN)), *option(d, "--at"), *json_flag(d)],
    lambda d, t: ["status", "--plan", d(H), *json_flag(d)],
    lambda d, t: ["replay", *maybe(d, d(PATTERN)), *option(d, "--at"), *json_flag(d)],
    lambda d, t: ["history", d(RESOURCE), *json_flag(d)],
    lambda d, t: [
        "audit",
        *maybe(d, d(PATTERN)),
        *option(d, "--since"),
        *option(d, "--at"),
        *json_flag(d),
    ],
    lambda d, t: ["add", d(RESOURCE), *params(d), *json_flag(d)],
    lambda d, t: ["add", f"kvm_host/{d(NAME)}", "-p", f"host={d(NAME | H)}", *params(d)],
    lambda d, t: [
        "fire",
        d(PATTERN),
        d(st.sampled_from(["validate", "retire", "create", "reset"]) | H),
        *params(d),
        d(st.sampled_from(["--dry-run", "--submit"])),
        *option(d, "--parallel"),
        *option(d, "--max-fail"),
        *option(d, "--command-id"),
        *json_flag(d),
    ],
    lambda d, t: [
        "fire",
        d(st.sampled_from(["kvm_host/n1", "kvm_host/n[1-2]", "vm/g1", "kvm_host", "kvm_host/*"])),
        d(st.sampled_from(["validate", "retire", "configure_exascale", "create", "reset"])),
        *params(d),
        d(st.sampled_from(["--dry-run", "--submit"])),
        *json_flag(d),
    ],
    lambda d, t: ["resume", d(PATTERN), *json_flag(d)],
    lambda d, t: ["resume", "--plan", d(H), *json_flag(d)],
    lambda d, t: [
        "resolve",
        d(RESOURCE),
        "--step",
        d(H),
        "--as",
        d(st.sampled_from(["done", "retry", "abort"]) | H),
        "--reason",
        d(H),
        "--no-run",
    ],
    lambda d, t: [
        "reconcile",
        *maybe(d, d(PATTERN)),
        "--read-only",
        *option(d, "--now"),
        *option(d, "--limit"),
        *option(d, "--max-fix-share"),
        *(["--every", d(H), "--passes", "1"] if d(st.booleans()) else []),
        *json_flag(d),
    ],
    lambda d, t: ["machines", "show", d(KIND), *json_flag(d)],
    lambda d, t: ["machines", "check", d(H)],
    lambda d, t: ["graph", d(KIND), *option(d, "--format"), *option(d, "--highlight", RESOURCE)],
    lambda d, t: ["backend", "set", d(BACKEND_NAME), "--reason", d(H)],
    lambda d, t: ["backend", "show", *json_flag(d)],
    lambda d, t: ["verify", "--json"],
    lambda d, t: ["ingest", _ingest_file(d, t), *maybe(d, "--skip-bad"), "--json"],
    lambda d, t: ["ingest", d(H)],
    lambda d, t: ["import", d(H)],
    lambda d, t: ["provisioner", "export", d(RESOURCE)],
    lambda d, t: [d(H), *d(st.lists(H, max_size=3))],
]
READING = ["status", "history", "verify", "audit", "replay"]


@st.composite
def command_lines(draw: st.DrawFn, tmp: Path) -> list[str]:
    """``[--journal J] [--backend B] COMMAND ARGS...``: a hostile journal path or
    backend only on reading commands, which never create a journal."""
    template = draw(st.sampled_from(TEMPLATES))
    argv = template(draw, tmp)
    if argv and argv[0] in READING and draw(st.integers(0, 9)) == 0:
        where = draw(st.sampled_from(["--journal", "--backend"]))
        value = draw(H.map(lambda s: "j-" + s) if where == "--journal" else BACKEND_NAME)
        argv = [where, value, *argv]
    return argv


@pytest.fixture(scope="module")
def registry() -> KindRegistry:
    return load_registry()


@contextlib.contextmanager
def _captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        yield out, err


def run(journal: Path, argv: list[str], stdin: str = "") -> tuple[int, str]:
    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)  # `ingest -`, `import -`
    try:
        with _captured() as (out, err):
            code = main(["--journal", str(journal), *argv])
    finally:
        sys.stdin = saved
    return code, out.getvalue() + err.getvalue()


def test_hostile_command_lines_never_end_in_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: KindRegistry
) -> None:
    for var in ("FLEETLOG_JOURNAL", "FLEETLOG_MACHINES", "FLEETLOG_BACKEND", "FLEETLOG_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("COLUMNS", "100")
    # Node sets under the cap are expanded, and a million names take seconds: a lower cap
    # keeps every run cheap (the cap itself is tested in tests/test_limits.py).
    monkeypatch.setenv("FLEETLOG_MAX_NODESET", "20000")
    monkeypatch.chdir(tmp_path)
    # Compiling the shipped machines is most of a command's cost in-process: once.
    monkeypatch.setattr("fleetlog.engine.model.load_registry", lambda: registry)
    journal = tmp_path / "j.db"
    for argv in (
        ["add", "kvm_host/n1", "-p", "host=n1"],
        ["add", "kvm_host/n2", "-p", "host=n2", "-p", "egs=true"],
        ["add", "vm/g1", "-p", "host=n1", "-p", "storage=asm"],
    ):
        assert run(journal, argv)[0] == 0
    seen: dict[int, int] = {}

    @FUZZ
    @given(command_lines(tmp_path))
    def fuzz(argv: list[str]) -> None:
        code, text = run(journal, argv)
        seen[code] = seen.get(code, 0) + 1
        assert code in CONTRACT_CODES, (argv, code, text)
        assert "Traceback" not in text, (argv, text)
        assert "internal error" not in text, (argv, text)
        assert "\x1b" not in text and "\x00" not in text, (argv, text)  # always escaped

    fuzz()
    # The fuzz reached past the argument checks: commands ran and failed on their merits.
    assert seen.get(0, 0) and seen.get(2, 0), seen


def test_the_ci_profile_runs_at_least_5000_command_lines() -> None:
    assert PROFILES["fuzz-ci"] >= 5000
