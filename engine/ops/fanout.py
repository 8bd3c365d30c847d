"""Running one command over many resources, like ``clush``: a bounded pool of workers,
a failure budget, progress on stderr (``ops.progress``), and identical outcomes
gathered into one line.

``--max-fail PCT`` stops *starting* new resources once more than PCT% of all of them
have failed; those already running finish, and the rest are reported as not started.
A journal that cannot be written (disk full, read-only media: ``JournalUnavailable``)
stops new starts at once, whatever the budget: every member would fail the same way.
A rolling plan (``rolling``) calls ``run_many`` once per batch, with the batch as the
budget's whole and a pacer for ``--rate``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fleetlog.engine.model.patterns import fold_names, natural_key
from fleetlog.engine.ops.progress import progress_for
from fleetlog.engine.runtime import Outcome
from fleetlog.errors import FleetlogError
from fleetlog.journal.environment import JournalUnavailable


@dataclass(frozen=True)
class Stop:
    """Why a fan-out plan stopped with members not started, and how to go on."""

    reason: str
    #: The batch it stopped in or after (1-based), and how many the plan has.
    batch: int
    batches: int
    #: The exact command that continues it.
    command: str
    #: The exit code: 3 when it only waits for a confirmation, else 1.
    code: int = 1


@dataclass
class FanoutResult:
    outcomes: list[Outcome] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)
    stopped: Stop | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "rejected")]

    @property
    def attention(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "attention"]

    @property
    def running(self) -> list[Outcome]:
        """Members another process is driving right now (a continued plan's)."""
        return [o for o in self.outcomes if o.status == "running"]

    def exit_code(self) -> int:
        if self.attention:
            return 3
        if self.failed or self.running:
            return 1
        if self.not_started:
            return self.stopped.code if self.stopped else 1
        return 0

    def groups(self) -> list[tuple[str, list[str]]]:
        """(description, resource ids) for identical outcomes, largest group first."""
        by: dict[str, list[str]] = {}
        for o in self.outcomes:
            if o.status in ("completed", "skipped"):
                key = f"{o.status} -> {o.state}"
            elif o.status == "done":
                key = f"done earlier in this plan -> {o.state}"
            elif o.status == "running":
                key = f"still running elsewhere: {o.error}"
            elif o.status == "attention":
                key = f"needs attention at step {o.step}: {o.error}"
            elif o.status == "rejected":
                key = f"rejected: {o.error}"
            else:
                key = f"failed at step {o.step} -> {o.state}: {o.error}"
            by.setdefault(key, []).append(o.resource)
        if self.not_started:
            why = self.stopped.reason if self.stopped else "--max-fail reached"
            by[f"not started ({why})"] = list(self.not_started)
        return sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def run_many(
    ids: Sequence[str],
    fn: Callable[[str], Outcome],
    *,
    parallel: int = 64,
    max_fail_pct: float = 100.0,
    progress: bool = True,
    label: str = "",
    failed_before: int = 0,
    total: int | None = None,
    pace: Callable[[], None] | None = None,
) -> FanoutResult:
    """Run ``fn`` on every id, at most ``parallel`` at a time.

    ``parallel`` plain threads pull ids from one queue. (A ``ThreadPoolExecutor`` with
    ``wait(FIRST_COMPLETED)`` re-arms a waiter on every pending future after each
    completion: at a hundred wide that bookkeeping, on the main thread and under the
    GIL, cost more than the resources' own journaling.) A failure counter kept as
    outcomes arrive answers ``--max-fail`` without rescanning the outcomes. An error
    that is not a ``FleetlogError`` (a bug), or a journal that cannot be written
    (``JournalUnavailable``), stops new starts and is raised once every running
    resource has finished.

    ``failed_before`` and ``total``: a continued plan's earlier failures count against
    ``--max-fail``, as a share of all its members (of its batch, in a rolling plan).
    ``pace``: called before each start, it sleeps until the start may go (``--rate``);
    the budget and a stop are checked again after it.
    """
    result = FanoutResult()
    total = max(total or 0, len(ids), 1)
    lock = threading.Lock()
    queue = deque(ids)
    failures = failed_before
    stop = False
    crashed: list[BaseException] = []
    bar = progress_for(len(ids), label) if progress and len(ids) > 1 else None

    def one(rid: str) -> Outcome:
        try:
            return fn(rid)
        except JournalUnavailable:
            raise  # disk full, read-only media: no member can be journaled
        except FleetlogError as exc:
            return Outcome(rid, label, "rejected", error=str(exc))

    def work() -> None:
        nonlocal failures, stop
        while True:
            with lock:
                if stop or not queue or failures * 100.0 / total > max_fail_pct:
                    return
                rid = queue.popleft()
            if pace is not None:
                pace()
                with lock:
                    if stop or failures * 100.0 / total > max_fail_pct:
                        queue.appendleft(rid)  # not started after all
                        return
            try:
                outcome = one(rid)
            except BaseException as exc:
                with lock:
                    crashed.append(exc)
                    stop = True
                return
            with lock:
                result.outcomes.append(outcome)
                if outcome.status in ("failed", "rejected"):
                    failures += 1
            if bar:
                bar.advance(failed=outcome.status in ("failed", "rejected"))

    width = min(max(1, parallel), max(1, len(ids)))
    try:
        if width == 1:
            work()  # one at a time: on this thread, Ctrl-C included
        else:
            threads = [threading.Thread(target=work, name=f"fanout-{n}") for n in range(width)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    except BaseException:
        with lock:
            stop = True  # Ctrl-C: start nothing new; running resources finish
        raise
    finally:
        if bar:
            bar.close()
    if crashed:
        raise crashed[0]
    result.not_started.extend(queue)  # left when the --max-fail budget ran out
    result.outcomes.sort(key=lambda o: natural_key(o.resource))
    return result


def summary_lines(result: FanoutResult) -> list[str]:
    lines = []
    for desc, members in result.groups():
        lines.append(f"{fold_names(members)} ({len(members)}): {desc}")
    return lines
