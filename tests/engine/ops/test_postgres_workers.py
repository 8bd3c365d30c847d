"""Four worker processes share one journal and 500 submitted transitions; one of them is
SIGKILLed mid-way. Every transition completes, except the one whose non-idempotent step
was in doubt when its worker died, which needs attention; the sim world's counters show
that no non-idempotent step ever ran twice; the chain verifies.

Run on PostgreSQL (the multi-host setup) and on SQLite (one host, one file). The crashing
worker runs one transition at a time so where it dies is known: each transition is nine
events it journals itself (``transition.started``; ``prep`` started and succeeded;
``nap`` skipped; ``count`` started and succeeded; ``fin`` started and succeeded;
``transition.completed``), so with ``FLEETLOG_TEST_CRASH_AFTER_EVENTS = 9*3 + 5`` it
dies right after journaling the start of ``count`` in its fourth transition.
"""

from __future__ import annotations

import signal

from tests.engine.conftest import CRASH_ENV
from tests.engine.ops.test_worker import Shared, shared  # noqa: F401 - the fixture

N = 500
CRASH_AT = 9 * 3 + 5


def _finished(s: Shared) -> tuple[set[str], set[str]]:
    """(resources whose transition completed, resources that need attention)."""
    done: set[str] = set()
    attention: set[str] = set()
    for _seq, stream, type_ in s.journal.read_all_rows(
        types=("transition.completed", "attention.required"), columns=("seq", "stream", "type")
    ):
        (done if type_ == "transition.completed" else attention).add(stream)
    return done, attention


def test_four_workers_one_killed_every_transition_runs_once(shared: Shared) -> None:  # noqa: F811
    s = shared
    names = [f"n{i:03d}" for i in range(N)]
    s.add(*names)
    submitted = s.cli("fire", "wjob/*", "build", "--submit", "--json")
    assert submitted.code == 0, submitted.err
    assert len(submitted.json()) == N

    env = {"FLEETLOG_LEASE_TTL": "2"}
    doomed = s.spawn("worker", "--parallel", "1", **env, **{CRASH_ENV: str(CRASH_AT)})
    workers = [s.spawn("worker", "--parallel", "8", **env) for _ in range(3)]
    outputs: list[tuple[int, str, str]] = []
    try:
        s.wait_for(lambda: sum(map(len, _finished(s))) >= N, "every transition to finish")
        assert doomed.wait(timeout=60) == -signal.SIGKILL
        for w in workers:
            w.send_signal(signal.SIGTERM)
        for w in workers:
            out, err = w.communicate(timeout=120)
            outputs.append((w.returncode, out, err))
    finally:
        for p in [doomed, *workers]:
            if p.poll() is None:
                p.kill()
            p.communicate()
    for code, _out, err in outputs:
        assert code == 0, err  # SIGTERM is a graceful stop

    done, attention = _finished(s)
    rids = {f"wjob/{n}" for n in names}
    assert done | attention == rids and not done & attention
    # The doomed worker's fourth transition: `count` started, its outcome never recorded.
    assert len(attention) == 1
    (stuck,) = attention
    counts = s.counters(*names)
    assert all(counts[n] == 1 for n in names if f"wjob/{n}" in done)
    assert counts[stuck.split("/")[1]] == 0  # killed before the step could run
    assert max(counts.values()) == 1  # no non-idempotent step ever ran twice

    started: dict[str, int] = {}
    broken = []
    for e in s.journal.read_all(types=("transition.started", "lock.broken")):
        if e.type == "transition.started":
            started[e.stream] = started.get(e.stream, 0) + 1
        else:
            broken.append(e)
    assert started == dict.fromkeys(rids, 1)  # each command was started exactly once
    # The dead worker's transition was taken over by breaking its lease.
    assert [e.stream for e in broken] == [stuck]
    assert broken[0].payload["reason"] == "owner process is gone"
    report = s.journal.verify()
    assert report.ok, report
    # Several worker processes took part (owners are host:pid:random).
    pids = {e.payload["owner"].split(":")[1] for e in s.journal.read_all(types=("lock.acquired",))}
    assert len(pids) >= 3
