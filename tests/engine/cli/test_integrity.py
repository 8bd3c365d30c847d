"""A journal that survives hostile environments, from the command line (docs/integrity.md).

Each damage an operator, a bug or an attacker can do to a journal file is made with plain
SQL around the append-only triggers (``tests.journal.damage``); then:

- writing commands (``add``, ``fire``) refuse with exit 4 and one line, run nothing, and
  leave the journal's bytes and the witness as they were;
- reading commands (``status``, ``history``, ``export``, ``audit``, ``replay``) show what
  the journal holds, warn in one line and exit 4;
- ``verify`` names it, exit 4.

Tail truncation and a rewritten (rehashed) history are seen even when the attacker also
rewinds the journal's own verified head: the witness, a file kept elsewhere, still holds
the heads. Steps run on the ``local`` backend, so "nothing ran" is a file that is absent.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fleetlog.engine.cli import main
from fleetlog.journal.canonical import canonical_json
from tests.engine.cli.clirun import run
from tests.journal.damage import (
    Raw,
    delete_rows,
    edit_payload,
    forge_snapshot,
    rehash,
    truncate_tail,
)

JOB = """
machine job {
    param host: str = "localhost"
    param dir: str
    initial state new
    state done
    transition go : new -> done {
        step touch run "touch {dir}/{name}"
    }
}
"""

ENV = (
    "FLEETLOG_JOURNAL",
    "FLEETLOG_MACHINES",
    "FLEETLOG_BACKEND",
    "FLEETLOG_WITNESS",
    "FLEETLOG_CHAIN_KEY",
    "FLEETLOG_CHAIN_KEY_FILE",
)
KEY = "a chain key of more than sixteen bytes"


@dataclass
class Site:
    """A journal (``j.db``), its witness (``w``) and the directory the ``job`` steps
    touch (``fx``): job/a fired (done), job/b and job/c new; 11 events."""

    root: Path
    fx: Path
    capsys: pytest.CaptureFixture[str]

    @property
    def journal(self) -> Path:
        return self.root / "j.db"

    @property
    def witness(self) -> Path:
        return self.root / "w"

    def cli(self, *args: str, witness: bool = True) -> tuple[int, str, str]:
        """``fleetlog --journal j.db [--witness w] ARGS`` in this process."""
        self.capsys.readouterr()
        globals_ = ["--journal", str(self.journal)]
        if witness:
            globals_ += ["--witness", str(self.witness)]
        code = main([*globals_, *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def fingerprint(self) -> tuple[str, str]:
        """sha256 of the journal file and of the witness (absent: empty)."""

        def digest(p: Path) -> str:
            return hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else ""

        return digest(self.journal), digest(self.witness)

    def events(self) -> list[tuple[int, str, str]]:
        conn = sqlite3.connect(self.journal)
        try:
            return list(conn.execute("SELECT seq, stream, type FROM events ORDER BY seq"))
        finally:
            conn.close()


def _build(root: Path, fx: Path) -> None:
    """The template journal: made once per module through the CLI itself."""
    args = ["--journal", str(root / "j.db"), "--witness", str(root / "w")]
    for name in "abc":
        assert main([*args, "add", f"job/{name}", "-p", f"dir={fx}"]) == 0
    assert main([*args, "--backend", "local", "fire", "job/a", "go"]) == 0


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    root = tmp_path_factory.mktemp("template")
    machines = root / "machines"
    machines.mkdir()
    (machines / "job.fsm").write_text(JOB)
    fx = root / "fx"
    fx.mkdir()
    saved = {var: os.environ.pop(var, None) for var in ENV}
    os.environ["FLEETLOG_MACHINES"] = str(machines)
    try:
        _build(root, fx)
        yield root, fx
    finally:
        for var, value in saved.items():
            if value is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = value


@pytest.fixture
def site(
    template: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Site:
    root, fx = template
    for var in ENV:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("FLEETLOG_MACHINES", str(root / "machines"))
    monkeypatch.chdir(tmp_path)
    shutil.copy(root / "j.db", tmp_path / "j.db")
    shutil.copy(root / "w", tmp_path / "w")
    assert not Path(str(root / "j.db") + "-wal").exists()
    s = Site(tmp_path, fx, capsys)
    assert [e[0] for e in s.events()] == list(range(1, 12))
    assert sorted(p.name for p in fx.iterdir()) == ["a"]
    return s


# -- the damage ------------------------------------------------------------------------------


def payload_edit(s: Site) -> None:
    """job/b's creation now says it lives elsewhere; its hash was left as it was."""
    with Raw(str(s.journal)) as raw:
        edit_payload(raw, 2, '/fx"', '/fy"')


