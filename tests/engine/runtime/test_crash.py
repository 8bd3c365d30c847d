"""The crash harness: kill ``fleetlog fire`` after every event it journals, resume, and
compare with a run that was never interrupted.

The flow is ``crash_job build`` (tests/engine/fixtures/crash/): nine steps with a retry
(the sim fails the first ``touch_flag`` on the job's host), an ``ensure`` that fires
``prepare`` on a ``crash_peer`` on another host, two check probes, a non-idempotent step
(``key``: ``escli mkkey`` generates a new key every time), a ``when``-skipped step and an
effect-free one. For every k, in a fresh copy of the same starting journal and world:
``fleetlog fire`` runs in a child process with ``FLEETLOG_TEST_CRASH_AFTER_EVENTS=k`` (it
is SIGKILLed right after the append that holds the k-th event it journaled: a step's
outcome is written together with the next step's start), then ``fleetlog resume --all``
runs until nothing is in progress. The final states and the world log's effects (a
multiset per host) must equal the uninterrupted run's — except when the kill lands right
after the ``step.started`` of ``key``: then the job needs attention and ``key``'s effect
appears at most once; an operator's ``resolve`` then completes it. No side effect ever
happens twice.

The child processes run in the background, two at a time, while the tests resume them.
"""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import Fault, SimBackend
from fleetlog.journal import open_journal
from tests.engine.conftest import CLI_ARGV, CRASH_ENV, FIXTURES, PROJECT_ROOT, Fleet

MACHINES = FIXTURES / "crash"
JOB, PEER = "crash_job/j1", "crash_peer/p1"

#: Events the crash hook counts in an uninterrupted run (lock.* events are journaled by
#: the lease code, not by the executor, and are not counted). Checked below.
N_EVENTS = 29
#: k at which the non-idempotent step `key` is started but its outcome not recorded.
KEY_STARTED = 18

EXPECTED_EFFECTS = Counter(
    {
        ("jobhost", "flag prepped set"): 1,
        ("peerhost", "flag peer_ready set"): 1,
        ("peerhost", "flag peer_noted set"): 1,
        ("jobhost", "user builder created"): 1,
        ("jobhost", "key buildkey generated"): 1,
        ("jobhost", "wallet created at /w"): 1,
        ("jobhost", "wallet user=builder"): 1,
        ("jobhost", "flag built set"): 1,
    }
)


def _env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if k != CRASH_ENV}
    env.update(
        FLEETLOG_MACHINES=str(MACHINES),
        PYTHONPATH=str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    env.pop("FLEETLOG_SIM_WORLD", None)
    env.pop("FLEETLOG_JOURNAL", None)
    env.update(extra)
    return env


def _cli(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI_ARGV, "--journal", str(root / "j.db"), *args],
        env=_env(**env),
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _prepare(root: Path) -> None:
    """The starting point: the two resources, and the fault that forces one retry."""
    root.mkdir(parents=True)
    for args in (
        ("add", PEER, "--param", "host=peerhost"),
        ("add", JOB, "--param", "host=jobhost", "--param", f"peer={PEER}"),
    ):
        res = _cli(root, *args)
        assert res.returncode == 0, res.stderr
    with SimBackend(str(root / "j.db.sim")) as sim:
        sim.world.inject(Fault("touch_flag", mode="fail_times", n=1, host="jobhost"))


def _copy(template: Path, root: Path) -> None:
    root.mkdir(parents=True)
    for f in template.iterdir():
        shutil.copy2(f, root / f.name)


def _fire(root: Path, k: int | None) -> subprocess.CompletedProcess[str]:
    env = {CRASH_ENV: str(k)} if k else {}
    return _cli(root, "fire", JOB, "build", **env)


def _final(fleet: Fleet) -> dict[str, Any]:
    return {
        rid: (row["state"], row["in_progress"], row["needs_attention"])
        for rid, row in fleet.status().items()
    }


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "template"
    _prepare(root)
    return root


@pytest.fixture(scope="module")
def baseline(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("crash") / "baseline"
    _copy(template, root)
    res = _fire(root, None)
    assert res.returncode == 0, res.stderr
    status = _cli(root, "status", "--json")
    with SimBackend(str(root / "j.db.sim")) as sim:
        world = Counter((e.host, e.effect) for e in sim.world.log_entries())
    with open_journal(str(root / "j.db")) as journal:
        counted = [
            e
            for e in journal.read_all()
            if not e.type.startswith("lock.")
            and e.type not in ("resource.created", "backend.bound")
        ]
    rows = json.loads(status.stdout)
    key_append = counted[KEY_STARTED - 1].recorded_at  # the events of one append share it
    return {
        "root": root,
        "states": {r["id"]: (r["state"], r["in_progress"], r["needs_attention"]) for r in rows},
        "effects": world,
        "counted": counted,
        # every k whose kill lands right after key's step.started: same append
        "key_ks": {k for k, e in enumerate(counted, 1) if e.recorded_at == key_append},
    }


# A fork server: one child process imports the CLI once, then forks a fresh process per
# run that executes `fleetlog --journal ROOT/j.db fire crash_job/j1 build` (engine.cli's
# main, the console script's entry point) with the crash hook set, and reports how it
# ended. It saves the ~0.4 s of imports each of the N runs would otherwise pay.
FORK_SERVER = f"""
import json, os, sys
from fleetlog.engine.cli import main
from fleetlog.engine.model.loader import load_registry
load_registry()  # warm the grammar caches before forking
for line in sys.stdin:
    req = json.loads(line)
    pid = os.fork()
    if pid == 0:
        os.chdir(req["root"])
        os.environ[{CRASH_ENV!r}] = str(req["k"])
        fd = os.open("fire.out", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os._exit(main(["--journal", "j.db", "fire", {JOB!r}, "build"]))
    _, status = os.waitpid(pid, 0)
    sys.stdout.write(json.dumps(os.waitstatus_to_exitcode(status)) + "\\n")
    sys.stdout.flush()
"""


class ForkServer:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", FORK_SERVER],
            env=_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def fire(self, root: Path, k: int) -> int:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"root": str(root), "k": k}) + "\n")
        self.proc.stdin.flush()
        return int(json.loads(self.proc.stdout.readline()))

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture(scope="module")
def crashed(
    template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[int, Future[tuple[Path, int, str]]]]:
    """Every k's killed run, started in the background (two at a time)."""
    base = tmp_path_factory.mktemp("crash")
    servers: queue.Queue[ForkServer] = queue.Queue()
    started = [ForkServer() for _ in range(2)]
    for server in started:
        servers.put(server)

    def run(k: int) -> tuple[Path, int, str]:
        root = base / f"k{k:02d}"
        _copy(template, root)
        server = servers.get()
        try:
            code = server.fire(root, k)
        finally:
            servers.put(server)
        return root, code, (root / "fire.out").read_text()

    try:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="crash") as pool:
            yield {k: pool.submit(run, k) for k in range(1, N_EVENTS + 1)}
    finally:
        for server in started:
            server.close()


