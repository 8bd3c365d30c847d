"""``fleetlog sim explore``: thousands of seeded fault schedules, every invariant checked.

FoundationDB's simulation, TigerBeetle's VOPR and Jepsen's nemeses earned their systems'
trust by generating fault schedules and checking invariants after each, not by a list
of scenarios. The explorer does that for a flow of fleetlog's: each run copies the twin
(``explore_base``), injects one schedule's faults (``schedules``) into the simulated
world and into the simulated processes driving the flow (``explore_procs``), fires the
trigger, resumes until nothing is left to do, and checks the invariants
(``invariants``). The first failing run is shrunk to the shortest schedule that still
fails, which is printed with its seed and can be saved as JSON for a test.

Everything runs in this process, on one thread, members one at a time, with simulated
time where the flow sleeps (retry pauses, waits): a seed replays exactly, and a run of
the Exascale clone takes milliseconds.
"""

from __future__ import annotations

import os
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from fleetlog.engine.backends.local import split_command
from fleetlog.engine.backends.sim import Fault as SimFault
from fleetlog.engine.backends.sim import World
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.patterns import expand, select
from fleetlog.engine.ops import invariants
from fleetlog.engine.ops import plans as plan_ops
from fleetlog.engine.ops.explore_base import Base, copy_base, scratch_dir
from fleetlog.engine.ops.explore_procs import (
    Blocked,
    Cluster,
    Proc,
    ProcJournal,
    ProcSim,
    Runaway,
    SimulatedCrash,
    disk_full,
)
from fleetlog.engine.ops.schedules import Call, Fault, Flow, Profile, Schedule, generate, shrink
from fleetlog.engine.runtime import Runner
from fleetlog.errors import FleetlogError, UsageError
from fleetlog.journal import open_journal

if TYPE_CHECKING:
    from fleetlog.journal.base import Journal

#: A simulated lease never expires by the clock in a run (only a ``pause`` expires it,
#: in simulated time), so no heartbeat or real expiry makes a run depend on timing.
LEASE_TTL = 3600.0
#: How long one run may take before it counts as not coming to rest (wall clock).
RUN_LIMIT = 20.0
_ASSIGNMENT_CHARS = "="


@dataclass
class RunResult:
    schedule: Schedule
    violations: list[str]
    #: How the driving process ended: "ok", or what stopped it.
    ended: str = "ok"
    appends: int = 0
    calls: tuple[Call, ...] = ()
    #: What refused the driving command, if anything did (a typo, a missing secret).
    error: FleetlogError | None = None

    @property
    def failed(self) -> bool:
        return bool(self.violations)


@dataclass
class Failure:
    seed: int
    schedule: Schedule
    shrunk: Schedule
    violations: list[str]


@dataclass
class Report:
    flow: Flow
    first_seed: int
    runs: int = 0
    elapsed: float = 0.0
    failure: Failure | None = None
    out_of_budget: bool = False
    #: How often each way of ending the driving process came up (ok, crash, …).
    endings: dict[str, int] = field(default_factory=dict)

    @property
    def per_second(self) -> float:
        return self.runs / self.elapsed if self.elapsed > 0 else 0.0


class SimClock:
    """Simulated time: the runner's sleeps advance it instead of waiting."""

    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += max(0.0, seconds)


def _glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "[]*?" else c for c in text)


def _sim_fault(f: Fault) -> SimFault | None:
    """The simulator's fault for a world fault of a schedule (None: a process fault)."""
    command = _glob_escape(f.line) if f.line else None
    tool = f.tool or "*"
    if f.kind == "fail":
        return SimFault(tool, mode="fail_times", n=f.count, host=f.host, command=command)
    if f.kind == "drop":
        return SimFault(tool, mode="drop", n=f.at, host=f.host, command=command)
    if f.kind == "probe":
        return SimFault(tool, mode="fail_nth", n=f.at, host=f.host, command=command)
    if f.kind == "unreachable":
        return SimFault("*", mode="unreachable", host=f.host, n=None if f.count == 0 else f.at)
    return None


def command_line(host: str, command: str) -> tuple[str, str]:
    """(tool, the command line as the simulator matches faults on it)."""
    argv = split_command(host, command)
    while len(argv) > 1 and _ASSIGNMENT_CHARS in argv[0] and argv[0].split("=")[0].isidentifier():
        argv.pop(0)
    return argv[0], shlex.join(argv)


def targets(journal: Journal, registry: KindRegistry, pattern: str) -> list[str]:
    kind = pattern.split("/", 1)[0]
    registry.get(kind)
    existing = sorted(journal.streams(kind + "/"))
    ids = select(pattern, existing)
    if "/" in pattern and not set("*?") & set(pattern):
        missing = [rid for rid in expand(pattern) if rid not in set(existing)]
        if missing:
            raise UsageError(f"no such resources in the twin: {', '.join(missing)}")
    if not ids:
        raise UsageError(f"pattern {pattern!r} matches no resource in the twin")
    return ids


