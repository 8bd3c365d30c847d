"""Environment faults are not integrity failures (DESIGN: the journal).

Disk full, read-only media, permission denied, a directory or a missing directory given
as a path: one clear line, exit 1 (2 for a path the operator got wrong), nothing
half-written, and the journal opens normally once the cause is gone. Reading commands
open the journal read-only and never create or change a file. Every scenario runs the
real ``fleetlog`` executable against real file systems: a tiny tmpfs filled by a filler
file, a tmpfs remounted read-only, a process without root's file-mode override.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.engine.cli.clirun import fleetlog_cmd
from tests.mounts import UNPRIVILEGED, Mounts, fill, mounts, require_root, tree

NODE = """
machine fnode {
    param host: str = "rack1"
    initial state down
    state up
    transition boot : down -> up {
        step mark  run "touch_flag {name}" idempotent
        step count run "counter {name}"
    }
}
"""


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("fleetlog: error:")]


class Ops:
    """``fleetlog`` in a child process, with the journal at ``journal`` and the kinds and
    the simulated world kept off the file system under test."""

    def __init__(self, root: Path, journal: Path) -> None:
        self.root = root
        self.journal = journal
        machines = root / "machines"
        machines.mkdir(exist_ok=True)
        (machines / "fnode.fsm").write_text(NODE)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
        self.env.update(
            FLEETLOG_MACHINES=str(machines),
            FLEETLOG_SIM_WORLD=str(root / "world.sim"),
            FLEETLOG_JOURNAL=str(journal),
        )

    def __call__(self, *args: str, prefix: list[str] | None = None) -> Result:
        proc = subprocess.run(
            [*(prefix or []), *fleetlog_cmd(), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert "Traceback" not in proc.stderr, proc.stderr
        assert "internal error" not in proc.stderr, proc.stderr
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def ok(self, *args: str) -> Result:
        res = self(*args)
        assert res.code == 0, (args, res.err)
        return res

    def nodes(self, n: int) -> None:
        (self.root / "nodes.toml").write_text(f'[fnode."n[1-{n}]"]\n')
        self.ok("inventory", "load", str(self.root / "nodes.toml"))


def committed(journal: Path) -> list[tuple[int, str, str]]:
    """(seq, type, hash) of every event, read by SQLite itself, read-only."""
    uri = f"file:{urllib.parse.quote(str(journal))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True)
    try:
        return [
            (int(s), str(t), str(h))
            for s, t, h in conn.execute("SELECT seq, type, hash FROM events ORDER BY seq")
        ]
    finally:
        conn.close()


@pytest.fixture
def disks(tmp_path: Path) -> Iterator[Mounts]:
    with mounts(tmp_path / "mnt") as m:
        yield m


def _one_error(res: Result, *words: str) -> str:
    assert len(res.errors) == 1, res.err
    line = res.errors[0]
    for w in words:
        assert w in line, line
    return line


# -- disk full ----------------------------------------------------------------------------


def test_disk_full_during_a_fan_out_exits_1_and_the_journal_recovers(
    disks: Mounts, tmp_path: Path
) -> None:
    disk = disks.tmpfs("disk", "8m")
    journal = disk / "j.db"
    ops = Ops(tmp_path, journal)
    ops.nodes(60)
    filler = fill(disk, leave=256 * 1024)

    res = ops("fire", "fnode/n[1-60]", "boot", "--parallel", "4")
    assert res.code == 1, res.err
    _one_error(res, f"disk full writing {journal}")

    # Its closing checkpoint ran out of disk midway: the file's header already counts
    # pages that are only in the WAL (before the fix: exit 4, "the file is truncated").
    data = journal.read_bytes()
    assert len(data) < int.from_bytes(data[28:32], "big") * int.from_bytes(data[16:18], "big")
    before = committed(journal)  # what SQLite reads back right after the failure
    types = [t for _, t, _ in before]
    assert "plan.started" in types and "step.started" in types  # it failed mid-run
    filler.unlink()

    verified = ops.ok("verify")
    assert f"ok: {len(before)} events" in verified.out
    exported = [json.loads(line) for line in ops.ok("export").out.splitlines()]
    assert [(e["seq"], e["type"], e["hash"]) for e in exported] == before

    # The next command just works: no manual repair, nothing lost.
    nxt = ops("resume", "--all")
    assert nxt.code in (0, 3), nxt.err  # 3: a step in doubt needs attention
    after = committed(journal)
    assert after[: len(before)] == before and len(after) > len(before)
    ops.ok("verify")
    status = ops("status", "--json")
    assert status.code == (3 if nxt.code == 3 else 0), status.err  # 3: still needs attention
    assert len(json.loads(status.out)) == 60


def test_disk_full_when_creating_a_journal_leaves_no_file(disks: Mounts, tmp_path: Path) -> None:
    disk = disks.tmpfs("disk", "1m")
    fill(disk, leave=0)
    ops = Ops(tmp_path, disk / "j.db")
    res = ops("add", "fnode/n1")
    assert res.code == 1
    _one_error(res, "disk full", str(disk / "j.db"))
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_import_onto_a_full_disk_imports_nothing_and_can_be_rerun(
    disks: Mounts, tmp_path: Path
) -> None:
    source = Ops(tmp_path, tmp_path / "source.db")
    source.nodes(40)
    dump = tmp_path / "dump.jsonl"
    source.ok("export", "-o", str(dump))
    disk = disks.tmpfs("disk", "2m")
    journal = disk / "j.db"
    ops = Ops(tmp_path, journal)
    (tmp_path / "nothing.jsonl").write_text("")
    ops.ok("import", str(tmp_path / "nothing.jsonl"))  # an empty journal
    filler = fill(disk, leave=64 * 1024)
    res = ops("import", str(dump))
    assert res.code == 1, res.err
    _one_error(res, f"disk full writing {journal}")
    assert committed(journal) == []  # one transaction: all or nothing
    filler.unlink()
    ops.ok("import", str(dump))
    assert committed(journal) == committed(tmp_path / "source.db")


# -- read-only media ----------------------------------------------------------------------


def _leave_wal(ops: Ops, name: str) -> None:
    """A process that commits a resource and exits without closing the journal: its WAL
    (with the committed frames) and shared-memory file stay, as after a crash."""
    code = (
        "import os\n"
        "from fleetlog.engine.model import load_registry\n"
        "from fleetlog.engine.ops import create_resource\n"
        "from fleetlog.journal import open_journal\n"
        f"j = open_journal({str(ops.journal)!r})\n"
        f"create_resource(j, load_registry(), {name!r}, {{}})\n"
        "os._exit(0)\n"
    )
    subprocess.run([sys.executable, "-c", code], env=ops.env, check=True, timeout=120)


@pytest.mark.parametrize("wal", ["none", "wal+shm", "wal-only"])
def test_a_journal_on_read_only_media_is_read_and_never_written(
    disks: Mounts, tmp_path: Path, wal: str
) -> None:
    media = disks.tmpfs("media", "8m")
    journal = media / "j.db"
    ops = Ops(tmp_path, journal)
    ops.nodes(3)
    ops.ok("fire", "fnode/n1", "boot")
    if wal != "none":
        _leave_wal(ops, "fnode/late")
        assert Path(f"{journal}-wal").stat().st_size > 0
    expected = {
        "status": ops.ok("status", "--json").out,
        "history": ops.ok("history", "fnode/n1", "--json").out,
        "verify": ops.ok("verify").out,
    }
    exported = committed(journal)
    if wal == "wal-only":  # as if copied without it: the WAL must still be read
        Path(f"{journal}-shm").unlink()
    disks.read_only(media)
    files = tree(media)

    status = ops.ok("status", "--json")
    assert status.out == expected["status"]
    ids = {row["id"] for row in json.loads(status.out)}
    assert ("fnode/late" in ids) == (wal != "none")  # committed WAL frames are read
    assert ops.ok("history", "fnode/n1", "--json").out == expected["history"]
    assert ops.ok("verify").out == expected["verify"]
    lines = ops.ok("export").out.splitlines()
    assert [(e["seq"], e["type"], e["hash"]) for e in map(json.loads, lines)] == exported
    out = tmp_path / "out.jsonl"
    ops.ok("export", "-o", str(out))
    assert out.read_text().splitlines() == lines
    ops.ok("replay")
    ops.ok("audit")

    for args in (["add", "fnode/n9"], ["fire", "fnode/n2", "boot"]):
        res = ops(*args)
        assert res.code == 1, (args, res.err)
        _one_error(res, "read-only file system", str(journal))
    assert tree(media) == files


# -- permissions, directories, missing and empty journals ---------------------------------


def test_permission_denied_is_one_line_exit_1(tmp_path: Path) -> None:
    require_root()
    locked = tmp_path / "locked"
    locked.mkdir()
    journal = locked / "j.db"
    ops = Ops(tmp_path, journal)
    ops.nodes(2)
    locked.chmod(0)
    try:
        for args in (["status"], ["verify"], ["add", "fnode/n9"]):
            res = ops(*args, prefix=UNPRIVILEGED)
            assert res.code == 1, (args, res.err)
            _one_error(res, "permission denied", str(journal))
    finally:
        locked.chmod(0o700)
    journal.chmod(0)
    try:
        for args in (["status"], ["add", "fnode/n9"]):
            res = ops(*args, prefix=UNPRIVILEGED)
            assert res.code == 1, (args, res.err)
            _one_error(res, "permission denied", str(journal))
    finally:
        journal.chmod(0o600)
    # A directory it may not write: reading works (and creates nothing), writing is refused.
    listing = sorted(p.name for p in locked.iterdir())
    locked.chmod(0o500)
    try:
        assert ops("status", "--json", prefix=UNPRIVILEGED).code == 0
        res = ops("add", "fnode/n9", prefix=UNPRIVILEGED)
        assert res.code == 1
        _one_error(res, "permission denied")
    finally:
        locked.chmod(0o700)
    assert sorted(p.name for p in locked.iterdir()) == listing
    ops.ok("verify")


@pytest.mark.parametrize(
    "args",
    [["status"], ["verify"], ["history", "fnode/n1"], ["add", "fnode/n1"], ["export"]],
    ids=lambda a: a[0],
)
def test_a_directory_as_the_journal_is_a_usage_error(tmp_path: Path, args: list[str]) -> None:
    d = tmp_path / "somedir"
    d.mkdir()
    res = Ops(tmp_path, d)(*args)
    assert res.code == 2, res.err
    _one_error(res, str(d), "is a directory")
    assert list(d.iterdir()) == []


def test_a_journal_in_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    journal = tmp_path / "no" / "such" / "j.db"
    res = Ops(tmp_path, journal)("add", "fnode/n1")
    assert res.code == 2, res.err
    _one_error(res, str(journal), "no such directory")
    assert not (tmp_path / "no").exists()


READERS = [
    ["status"],
    ["history", "fnode/n1"],
    ["replay"],
    ["verify"],
    ["export"],
    ["audit"],
    ["graph", "fnode", "--highlight", "fnode/n1"],
    ["backend", "show"],
]


@pytest.mark.parametrize("args", READERS, ids=lambda a: "-".join(a[:2]))
@pytest.mark.parametrize("state", ["missing", "empty"])
def test_reading_commands_create_no_journal(tmp_path: Path, args: list[str], state: str) -> None:
    journal = tmp_path / "here" / "j.db"
    journal.parent.mkdir()
    if state == "empty":
        journal.touch(mode=0o600)
    res = Ops(tmp_path, journal)(*args)
    assert res.code == 2, res.err
    _one_error(res, str(journal))
    assert sorted(p.name for p in journal.parent.iterdir()) == (
        ["j.db"] if state == "empty" else []
    )
    if state == "empty":
        assert journal.stat().st_size == 0


def test_reading_a_journal_changes_no_byte_of_it(tmp_path: Path) -> None:
    journal = tmp_path / "j.db"
    ops = Ops(tmp_path, journal)
    ops.nodes(3)
    ops.ok("fire", "fnode/n[1-3]", "boot")
    before = journal.read_bytes()
    listing = sorted(p.name for p in tmp_path.iterdir())
    assert "j.db-wal" not in listing
    for args in READERS:
        ops.ok(*args)
    assert journal.read_bytes() == before
    # SQLite's -wal and -shm, made by reading, are gone again.
    assert sorted(p.name for p in tmp_path.iterdir()) == listing


# -- output files -------------------------------------------------------------------------

OUTPUTS = [
    ["graph", "fnode", "-o"],
    ["export", "-o"],
    ["audit", "--html"],
    ["provisioner", "export", "fnode/n1", "-o"],
]


@pytest.fixture
def ready(tmp_path: Path) -> Ops:
    ops = Ops(tmp_path, tmp_path / "j.db")
    ops.nodes(2)
    return ops


@pytest.mark.parametrize("args", OUTPUTS, ids=lambda a: a[0])
@pytest.mark.parametrize("where", ["missing-dir", "a-directory", "under-a-file"])
def test_a_bad_output_path_is_a_usage_error_before_any_work(
    ready: Ops, tmp_path: Path, args: list[str], where: str
) -> None:
    target = {
        "missing-dir": tmp_path / "missing" / "dir" / "x.out",
        "a-directory": tmp_path,
        "under-a-file": tmp_path / "nodes.toml" / "x.out",
    }[where]
    before = tree(tmp_path / "machines"), (tmp_path / "j.db").read_bytes()
    res = ready(*args, str(target))
    assert res.code == 2, res.err
    _one_error(res, str(target))
    assert res.out == ""
    assert (tree(tmp_path / "machines"), (tmp_path / "j.db").read_bytes()) == before
    assert not (tmp_path / "missing").exists()


def test_output_to_read_only_media_is_a_usage_error(
    disks: Mounts, ready: Ops, tmp_path: Path
) -> None:
    media = disks.tmpfs("media", "1m")
    disks.read_only(media)
    res = ready("export", "-o", str(media / "x.jsonl"))
    assert res.code == 2
    _one_error(res, str(media / "x.jsonl"), "read-only file system")


def test_output_to_a_full_disk_leaves_nothing_half_written(
    disks: Mounts, ready: Ops, tmp_path: Path
) -> None:
    for i in range(30):  # an export bigger than the space left
        ready.ok("add", f"fnode/x{i}")
    disk = disks.tmpfs("disk", "1m")
    fill(disk, leave=4096)
    res = ready("export", "-o", str(disk / "x.jsonl"))
    assert res.code == 1
    _one_error(res, "disk full", str(disk / "x.jsonl"))
    assert sorted(p.name for p in disk.iterdir()) == ["filler"]


def test_new_journals_are_still_private(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        Ops(tmp_path, tmp_path / "j.db").nodes(1)
    finally:
        os.umask(old)
    assert (tmp_path / "j.db").stat().st_mode & 0o777 == 0o600