def row_delete(s: Site) -> None:
    with Raw(str(s.journal)) as raw:
        delete_rows(raw, 6)


def tail_truncate(s: Site) -> None:
    with Raw(str(s.journal)) as raw:
        truncate_tail(raw, keep=8)


def tail_truncate_unseen(s: Site) -> None:
    """Truncated, and the journal's verified head moved back with it: the journal
    alone looks sound; the witness is what tells."""
    with Raw(str(s.journal)) as raw:
        truncate_tail(raw, keep=8, rewind_verified=True)


def rehashed(s: Site) -> None:
    """job/b's creation edited and every later hash recomputed, verified head included:
    the chain is sound in itself; the witness is what tells."""
    with Raw(str(s.journal)) as raw:
        rehash(raw, 2, lambda p: p.replace('/fx"', '/fy"'), fix_verified=True)


def forged_snapshot(s: Site) -> None:
    """The issue's forgery: a snapshot saying job/b is done, in the format snapshots had
    before they were sealed."""
    record = {
        "id": "job/b",
        "kind": "job",
        "name": "b",
        "state": "done",
        "params": {"host": "localhost", "dir": str(s.fx)},
        "version": 1,
        "last_seq": 2,
        "updated_at": "2030-01-01T00:00:00.000000Z",
        "in_progress": None,
        "attention": None,
        "observed": None,
        "observed_at": None,
    }
    with Raw(str(s.journal)) as raw:
        forge_snapshot(raw, "job/b", 1, canonical_json({"definition_hash": "x", "record": record}))


def foreign_file(s: Site) -> None:
    s.journal.unlink()
    conn = sqlite3.connect(s.journal)
    conn.execute("CREATE TABLE inventory (host TEXT)")
    conn.commit()
    conn.close()


def empty_file(s: Site) -> None:
    s.journal.write_bytes(b"")


DAMAGE: dict[str, Callable[[Site], None]] = {
    "payload-edit": payload_edit,
    "row-delete": row_delete,
    "tail-truncate": tail_truncate,
    "tail-truncate-and-verified-head": tail_truncate_unseen,
    "rehashed-chain": rehashed,
    "forged-snapshot": forged_snapshot,
    "foreign-sqlite-file": foreign_file,
    "empty-file": empty_file,
}
#: the first bad seq each damage is reported at (None: the file is refused as a whole)
BAD_SEQ = {
    "payload-edit": 2,
    "row-delete": 6,
    "tail-truncate": 9,
    "tail-truncate-and-verified-head": 9,
    "rehashed-chain": 2,  # the witness recorded seq 2 after `add job/b`
    "forged-snapshot": 2,
    "foreign-sqlite-file": None,
    "empty-file": 11,
}
WRITES = {
    "add": ["add", "job/d", "-p", "dir=/nowhere"],
    "fire": ["--backend", "local", "fire", "job/b", "go"],
}
READS = {
    "status": ["status"],
    "history": ["history", "job/a"],
    "export": ["export"],
    "audit": ["audit"],
    "replay": ["replay"],
}


def _message(name: str, line: str) -> None:
    if name == "foreign-sqlite-file":
        assert "is not a usable fleetlog journal" in line
    else:
        assert f"journal integrity failure at seq {BAD_SEQ[name]}" in line or (
            name == "empty-file" and "journal integrity failure: the journal file" in line
        ), line