# ---------------------------------------------------------------------- the baseline
def test_the_uninterrupted_run(baseline: dict[str, Any]) -> None:
    assert baseline["states"] == {
        JOB: ("done", None, None),
        PEER: ("ready", None, None),
    }
    assert baseline["effects"] == EXPECTED_EFFECTS
    counted = baseline["counted"]
    assert len(counted) == N_EVENTS
    key = counted[KEY_STARTED - 1]
    assert (key.stream, key.type, key.payload["step"]) == (JOB, "step.started", "key")
    # the harness covers what it claims to: a retry, an ensure, checks, a skip
    kinds = [(e.type, e.payload.get("step"), e.payload.get("will_retry")) for e in counted]
    assert ("step.failed", "prep", True) in kinds
    assert any(e.stream == PEER and e.type == "transition.started" for e in counted)
    peer_started = next(e for e in counted if e.stream == PEER and e.type == "command.accepted")
    ensure_step = next(
        e for e in counted if e.type == "step.started" and e.payload.get("step") == "peer"
    )
    assert peer_started.causation_id == ensure_step.event_id
    assert ("step.skipped", "extra", None) in kinds
    # key's start is journaled with the outcome of the step before it, and nothing else
    assert baseline["key_ks"] == {KEY_STARTED - 1, KEY_STARTED}
    assert counted[KEY_STARTED - 2].type == "step.succeeded"


def test_the_hook_counts_exactly_n_events(template: Path, tmp_path: Path) -> None:
    """k = N kills after the last event; k = N + 1 never fires: N is the whole run."""
    root = tmp_path / "beyond"
    _copy(template, root)
    res = _fire(root, N_EVENTS + 1)
    assert res.returncode == 0, res.stderr


# ---------------------------------------------------------------------- every k
@pytest.mark.parametrize("k", range(1, N_EVENTS + 1), ids=lambda k: f"kill_after_{k}")
def test_kill_and_resume(
    k: int,
    crashed: dict[int, Future[tuple[Path, int, str]]],
    baseline: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root, code, output = crashed[k].result(timeout=300)
    assert code == -signal.SIGKILL, (code, output)
    monkeypatch.delenv(CRASH_ENV, raising=False)
    monkeypatch.delenv("FLEETLOG_SIM_WORLD", raising=False)
    monkeypatch.chdir(root)
    fleet = Fleet(root, monkeypatch, capsys)
    fleet.use_machines(MACHINES)
    try:
        codes = []
        for _ in range(3):  # until nothing is in progress
            res = fleet.cli("resume", "--all")
            codes.append(res.code)
            assert res.code in (0, 3), (res.out, res.err)
            final = _final(fleet)
            if res.code == 3 or all(v[1] is None for v in final.values()):
                break
        effects = fleet.effects()
        assert max(effects.values()) == 1, f"a side effect happened twice: {effects}"
        if k in baseline["key_ks"]:
            assert codes[-1] == 3
            assert final[PEER] == ("ready", None, None)
            state, in_progress, attention = final[JOB]
            assert (state, in_progress["step"], attention["step"]) == ("new", "key", "key")
            done = effects[("jobhost", "key buildkey generated")]
            assert done <= 1
            # the operator looks at the host and decides; then the run completes
            how = "done" if done else "retry"
            res = fleet.cli("resolve", JOB, "--step", "key", "--as", how, "--reason", "looked")
            assert res.code == 0, (res.out, res.err)
            effects = fleet.effects()
            final = _final(fleet)
        else:
            assert codes == [0], codes  # one resume finishes everything
        assert final == baseline["states"]
        assert effects == baseline["effects"]
    finally:
        fleet.close()