class Explorer:
    """Runs schedules of one flow on copies of one base twin."""

    def __init__(self, base: Base, registry: KindRegistry, flow: Flow) -> None:
        self.base = base
        self.registry = registry
        self.flow = flow
        self.workdir = scratch_dir("fleetlog-explore-run-")
        self._profile: Profile | None = None

    def close(self) -> None:
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ------------------------------------------------------------------ one run
    def profile(self) -> Profile:
        """The fault-free run's profile (where faults can be pinned); raises what the
        flow's own validation refuses (a typo, a missing secret) before any run."""
        if self._profile is None:
            result = self.run(Schedule(0), record=True)
            if result.error is not None and result.appends == 0:
                raise result.error  # refused before anything ran: no run can go further
            self._profile = Profile(result.appends, result.calls)
            self.baseline = result
        return self._profile

    def run(self, schedule: Schedule, *, record: bool = False) -> RunResult:
        """One run of ``schedule`` on a fresh copy of the twin, resumed until at rest,
        then every invariant checked."""
        jpath, wpath = copy_base(self.base, self.workdir)
        journal = open_journal(jpath)
        world = World(wpath)
        try:
            for f in schedule.faults:
                sim_fault = _sim_fault(f)
                if sim_fault is not None:
                    world.inject(sim_fault)
        finally:
            world.close()
        cluster = Cluster(deadline=time.monotonic() + RUN_LIMIT)
        result = RunResult(schedule, [])
        recorded: list[Call] = []
        try:
            with _Run(self, journal, wpath, cluster, schedule, recorded if record else None) as r:
                result.ended = r.drive()
                result.error = r.driver_error
                result.appends = r.driver.appends
                r.settle_all()
                result.calls = tuple(recorded)
                sim = ProcSim(wpath, cluster.new("checker"))
                try:
                    result.violations = invariants.check_all(
                        journal,
                        self.registry,
                        sim,
                        since_seq=self.base.head,
                        since_effect=self.base.effect_seq,
                        broken_live=cluster.broken_live,
                        world_faults=any(_sim_fault(f) for f in schedule.faults),
                    )
                finally:
                    sim.close()
                if r.runaway:
                    result.violations.insert(0, f"rest: {r.runaway}")
        finally:
            journal.close()
        return result

    # ------------------------------------------------------------------ many runs
    def explore(
        self,
        *,
        runs: int,
        seed: int,
        kinds: Sequence[str],
        budget: float | None = None,
        progress: Callable[[Report], None] | None = None,
    ) -> Report:
        """Up to ``runs`` schedules (seeds ``seed``, ``seed + 1``, …) until one fails
        (then shrunk) or ``budget`` seconds have passed."""
        report = Report(self.flow, seed)
        started = time.monotonic()
        profile = self.profile()
        if self.baseline.failed:
            report.runs = 1
            report.failure = Failure(0, Schedule(0), Schedule(0), self.baseline.violations)
            report.elapsed = time.monotonic() - started
            return report
        for i in range(runs):
            if budget is not None and time.monotonic() - started > budget:
                report.out_of_budget = True
                break
            schedule = generate(profile, seed + i, kinds)
            result = self.run(schedule)
            report.runs += 1
            report.endings[result.ended] = report.endings.get(result.ended, 0) + 1
            if progress is not None and report.runs % 50 == 0:
                report.elapsed = time.monotonic() - started
                progress(report)
            if result.failed:
                shrunk = shrink(schedule, lambda s: self.run(s).failed)
                final = self.run(shrunk)
                report.failure = Failure(seed + i, schedule, shrunk, final.violations)
                break
        report.elapsed = time.monotonic() - started
        return report


