"""The compiled-spec cache: a hit is the spec the file compiles to, a changed file is
compiled again, an error is never cached, and a cache that cannot be trusted or read is
ignored rather than believed."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from fleetlog.dsl import DSLError, cache, compile_file

SOURCE = """\
machine lamp "A lamp" {
    initial state off
    state on
    transition switch_on : off -> on {
        step light run "echo on"
    }
}
"""


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    where = tmp_path / "cache"
    monkeypatch.setenv("FLEETLOG_CACHE_DIR", str(where))
    return where


def entries(where: Path) -> list[Path]:
    return sorted(where.glob("*.pickle")) if where.exists() else []


def test_a_hit_is_the_spec_the_file_compiles_to(tmp_path: Path, cache_dir: Path) -> None:
    fsm = tmp_path / "lamp.fsm"
    fsm.write_text(SOURCE)
    first, _ = cache.compile_file(fsm, plugins=[])
    assert len(entries(cache_dir)) == 1
    second, _ = cache.compile_file(fsm, plugins=[])
    assert second == first == compile_file(fsm, plugins=[])[0]
    assert stat.S_IMODE(cache_dir.stat().st_mode) == 0o700


def test_a_changed_file_is_compiled_again(tmp_path: Path, cache_dir: Path) -> None:
    fsm = tmp_path / "lamp.fsm"
    fsm.write_text(SOURCE)
    before, _ = cache.compile_file(fsm, plugins=[])
    fsm.write_text(SOURCE.replace('"echo on"', '"echo lit"'))
    after, _ = cache.compile_file(fsm, plugins=[])
    assert after.definition_hash != before.definition_hash
    assert len(entries(cache_dir)) == 2
    # other plugin names are another key too: a call checked against them may differ
    cache.compile_file(fsm, plugins=["some.plugin"])
    assert len(entries(cache_dir)) == 3


def test_an_error_is_never_cached(tmp_path: Path, cache_dir: Path) -> None:
    fsm = tmp_path / "bad.fsm"
    fsm.write_text(SOURCE.replace("-> on", "-> nowhere"))
    for _ in range(2):
        with pytest.raises(DSLError, match="nowhere"):
            cache.compile_file(fsm, plugins=[])
    assert entries(cache_dir) == []


def test_a_damaged_entry_is_compiled_over(tmp_path: Path, cache_dir: Path) -> None:
    fsm = tmp_path / "lamp.fsm"
    fsm.write_text(SOURCE)
    good, _ = cache.compile_file(fsm, plugins=[])
    (entry,) = entries(cache_dir)
    entry.write_bytes(b"\x80\x05not a pickle")
    again, _ = cache.compile_file(fsm, plugins=[])
    assert again == good
    assert entry.read_bytes().startswith(b"\x80")  # rewritten whole
    assert len(entry.read_bytes()) > 20


def test_an_entry_others_could_write_is_not_loaded(tmp_path: Path, cache_dir: Path) -> None:
    """Unpickling runs code: a group- or world-writable entry (or directory) is never
    read, whatever it holds."""
    fsm = tmp_path / "lamp.fsm"
    fsm.write_text(SOURCE)
    good, _ = cache.compile_file(fsm, plugins=[])
    (entry,) = entries(cache_dir)
    # An entry planted by someone else: a pickle that would run a command when loaded.
    marker = tmp_path / "pwned"
    planted = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, pickle, sys\n"
            "class P:\n"
            "    def __reduce__(self):\n"
            "        return (os.system, ('touch ' + sys.argv[1],))\n"
            "sys.stdout.buffer.write(pickle.dumps(P()))",
            str(marker),
        ],
        capture_output=True,
        check=True,
    ).stdout
    entry.write_bytes(planted)
    entry.chmod(0o666)
    assert cache.compile_file(fsm, plugins=[])[0] == good
    assert not marker.exists()
    entry.write_bytes(planted)
    entry.chmod(0o600)
    cache_dir.chmod(0o777)
    assert cache.compile_file(fsm, plugins=[])[0] == good
    assert not marker.exists()


def test_off_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLOG_CACHE_DIR", "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    fsm = tmp_path / "lamp.fsm"
    fsm.write_text(SOURCE)
    cache.compile_file(fsm, plugins=[])
    assert not (tmp_path / "xdg").exists()


def test_an_unwritable_cache_still_compiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    monkeypatch.setenv("FLEETLOG_CACHE_DIR", str(ro / "specs"))
    fsm = tmp_path / "lamp.fsm"
    fsm.write_text(SOURCE)
    try:
        spec, _ = cache.compile_file(fsm, plugins=[])
    finally:
        ro.chmod(0o700)
    assert spec.name == "lamp"


def test_concurrent_writers_leave_one_whole_entry(tmp_path: Path, cache_dir: Path) -> None:
    fsm = tmp_path / "lamp.fsm"
    fsm.write_text(SOURCE)
    code = (
        "import sys\nfrom fleetlog.dsl import cache\n"
        "spec, _ = cache.compile_file(sys.argv[1], plugins=[])\nprint(spec.definition_hash)"
    )
    env = {**os.environ, "FLEETLOG_CACHE_DIR": str(cache_dir)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", code, str(fsm)], stdout=subprocess.PIPE, text=True, env=env
        )
        for _ in range(6)
    ]
    hashes = {p.communicate()[0].strip() for p in procs}
    assert all(p.returncode == 0 for p in procs)
    assert len(hashes) == 1
    assert len(entries(cache_dir)) == 1
    assert not list(cache_dir.glob(".tmp-*"))


def test_a_warm_command_does_not_import_lark(tmp_path: Path) -> None:
    """The point of the cache: loading every shipped machine from it needs no parser."""
    env = {**os.environ, "FLEETLOG_CACHE_DIR": str(tmp_path / "cache")}
    code = (
        "import sys\nfrom fleetlog.engine.model import load_registry\n"
        "reg = load_registry()\nprint(len(reg.names), 'lark' in sys.modules)"
    )
    cold = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    warm = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    count, cold_lark = cold.stdout.split()
    assert int(count) >= 9 and cold_lark == "True"
    assert warm.stdout.split() == [count, "False"]