@pytest.mark.parametrize("write", WRITES)
@pytest.mark.parametrize("name", DAMAGE)
def test_a_write_on_a_damaged_journal_is_refused_and_changes_nothing(
    site: Site, name: str, write: str
) -> None:
    DAMAGE[name](site)
    before = site.fingerprint()
    code, out, err = site.cli(*WRITES[write])
    assert code == 4, err
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("fleetlog: error: "), err
    _message(name, err)
    assert site.fingerprint() == before  # journal and witness byte for byte
    assert sorted(p.name for p in site.fx.iterdir()) == ["a"]  # job/b's step never ran


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize(
    "name", [n for n in DAMAGE if n not in ("foreign-sqlite-file", "empty-file")]
)
def test_a_read_on_a_damaged_journal_shows_what_it_can_warns_and_exits_4(
    site: Site, name: str, read: str
) -> None:
    DAMAGE[name](site)
    before = site.fingerprint()
    code, out, err = site.cli(*READS[read])
    assert code == 4, err
    # What the journal holds is still shown (history's rows are job/a's events).
    assert ("resource.created" if read == "history" else "job/a") in out
    warnings = [line for line in err.splitlines() if "fleetlog: warning:" in line]
    assert len(warnings) == 1 and "error" not in err, err
    _message(name, warnings[0])
    assert "what was shown may be wrong" in warnings[0]
    assert site.fingerprint() == before


@pytest.mark.parametrize("name", ["foreign-sqlite-file", "empty-file"])
def test_a_read_of_a_foreign_or_emptied_journal_is_exit_4_in_one_line(
    site: Site, name: str
) -> None:
    DAMAGE[name](site)
    before = site.fingerprint()
    for read in READS.values():
        code, out, err = site.cli(*read)
        assert code == 4 and out == "", err
        assert err.count("\n") == 1, err
        _message(name, err)
    assert site.fingerprint() == before


@pytest.mark.parametrize("name", DAMAGE)
def test_verify_names_every_damage(site: Site, name: str) -> None:
    DAMAGE[name](site)
    before = site.fingerprint()
    code, out, err = site.cli("verify")
    assert code == 4 and out == "", err
    assert err.startswith("fleetlog: error: ") and err.count("\n") == 1, err
    _message(name, err)
    assert site.fingerprint() == before


@pytest.mark.parametrize("name", ["tail-truncate-and-verified-head", "rehashed-chain"])
def test_without_the_witness_these_two_look_sound(site: Site, name: str) -> None:
    """What the witness is for: the journal alone is sound in itself after both."""
    DAMAGE[name](site)
    assert site.cli("verify", witness=False)[0] == 0
    assert site.cli("verify")[0] == 4


@pytest.mark.parametrize(
    "name", ["payload-edit", "tail-truncate-and-verified-head", "forged-snapshot"]
)
def test_in_a_real_process_the_refusal_is_one_line_without_traceback(site: Site, name: str) -> None:
    DAMAGE[name](site)
    before = site.fingerprint()
    env = {
        "FLEETLOG_MACHINES": os.environ["FLEETLOG_MACHINES"],
        "FLEETLOG_WITNESS": str(site.witness),
    }
    for args in (WRITES["fire"], WRITES["add"], READS["status"]):
        r = run("--journal", str(site.journal), *args, cwd=site.root, env=env)
        assert r.returncode == 4, r.stderr
        assert "Traceback" not in r.stderr
        assert r.stderr.count("fleetlog: ") == 1, r.stderr
        _message(name, r.stderr)
    assert site.fingerprint() == before
    assert sorted(p.name for p in site.fx.iterdir()) == ["a"]


# -- verify, the witness, the verified head --------------------------------------------------


def test_verify_prints_the_head_and_what_the_witness_recorded(site: Site) -> None:
    (last,) = [line for line in site.witness.read_text().splitlines() if line.startswith("11 ")]
    head_hash = last.split(" ")[1]
    code, out, _ = site.cli("verify")
    assert code == 0
    assert out.splitlines() == [
        "ok: 11 events, hash chain intact",
        f"head: seq 11 hash {head_hash}",
        f"witness: {site.witness} recorded 4 heads; the journal holds them all",
    ]
    report = json.loads(site.cli("verify", "--json")[1])
    assert report["head"] == {"seq": 11, "hash": head_hash}
    assert report["witness"] == {"path": str(site.witness), "heads": 4} and report["ok"]


def test_every_write_command_appends_the_head_to_the_witness(site: Site) -> None:
    assert stat.S_IMODE(site.witness.stat().st_mode) == 0o600
    lines = site.witness.read_text().splitlines()
    assert lines[0].startswith("# fleetlog witness v1")
    assert [line.split(" ")[0] for line in lines[1:]] == ["1", "2", "3", "11"]
    for read in READS.values():
        assert site.cli(*read)[0] == 0
    assert site.witness.read_text().splitlines() == lines  # reads record nothing
    assert site.cli("add", "job/d", "-p", f"dir={site.fx}")[0] == 0
    new = site.witness.read_text().splitlines()
    assert new[:-1] == lines and new[-1].startswith("12 ")
    # a refused write (job/d exists) appends nothing: the head did not move
    assert site.cli("add", "job/d", "-p", f"dir={site.fx}")[0] == 2
    assert site.witness.read_text().splitlines() == new


