"""The fault explorer (``fleetlog sim explore``, engine/ops/explore.py).

Its own proof: each bug the exactly-once work fixed, switched back on by its test hook
(``reintroduce.ON``, engine/runtime/reintroduce.py), makes the explorer fail
within the CI budget, with a seed that replays it and a shrunk schedule that fails only
while the bug is on. Then a fixed budget of schedules of the shipped Exascale clone,
seeded by the commit, and every schedule kept under ``regressions/`` must hold.

The explored procedure is ``machines/ledger.fsm``, written as an operator would: a
non-idempotent ``charge`` (every call counts once more in the world) retried on failure.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.loader import load_registry
from fleetlog.engine.ops.explore import Explorer
from fleetlog.engine.ops.explore_base import Base, build_base, remove
from fleetlog.engine.ops.schedules import FAULT_KINDS, Flow, generate, load
from fleetlog.engine.ops.twin import read_inventory
from fleetlog.engine.runtime import reintroduce
from fleetlog.engine.runtime.reintroduce import BUGS
from fleetlog.journal import open_journal
from tests.engine.cli.clirun import run

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
MACHINES = HERE / "machines"
LEDGER = HERE / "ledger.toml"
POST = Flow("post", "ledger/acct[1-3]")
KINDS = tuple(FAULT_KINDS)
#: The CI budget: schedules per reintroduced bug, and of the shipped clone.
BUG_RUNS = 300
CLONE_RUNS = 300
LEDGER_RUNS = 300


def commit_seed() -> int:
    """The commit's seed: a failure in CI replays with the seed it prints."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        return int(head[:8], 16)
    except (OSError, subprocess.CalledProcessError, ValueError):
        return 24


@pytest.fixture(scope="module")
def registry() -> Iterator[KindRegistry]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FLEETLOG_MACHINES", str(MACHINES))
        yield load_registry()


@pytest.fixture(scope="module")
def ledger(registry: KindRegistry) -> Iterator[Base]:
    base = build_base(
        registry, journal=None, world_path=None, inventory=read_inventory(str(LEDGER))
    )
    yield base
    remove(base)


@pytest.fixture
def post(ledger: Base, registry: KindRegistry) -> Iterator[Explorer]:
    x = Explorer(ledger, registry, POST)
    yield x
    x.close()


def _kinds(violations: list[str]) -> set[str]:
    return {v.split(":", 1)[0] for v in violations}


