"""Running one command over many resources, like ``clush``: a bounded pool of workers,
a failure budget, a progress bar, and identical outcomes gathered into one line.

``--max-fail PCT`` stops *starting* new resources once more than PCT% of all of them
have failed; those already running finish, and the rest are reported as not started.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

from engine.executor import Outcome
from engine.patterns import fold_names, natural_key
from fleetlog.errors import FleetlogError


@dataclass
class FanoutResult:
    outcomes: list[Outcome] = field(default_factory=list)
    not_started: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("failed", "rejected")]

    @property
    def attention(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "attention"]

    def exit_code(self) -> int:
        if self.attention:
            return 3
        if self.failed or self.not_started:
            return 1
        return 0

    def groups(self) -> list[tuple[str, list[str]]]:
        """(description, resource ids) for identical outcomes, largest group first."""
        by: dict[str, list[str]] = {}
        for o in self.outcomes:
            if o.status in ("completed", "skipped"):
                key = f"{o.status} -> {o.state}"
            elif o.status == "attention":
                key = f"needs attention at step {o.step}: {o.error}"
            elif o.status == "rejected":
                key = f"rejected: {o.error}"
            else:
                key = f"failed at step {o.step} -> {o.state}: {o.error}"
            by.setdefault(key, []).append(o.resource)
        if self.not_started:
            by["not started (--max-fail reached)"] = list(self.not_started)
        return sorted(by.items(), key=lambda kv: (-len(kv[1]), kv[0]))


def run_many(
    ids: Sequence[str],
    fn: Callable[[str], Outcome],
    *,
    parallel: int = 64,
    max_fail_pct: float = 100.0,
    progress: bool = True,
    label: str = "",
) -> FanoutResult:
    result = FanoutResult()
    total = len(ids)
    lock = threading.Lock()
    bar = _Bar(total, label) if progress and total > 1 and sys.stderr.isatty() else None

    def one(rid: str) -> Outcome:
        try:
            return fn(rid)
        except FleetlogError as exc:
            return Outcome(rid, label, "rejected", error=str(exc))

    pending: set[Future[Outcome]] = set()
    queue = list(ids)
    with ThreadPoolExecutor(max_workers=max(1, parallel), thread_name_prefix="fanout") as pool:
        while queue or pending:
            over_budget = total and len(result.failed) * 100.0 / total > max_fail_pct
            while queue and len(pending) < parallel and not over_budget:
                pending.add(pool.submit(one, queue.pop(0)))
            if not pending:
                break  # the budget ran out with nothing running: the queue is reported below
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                with lock:
                    result.outcomes.append(fut.result())
                if bar:
                    bar.advance()
            if over_budget and queue:
                result.not_started.extend(queue)
                queue.clear()
    result.not_started.extend(queue)  # left when the budget ran out between batches
    if bar:
        bar.close()
    result.outcomes.sort(key=lambda o: natural_key(o.resource))
    return result


def summary_lines(result: FanoutResult) -> list[str]:
    lines = []
    for desc, members in result.groups():
        lines.append(f"{fold_names(members)} ({len(members)}): {desc}")
    return lines


class _Bar:
    """A rich progress bar on stderr (imported only when a terminal will show it)."""

    def __init__(self, total: int, label: str) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.progress = Progress(
            "[bold]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self.progress.start()
        self.task = self.progress.add_task(label or "resources", total=total)

    def advance(self) -> None:
        self.progress.advance(self.task)

    def close(self) -> None:
        self.progress.stop()