def test_the_witness_can_come_from_the_environment(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = site.root / "elsewhere.witness"
    monkeypatch.setenv("FLEETLOG_WITNESS", str(other))
    assert site.cli("add", "job/d", "-p", f"dir={site.fx}", witness=False)[0] == 0
    assert other.read_text().splitlines()[1].startswith("12 ")


def test_a_deleted_journal_is_refused_against_its_witness(site: Site) -> None:
    site.journal.unlink()
    code, out, err = site.cli("add", "job/d", "-p", f"dir={site.fx}")
    assert code == 4 and out == "" and err.count("\n") == 1
    assert "is missing, but the witness" in err and "recorded seq 11" in err
    assert not site.journal.exists()
    code, _, err = site.cli("status")
    assert code == 4 and "is missing, but the witness" in err
    # without a witness it is just a new journal
    assert site.cli("add", "job/d", "-p", f"dir={site.fx}", witness=False)[0] == 0


def test_a_restore_is_checked_against_the_witness(site: Site) -> None:
    export = site.root / "backup.jsonl"
    assert site.cli("export", "-o", str(export))[0] == 0
    lines = export.read_text().splitlines(keepends=True)
    site.journal.unlink()
    short = site.root / "short.jsonl"
    short.write_text("".join(lines[:8]))  # a backup older than the last write
    code, out, err = site.cli("import", str(short))
    assert code == 4 and "imported 8 events" in out
    assert "the witness recorded seq 11" in err and "removed from its tail" in err
    site.journal.unlink()
    code, out, err = site.cli("import", str(export))
    assert code == 0, err
    assert site.cli("verify")[0] == 0
    assert site.cli("add", "job/d", "-p", f"dir={site.fx}")[0] == 0


def test_a_forged_snapshot_is_never_used(site: Site) -> None:
    """The issue: a snapshot row made `fire` run from a state the events never held.
    Now the write is refused, the read warns, and verify sees what status sees."""
    forged_snapshot(site)
    code, _, err = site.cli("--backend", "local", "fire", "job/b", "go")
    assert code == 4 and "the snapshot of job/b" in err and "carries no seal" in err
    assert not (site.fx / "b").exists()
    code, out, err = site.cli("status", "--json")
    assert code == 4 and {r["id"]: r["state"] for r in json.loads(out)}["job/b"] == "new"
    code, _, err = site.cli("verify")
    assert code == 4 and "verify --drop-snapshots" in err
    # the way out: the cache is discarded once the events check out, and work goes on
    code, _, err = site.cli("verify", "--drop-snapshots")
    assert code == 0 and "dropped 1 snapshots" in err
    code, _, err = site.cli("--backend", "local", "fire", "job/b", "go")
    assert code == 0, err
    assert (site.fx / "b").exists()
    (site.fx / "b").unlink()


def _resealed_lie(site: Site, key: bytes | None) -> str:
    """A snapshot saying job/b is done, sealed as fleetlog seals one (with ``key``)."""
    from fleetlog.engine.model import load_registry
    from fleetlog.engine.model.replay import load_resource
    from fleetlog.journal.integrity import snapshot_text
    from fleetlog.journal.sqlite import SQLiteJournal

    registry = load_registry()
    j = SQLiteJournal(site.journal)
    try:
        [created] = j.read_stream("job/b")
        rec = load_resource(j, registry, "job/b", use_snapshots=False)
    finally:
        j.close()
    assert rec is not None
    state = {
        "definition_hash": registry.get("job").spec.definition_hash,
        "record": dict(rec.to_dict(), state="done"),
    }
    return snapshot_text("job/b", 1, created.seq, created.hash, state, key)


def test_a_resealed_forged_snapshot_is_caught_by_verify_and_refused_with_a_key(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone who knows the format recomputes the snapshot's digest: without a chain key
    a write cannot tell, but verify folds the events and sees the lie; with a key, the
    forger cannot make the seal."""
    with Raw(str(site.journal)) as raw:
        forge_snapshot(raw, "job/b", 1, _resealed_lie(site, None))
    code, _, err = site.cli("verify")
    assert code == 4 and "is not what its events fold to: it was forged" in err
    # Once a chain key seals the journal (which drops the cache), a snapshot needs the
    # key's seal: a digest anyone can compute, or another key's seal, is refused.
    monkeypatch.setenv("FLEETLOG_CHAIN_KEY", KEY)
    assert site.cli("verify", "--seal")[0] == 0
    for forger_key, problem in (
        (None, "is not sealed with the chain key"),
        (b"the forger's own key!", "does not match its seal"),
    ):
        with Raw(str(site.journal)) as raw:
            forge_snapshot(raw, "job/b", 1, _resealed_lie(site, forger_key))
        before = site.fingerprint()
        code, _, err = site.cli("--backend", "local", "fire", "job/b", "go")
        assert code == 4 and problem in err, err
        assert site.fingerprint() == before and not (site.fx / "b").exists()


def _forge_checkpoint(site: Site, key: bytes | None) -> None:
    """A fleet checkpoint kept as a writer keeps one, then rewritten to say job/b is
    done, its seal recomputed (with ``key``)."""
    from fleetlog.engine.model import load_registry
    from fleetlog.engine.model.checkpoint import NAME
    from fleetlog.engine.model.replay import keep_checkpoint
    from fleetlog.journal.integrity import checkpoint_text, seal
    from fleetlog.journal.sqlite import SQLiteJournal

    j = SQLiteJournal(site.journal)
    try:
        seq = keep_checkpoint(j, load_registry(), every=1, per_stream=0)
    finally:
        j.close()
    assert seq is not None
    conn = sqlite3.connect(site.journal)
    try:
        hash_, text = conn.execute(
            "SELECT hash, state FROM checkpoints WHERE name = ?", (NAME,)
        ).fetchone()
        lie = text.replace('["job/b","job","b","new"', '["job/b","job","b","done"')
        assert lie != text
        sealed = seal(checkpoint_text(NAME, seq, hash_, lie), key)
        conn.execute("UPDATE checkpoints SET state = ?, seal = ?", (lie, sealed))
        conn.commit()
    finally:
        conn.close()


def test_a_resealed_forged_checkpoint_is_caught_by_verify_and_unusable_with_a_key(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fleet checkpoint is a cache like a snapshot, and forged like one: without a
    chain key a recomputed digest passes for fleetlog's own, so status shows the lie,
    but verify folds the events and names it; dropping the cache ends it. With a key the
    forger cannot make the seal, and the checkpoint is never read."""
    _forge_checkpoint(site, None)
    code, out, _ = site.cli("status", "--json")
    assert code == 0 and {r["id"]: r["state"] for r in json.loads(out)}["job/b"] == "done"
    code, _, err = site.cli("verify")
    assert code == 4 and "checkpoint" in err and "it was forged" in err, err
    assert site.cli("verify", "--drop-snapshots")[0] == 0
    code, out, _ = site.cli("status", "--json")
    assert code == 0 and {r["id"]: r["state"] for r in json.loads(out)}["job/b"] == "new"
    monkeypatch.setenv("FLEETLOG_CHAIN_KEY", KEY)
    assert site.cli("verify", "--seal")[0] == 0
    for forger_key in (None, b"the forger's own key!"):
        _forge_checkpoint(site, forger_key)
        code, out, err = site.cli("status", "--json")
        assert {r["id"]: r["state"] for r in json.loads(out)}["job/b"] == "new", err
        assert site.cli("verify")[0] == (4 if forger_key else 0)
        assert site.cli("verify", "--drop-snapshots")[0] == 0


# -- the chain key ------------------------------------------------------------------------------


def test_a_chain_key_is_first_sealed_on_purpose_then_guards_every_write(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETLOG_CHAIN_KEY", KEY)
    before = site.fingerprint()
    code, _, err = site.cli("add", "job/d", "-p", f"dir={site.fx}")
    assert code == 4 and "not sealed with the chain key" in err and "verify --seal" in err
    assert site.fingerprint() == before
    code, out, _ = site.cli("verify", "--seal")
    assert code == 0 and "verified head seq 11 sealed with the chain key" in out
    assert site.cli("add", "job/d", "-p", f"dir={site.fx}")[0] == 0
    assert site.witness.read_text().splitlines()[-1].split(" ")[3].startswith("hmac-sha256:")
    # a rehash that also fixes the verified head cannot forge its seal
    with Raw(str(site.journal)) as raw:
        rehash(raw, 2, lambda p: p.replace('/fx"', '/fy"'), fix_verified=True)
    before = site.fingerprint()
    code, _, err = site.cli("add", "job/e", "-p", f"dir={site.fx}", witness=False)
    assert code == 4 and "does not match the chain key" in err
    assert site.fingerprint() == before


def test_without_the_key_a_keyed_journal_is_not_unsealed(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETLOG_CHAIN_KEY", KEY)
    assert site.cli("verify", "--seal")[0] == 0
    monkeypatch.delenv("FLEETLOG_CHAIN_KEY")
    assert site.cli("status")[0] == 0  # readable without it
    before = site.fingerprint()
    code, out, err = site.cli("add", "job/d", "-p", f"dir={site.fx}")
    assert code == 2 and out == "" and "sealed with a chain key: give it" in err
    assert site.fingerprint() == before
    monkeypatch.setenv("FLEETLOG_CHAIN_KEY", KEY)
    assert site.cli("verify")[0] == 0


def test_a_chain_key_file_must_be_private(site: Site, tmp_path: Path) -> None:
    key = tmp_path / "chain.key"
    key.write_text(KEY + "\n")
    key.chmod(0o644)
    code, _, err = site.cli("--chain-key-file", str(key), "verify")
    assert code == 2 and "chmod 600" in err
    key.chmod(0o600)
    code, out, _ = site.cli("--chain-key-file", str(key), "verify", "--seal")
    assert code == 0 and "sealed with the chain key" in out
    short = tmp_path / "short.key"
    short.write_text("tiny")
    short.chmod(0o600)
    code, _, err = site.cli("--chain-key-file", str(short), "verify")
    assert code == 2 and "at least 16" in err


def test_hashes_are_the_same_with_and_without_a_key(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = site.root / "plain.jsonl"
    assert site.cli("export", "-o", str(plain))[0] == 0
    monkeypatch.setenv("FLEETLOG_CHAIN_KEY", KEY)
    assert site.cli("verify", "--seal")[0] == 0
    keyed = site.root / "keyed.jsonl"
    assert site.cli("export", "-o", str(keyed))[0] == 0
    assert keyed.read_text() == plain.read_text()
    other = site.root / "copy.db"
    assert main(["--journal", str(other), "import", str(keyed)]) == 0
    monkeypatch.delenv("FLEETLOG_CHAIN_KEY")
    assert main(["--journal", str(other), "verify"]) == 0  # anyone can verify an export


# -- PostgreSQL ---------------------------------------------------------------------------------


def test_on_postgresql_the_same_checks_guard_writes_and_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.journal.pg import Schemas, require_postgres

    require_postgres()
    schemas = Schemas()
    try:
        url = schemas.url()
        for var in ENV:
            monkeypatch.delenv(var, raising=False)
        (tmp_path / "m").mkdir()
        (tmp_path / "m" / "job.fsm").write_text(JOB)
        monkeypatch.setenv("FLEETLOG_MACHINES", str(tmp_path / "m"))
        witness = tmp_path / "w"

        def cli(*args: str) -> tuple[int, str, str]:
            capsys.readouterr()
            code = main(["--journal", url, "--witness", str(witness), *args])
            out, err = capsys.readouterr()
            return code, out, err

        for name in "abc":
            assert cli("add", f"job/{name}", "-p", f"dir={tmp_path}")[0] == 0
        assert cli("verify")[0] == 0
        assert [line.split(" ")[0] for line in witness.read_text().splitlines()[1:]] == [
            "1",
            "2",
            "3",
        ]
        with Raw(url) as raw:
            truncate_tail(raw, keep=1, rewind_verified=True)
        code, out, err = cli("add", "job/d", "-p", f"dir={tmp_path}")
        assert code == 4 and out == "" and err.count("\n") == 1
        assert "the witness recorded seq 3" in err
        with Raw(url) as raw:
            assert raw.head() == 1
        code, out, err = cli("status")
        assert code == 4 and "job/a" in out and "fleetlog: warning:" in err
        assert cli("verify")[0] == 4
    finally:
        schemas.cleanup()
