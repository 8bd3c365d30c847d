"""Fuzzing inventories: a hostile TOML file is loaded or refused (exit 2, one line, the
journal unchanged), never an internal error.

Hypothesis writes inventories with tables of real and misspelt kinds, keys that are
names, node sets (some far over the cap, some with groups or wildcards), over-long
names and control characters, and parameters of every TOML type — strings with NUL,
ESC, lone surrogates, placeholders, node sets for ``list[ref]`` params; integers past
64 bits; NaN and infinities; dates; arrays; inline tables — plus ``[defaults.KIND]``,
arrays of tables, the Exascale cluster's hook, and raw bytes spliced into the text. Each
is loaded in-process with ``fleetlog inventory load`` into one journal (a fresh one every
few hundred files).

5,000 inventories per run under the default ``fuzz-ci`` profile, derandomized;
``FLEETLOG_FUZZ=fuzz-quick`` for a fast local loop, ``fuzz-deep`` to dig.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import re
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

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
#: A fresh journal every so many files, so loads stay cheap as resources pile up.
FILES_PER_JOURNAL = 250

_BARE = re.compile(r"[A-Za-z0-9_-]+")
CONTROL = [*"\x00\x01\x07\x1b\x7f\x85\x9b\t\n\r", "\u202e", "\u2028", "\ufeff", "\ud800"]

KINDS = ["kvm_host", "vm", "cell", "exascale_cluster", "diskless_image", "component"]
PARAMS = {
    "kvm_host": ["host", "egs", "cloud", "trust_node", "cellinit_ip"],
    "vm": ["host", "storage", "image"],
    "cell": ["host", "leader", "egs", "min_hc_gb", "cluster"],
    "exascale_cluster": ["cells", "hosts", "leader", "egs_hosts", "db_wallet"],
    "diskless_image": ["host", "tag", "nodes", "iscsi_servers"],
    "component": ["component", "cdf"],
}

TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            "n1",
            "node1",
            "cell1",
            "kvm_host/n1",
            "{name}",
            "{index}",
            "10.0.0.{index}",
            "{nam}",
            "{{",
            "}}",
            "{\x1b}",
            "a\x00b",
            "\x1b[31mred",
            "\ud800",
            "cell[1-3]",
            "cell[1-3],cell2",
            "node[1-2]",
            "cell[1-99999999]",
            "x[1-99999999999]",
            "@all",
            "*",
            "asm",
            "exascale",
            "true",
            "maybe",
            "9" * 30,
            "a" * 254,
            "x" * 70000,
        ]
    ),
    st.text(alphabet=st.sampled_from(CONTROL + list("abn019[]-,{}/@* é")), max_size=16),
    st.text(max_size=8),
)

NODESET = st.builds(
    lambda prefix, a, b: f"{prefix}[{a}-{b}]",
    st.sampled_from(["node", "cell", "n", "g", "exa"]),
    st.integers(0, 12),
    st.integers(0, 12) | st.integers(0, 10**12),
)
TABLE_KEY = st.one_of(
    st.sampled_from(["node1", "n1", "cell1", "exa", "g1", "node[1-3]", "a.b", "-x", "@g", "n*"]),
    NODESET,
    TEXT,
    st.builds(lambda c, n: c * n, st.sampled_from(["a", "é"]), st.integers(120, 260)),
)


_ESCAPED = re.compile(r'["\\\x00-\x1f\x7f\ud800-\udfff]')


def _escape(m: re.Match[str]) -> str:
    c = m.group(0)
    # A surrogate as \uD800: TOML refuses it, as it should.
    return "\\" + c if c in '"\\' else f"\\u{ord(c):04X}"


def _quote(text: str) -> str:
    """A TOML basic string (control characters and quotes escaped as TOML wants)."""
    return '"' + _ESCAPED.sub(_escape, text) + '"'


def key(text: str) -> str:
    return text if _BARE.fullmatch(text) else _quote(text)


def _float(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return repr(x) if "." in repr(x) or "e" in repr(x) else repr(x) + ".0"


SCALAR = st.one_of(
    TEXT.map(_quote),
    st.integers(-(10**25), 10**25).map(str),
    st.floats().map(_float),
    st.sampled_from(["true", "false", "1e400", "1979-05-27T07:32:00Z", "1979-05-27", "07:32:00"]),
)
VALUE = st.one_of(
    SCALAR,
    st.lists(SCALAR, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.lists(TEXT.map(_quote), max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
    st.dictionaries(st.sampled_from(["a", "host"]), SCALAR, max_size=2).map(
        lambda d: "{" + ", ".join(f"{k} = {v}" for k, v in d.items()) + "}"
    ),
)


KIND = st.sampled_from(KINDS) | st.sampled_from(["kvm_hots", "defaults"]) | TEXT
#: Each kind's parameter names (and misspelt or hostile ones), built once: strategies
#: built inside the composite cost more than the loads.
PARAM_NAMES = {
    kind: st.lists(
        st.sampled_from(PARAMS.get(kind, ["host"])) | st.sampled_from(["clod", "x.y"]) | TEXT,
        max_size=3,
        unique=True,
    )
    for kind in [*KINDS, None]
}


@st.composite
def inventories(draw: st.DrawFn) -> bytes:
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 3))):
        kind = draw(KIND)
        shape = draw(st.integers(0, 9))
        if shape == 0:
            lines.append(f"[defaults.{key(kind)}]")
        elif shape == 1:
            lines.append(f"[[{key(kind)}.{key(draw(TABLE_KEY))}]]")
        elif shape == 2:
            lines.append(f"{key(kind)} = {draw(VALUE)}")
            continue
        else:
            lines.append(f"[{key(kind)}.{key(draw(TABLE_KEY))}]")
        for name in draw(PARAM_NAMES.get(kind, PARAM_NAMES[None])):
            lines.append(f"{key(name)} = {draw(VALUE)}")
    text = "\n".join(lines) + "\n"
    if draw(st.integers(0, 9)) == 0:  # raw bytes spliced in: TOML refuses most of them
        at = draw(st.integers(0, len(text)))
        junk = draw(st.sampled_from(["\x00", "\x1b[2J", "\ufeff", '"', "[", "\udcff", "\r"]))
        text = text[:at] + junk + text[at:]
    if draw(st.integers(0, 19)) == 0:
        text = "\ufeff" + text  # a byte-order mark is accepted
    return text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def registry() -> KindRegistry:
    return load_registry()


def _head(path: Path) -> int:
    """The journal's last seq, read with sqlite3 itself (opening a journal costs more)."""
    if not path.exists():
        return 0
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        (head,) = conn.execute("SELECT coalesce(max(seq), 0) FROM events").fetchone()
        return int(head)
    finally:
        conn.close()