class _Run:
    """The simulated processes of one run and the faults that strike them."""

    def __init__(
        self,
        explorer: Explorer,
        journal: Journal,
        world_path: str,
        cluster: Cluster,
        schedule: Schedule,
        recorded: list[Call] | None,
    ) -> None:
        self.x = explorer
        self.journal = journal
        self.world_path = world_path
        self.cluster = cluster
        self.clock = SimClock()
        self.faults = schedule.faults
        self.recorded = recorded
        self.runaway: str | None = None
        self.driver_error: FleetlogError | None = None
        self._sims: list[ProcSim] = []
        self.driver = cluster.new("fleetlog fire")
        self.driver_runner = self._runner(self.driver)

    def __enter__(self) -> _Run:
        return self

    def __exit__(self, *exc: object) -> None:
        for sim in self._sims:
            sim.close()

    def _runner(self, proc: Proc) -> Runner:
        pj = ProcJournal(
            self.journal,
            self.cluster,
            proc,
            on_append=self._on_append,
            after_append=self._after_append,
        )
        sim = ProcSim(self.world_path, proc, after_call=self._after_call)
        self._sims.append(sim)
        return Runner(
            cast("Journal", pj),
            self.x.registry,
            sim,
            lease_ttl=LEASE_TTL,
            lock_wait=0.0,
            sleep=self.clock.sleep,
        )

    # -- faults --------------------------------------------------------------------------
    def _on_append(self, proc: Proc, k: int) -> None:
        if proc is not self.driver:
            return
        for f in self.faults:
            if f.at != k:
                continue
            if f.kind == "pause":
                proc.status = "paused"
                self._process("fleetlog resume --all (while the first is paused)")
                proc.status = "live"
            elif f.kind == "twin":
                self._process("fleetlog resume --all (same host name, other PID namespace)", True)
            elif f.kind == "disk_full":
                proc.disk_full = True
        if proc.disk_full:
            raise disk_full(proc)

    def _after_append(self, proc: Proc, k: int) -> None:
        if proc is self.driver and any(f.kind == "crash" and f.at == k for f in self.faults):
            proc.status = "dead"
            raise SimulatedCrash(f"{proc.name}: killed after journal append {k}")

    def _after_call(self, proc: Proc, host: str, command: str) -> None:
        if proc is not self.driver:
            return
        if self.recorded is not None:
            tool, line = command_line(host, command)
            self.recorded.append(Call(host, command, line, tool, self._changed()))
        if any(f.kind == "kill" and f.at == proc.commands for f in self.faults):
            proc.status = "dead"
            raise SimulatedCrash(f"{proc.name}: killed after command {proc.commands}")

    def _changed(self) -> bool:
        """Whether the last command changed the world (profiling only: one query)."""
        entries = self._sims[0].world.log_entries()
        last = entries[-1].seq if entries else 0
        changed = last > getattr(self, "_last_effect", self.x.base.effect_seq)
        self._last_effect = last
        return changed

    # -- processes -----------------------------------------------------------------------
    @contextmanager
    def _guard(self, proc: Proc) -> Iterator[list[str]]:
        """Run a process's work; how it ended goes in the yielded list."""
        ended: list[str] = []
        try:
            yield ended
        except SimulatedCrash:
            ended.append("crash")
        except Blocked:
            ended.append("blocked")
        except Runaway as exc:
            self.runaway = self.runaway or str(exc)
            ended.append("runaway")
        except FleetlogError as exc:
            ended.append(type(exc).__name__)
            if proc is self.driver:
                self.driver_error = exc
        finally:
            if proc.status != "paused":
                proc.status = "dead"  # the process exited: its pid is gone

    def drive(self) -> str:
        """``fleetlog fire TRIGGER PATTERN``, as the CLI runs it (one member at a time)."""
        flow, runner = self.x.flow, self.driver_runner
        with self._guard(self.driver) as ended:
            ids = targets(runner.journal, self.x.registry, flow.pattern)
            if len(ids) == 1:
                runner.fire(ids[0], flow.trigger, dict(flow.params))
            else:
                runner.check_trigger(ids[0], flow.trigger, dict(flow.params))
                plan = plan_ops.start_plan(
                    runner.journal,
                    flow.trigger,
                    dict(flow.params),
                    ids,
                    parallel=1,
                    max_fail=100.0,
                    pattern=flow.pattern,
                )
                plan_ops.run_plan(runner, plan, progress=False)
        return ended[0] if ended else "ok"

    def _process(self, name: str, foreign: bool = False) -> None:
        proc = self.cluster.new(name, foreign=foreign)
        runner = self._runner(proc)
        with self._guard(proc):
            settle(runner, self.x.base.head)

    def settle_all(self) -> None:
        """After the driver ended: ``fleetlog resume --all`` until nothing is left."""
        self._process("fleetlog resume --all")


def settle(runner: Runner, since_seq: int, passes: int = 4) -> None:
    """``resume --all`` until a pass journals nothing: every unfinished plan, then every
    transition in progress that does not wait for an operator, newest first. (Only what
    the run touched, after ``since_seq``, can be in progress: the twin starts at rest.)"""
    journal = runner.journal
    for _ in range(passes):
        head = journal.head()
        for plan in plan_ops.plans(journal, unfinished_only=True):
            try:
                plan_ops.run_plan(runner, plan, progress=False)
            except FleetlogError:
                pass
        rows = journal.read_all_rows(from_seq=since_seq, columns=("seq", "stream"))
        ids = sorted({r[1] for r in rows})
        records = [runner.load(rid) for rid in ids if rid.split("/")[0] in runner.registry]
        chosen = [r for r in records if r.in_progress is not None and not r.attention]
        chosen.sort(key=lambda r: -(r.in_progress.started_seq if r.in_progress else 0))
        for rec in chosen:
            try:
                now = runner.load(rec.id)
                if now.in_progress is not None and not now.attention:
                    runner.resume(rec.id)
            except FleetlogError:
                pass
        if journal.head() == head:
            return


def default_seed() -> int:
    return int.from_bytes(os.urandom(4), "big") >> 1