@pytest.mark.parametrize("bug", BUGS)
def test_a_reintroduced_bug_fails_the_explorer_with_a_seed_that_replays_it(
    bug: str, post: Explorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(reintroduce, "ON", {bug})
    report = post.explore(runs=BUG_RUNS, seed=1, kinds=KINDS)
    failure = report.failure
    assert failure is not None, f"{bug}: {report.runs} schedules, every invariant held"
    assert failure.shrunk.faults and len(failure.shrunk.faults) <= len(failure.schedule.faults)
    # The seed alone gives the same schedule, which fails the same way.
    again = post.run(generate(post.profile(), failure.seed, KINDS))
    assert again.schedule == failure.schedule
    assert again.failed and _kinds(again.violations) >= _kinds(failure.violations) - {"rest"}
    assert post.run(failure.shrunk).failed
    # The shrunk schedule fails because of the bug: with it off, every invariant holds.
    monkeypatch.setattr(reintroduce, "ON", set())
    held = post.run(failure.shrunk)
    assert not held.failed, held.violations


def test_every_kept_schedule_holds(registry: KindRegistry) -> None:
    kept = sorted((HERE / "regressions").glob("*.json"))
    assert kept
    for path in kept:
        flow, schedule = load(str(path))
        inventory = json.loads(path.read_text())["inventory"]
        base = build_base(
            registry, journal=None, world_path=None, inventory=read_inventory(str(ROOT / inventory))
        )
        x = Explorer(base, registry, flow)
        try:
            x.profile()
            result = x.run(schedule)
        finally:
            x.close()
            remove(base)
        assert not result.failed, (path.name, result.violations)


def test_the_ledger_holds_under_a_budget_seeded_by_the_commit(post: Explorer) -> None:
    seed = commit_seed()
    report = post.explore(runs=LEDGER_RUNS, seed=seed, kinds=KINDS)
    f = report.failure
    assert f is None, (f"seed {f.seed}", f.shrunk.describe(), f.violations)
    assert report.runs == LEDGER_RUNS
    assert len(report.endings) > 2  # the faults did strike: crashes, full disks, fences


def exascale_base(tmp: Path) -> Base:
    """README's session on the twin of examples/exascale.toml, with the CLI."""
    env = {"FLEETLOG_JOURNAL": str(tmp / "fleetlog.db"), "FLEETLOG_SECRET_WALLET_PASSWORD": "t"}
    inventory = str(ROOT / "examples" / "exascale.toml")
    for args in (
        ("sim", "init", "--from-inventory", inventory),
        ("inventory", "load", inventory),
        ("fire", "exascale_cluster/exa", "deploy"),
        ("fire", "vm/exa1_vm1", "create"),
        ("fire", "vm/exa1_vm1", "deploy"),
    ):
        done = run(*args, cwd=tmp, env=env)
        assert done.returncode == 0, (args, done.stderr)
    journal = open_journal(env["FLEETLOG_JOURNAL"])
    try:
        return build_base(
            load_registry(),
            journal=journal,
            world_path=env["FLEETLOG_JOURNAL"] + ".sim",
            inventory=None,
        )
    finally:
        journal.close()


def test_the_exascale_clone_holds_under_a_budget_seeded_by_the_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLEETLOG_SECRET_WALLET_PASSWORD", "explorer-test")
    base = exascale_base(tmp_path)
    flow = Flow("clone", "vm/exa1_vm3", {"source": "exa1_vm1", "target": "node3"})
    x = Explorer(base, load_registry(), flow)
    try:
        seed = commit_seed()
        report = x.explore(runs=CLONE_RUNS, seed=seed, kinds=KINDS)
    finally:
        x.close()
        remove(base)
    f = report.failure
    assert f is None, (f"seed {f.seed}", f.shrunk.describe(), f.violations)
    assert report.runs == CLONE_RUNS


def run_buggy(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``fleetlog ARGS`` with the ``fanout`` bug switched back on: in-process, the only
    way there is (no variable or option can)."""
    code = (
        "import sys\n"
        "from fleetlog.engine.runtime import reintroduce\n"
        "reintroduce.ON.add('fanout')\n"
        "from fleetlog.engine.cli import main\n"
        "sys.exit(main(sys.argv[1:]))"
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_command_prints_the_seed_saves_the_schedule_and_replays_it(tmp_path: Path) -> None:
    env = {"FLEETLOG_MACHINES": str(MACHINES), "FLEETLOG_JOURNAL": str(tmp_path / "j.db")}
    args = ("sim", "explore", "post", "ledger/acct[1-3]", "--inventory", str(LEDGER))
    clean = run(*args, "--runs", "20", "--seed", "5", "--json", cwd=tmp_path, env=env)
    assert clean.returncode == 0, clean.stderr
    data = json.loads(clean.stdout)
    assert data["simulated"] and data["runs"] == 20 and data["failure"] is None

    saved = tmp_path / "kept"
    found = run_buggy(
        *args, "--runs", "50", "--seed", "1", "--save", str(saved), cwd=tmp_path, env=env
    )
    assert found.returncode == 1, found.stderr
    assert "breaks an invariant" in found.stdout and "left not_started" in found.stdout
    line = next(x for x in found.stdout.splitlines() if "reproduce:" in x)
    seed = line.split("--seed ")[1].split()[0]
    shortest = next(x for x in found.stdout.splitlines() if "shortest failing" in x)

    again = run_buggy(*args, "--seed", seed, "--runs", "1", cwd=tmp_path, env=env)
    assert again.returncode == 1 and shortest in again.stdout
    [kept] = saved.glob("*.json")
    assert run_buggy(*args, "--replay", str(kept), cwd=tmp_path, env=env).returncode == 1
    fixed = run(*args, "--replay", str(kept), cwd=tmp_path, env=env)
    assert fixed.returncode == 0 and "every invariant held" in fixed.stdout
    other = run(
        "sim", "explore", "post", "ledger/acct1", "--replay", str(kept), cwd=tmp_path, env=env
    )
    assert other.returncode == 2 and "not of this flow" in other.stderr