def test_hostile_inventories_are_loaded_or_refused_never_an_internal_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, registry: KindRegistry
) -> None:
    for var in ("FLEETLOG_JOURNAL", "FLEETLOG_MACHINES", "FLEETLOG_BACKEND", "FLEETLOG_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    # Every node set under the cap is created, one append per resource: a low cap keeps
    # each file cheap (the cap itself is tested in tests/test_limits.py).
    monkeypatch.setenv("FLEETLOG_MAX_NODESET", "64")
    monkeypatch.setattr("fleetlog.engine.model.load_registry", lambda: registry)
    inventory = tmp_path / "inv.toml"
    state: dict[str, Any] = {"files": 0, "codes": {}, "head": 0}

    @FUZZ
    @given(inventories())
    def fuzz(data: bytes) -> None:
        if state["files"] % FILES_PER_JOURNAL == 0:
            state["head"] = 0
        journal = tmp_path / f"j{state['files'] // FILES_PER_JOURNAL}.db"
        state["files"] += 1
        inventory.write_bytes(data)
        before = state["head"]
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["--journal", str(journal), "inventory", "load", str(inventory)])
        text = out.getvalue() + err.getvalue()
        state["codes"][code] = state["codes"].get(code, 0) + 1
        assert code in (0, 2), (data, code, text)
        assert "Traceback" not in text and "internal error" not in text, (data, text)
        assert "\x1b" not in text and "\x00" not in text, (data, text)
        state["head"] = _head(journal)
        if code == 2:
            errors = [line for line in err.getvalue().splitlines() if "error:" in line]
            assert len(errors) == 1, text
            assert state["head"] == before, (data, text)  # refused: nothing journaled

    fuzz()
    assert state["codes"].get(0) and state["codes"].get(2), state["codes"]


def test_the_ci_profile_loads_at_least_5000_inventories() -> None:
    assert PROFILES["fuzz-ci"] >= 5000
