"""``SimBackend``: the embedded default backend, a simulated datacenter in-process.

A call has two phases: phase one lets the faults decide (fail, hang, drop, slow; with
no fault in play it reads nothing); phase two runs the fake tool and commits its whole
effect atomically, batched with the calls of other threads. Phase two is submitted
before the call's latency is slept (with no lock held, so parallel calls overlap as they
would against real hosts) and collected after it: a real command acts before it
answers. A call whose latency will outlast its timeout times out before phase two.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Callable, Mapping

from fleetlog.engine.backends.base import (
    BackendError,
    CommandInDoubt,
    CommandResult,
    CommandTimeout,
)
from fleetlog.engine.backends.local import split_command
from fleetlog.engine.backends.output import DEFAULT_MAX_OUTPUT, cap_text
from fleetlog.engine.backends.sim.faults import ANY_TOOL, Fault
from fleetlog.engine.backends.sim.registry import get_tool
from fleetlog.engine.backends.sim.world import World

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

#: How long a ``hang`` blocks when the caller set no timeout and the fault gave no ms.
DEFAULT_HANG_MS = 3_600_000.0


class SimBackend:
    """Runs fake tools against a :class:`World` and reports their observed status.

    ``world_path`` None keeps the world in memory; a path lets a SIGKILLed process and
    its successor (or several workers) share it. ``seed`` makes every tool's randomness
    reproducible: the RNG of a call is seeded by (seed, host, tool, call number).
    """

    name = "sim"

    def __init__(
        self,
        world_path: str | None = None,
        seed: int = 0,
        *,
        latency_ms: float | None = None,
        max_output: int = DEFAULT_MAX_OUTPUT,
    ) -> None:
        self.world = World(world_path)
        self.seed = seed
        self.max_output = max_output
        if latency_ms is not None:
            self.world.latency_ms = latency_ms
        #: ``follow``: what brings the world up to its journal before a host is said absent.
        self._catch_up: Callable[[], object] | None = None

    def follow(self, catch_up: Callable[[], object]) -> None:
        """Have this (twin) world follow a journal: ``catch_up`` seeds the resources
        created since it was last seeded. A host the world lacks is looked for there
        once more before the call fails, so a resource created during this command (an
        inventory loaded, an ensure) is reachable at once."""
        self._catch_up = catch_up

    def _reachable(self, host: str) -> bool:
        if self.world.reachable(host):
            return True
        if self._catch_up is not None:
            self._catch_up()
            return self.world.reachable(host)
        return False

    # -- running -----------------------------------------------------------------------

    def run(
        self,
        host: str,
        command: str,
        *,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> CommandResult:
        started = time.monotonic()
        argv = split_command(host, command)
        # ``NAME=value cmd``: the shell's per-command environment (``TZ=UTC gnt-job list``).
        while len(argv) > 1 and _ASSIGNMENT.match(argv[0]):
            name, _, value = argv.pop(0).partition("=")
            env = {**(env or {}), name: value}
        tool = argv[0]
        fn = get_tool(tool)
        if fn is None:
            return CommandResult(127, "", f"sim: command not found: {tool}")

        def timed_out() -> CommandTimeout:
            return CommandTimeout(host=host, timeout=timeout, command=command)

        def wait(ms: float) -> None:
            """Sleep ``ms`` unless that overruns the timeout: then sleep up to it and raise."""
            if ms <= 0:
                return
            if timeout is not None:
                remaining = timeout - (time.monotonic() - started)
                if ms / 1000 > remaining:
                    time.sleep(max(0.0, remaining))
                    raise timed_out()
            time.sleep(ms / 1000)

        if not self._reachable(host):
            raise BackendError(host=host, reason=_absent(host))
        plan = self.world.begin_call(host, tool, timeout=timeout, argv=argv)
        while True:
            if plan.unreachable is not None:
                raise BackendError(host=host, reason=_message(plan.unreachable, "host unreachable"))
            if plan.hang is not None:
                hang_ms = plan.hang.ms if plan.hang.ms is not None else DEFAULT_HANG_MS
                wait(hang_ms)
                raise CommandTimeout(
                    host=host,
                    timeout=timeout if timeout is not None else hang_ms / 1000,
                    command=command,
                )
            if plan.fail is not None:
                message = _message(plan.fail, f"injected failure of {tool}")
                return CommandResult(plan.fail.exit_code, "", message, time.monotonic() - started)
            if timeout is None or plan.latency_ms / 1000 < timeout - (time.monotonic() - started):
                # The call will not time out before it answers: its effect is committed
                # while it "runs" (the latency), as a real command acts before it returns,
                # so the commit's queueing overlaps the sleep instead of following it.
                pending = self.world.start_call(
                    host, argv, env or {}, fn, number=plan.number, seed=self.seed
                )
                wait(plan.latency_ms)
                outcome = self.world.finish_call(pending)
            else:
                wait(plan.latency_ms)  # times out (raises) before anything ran
                outcome = self.world.finish_call(
                    self.world.start_call(
                        host, argv, env or {}, fn, number=plan.number, seed=self.seed
                    )
                )
            if not outcome.stale:
                break
            # A fault for this call was injected (by another process) meanwhile: nothing
            # ran; let the faults decide again, as if it had arrived just now.
            plan = self.world.begin_call(host, tool, timeout=timeout, count=True, argv=argv)
        if outcome.crash:
            # The effect is committed; die now, as a power cut right after it would.
            os.kill(os.getpid(), signal.SIGKILL)
        wait(outcome.latency_ms)
        if plan.drop is not None:
            raise CommandInDoubt(
                host=host, reason=_message(plan.drop, "connection dropped after the command ran")
            )
        result = outcome.result
        return CommandResult(
            result.exit_code,
            cap_text(result.stdout, self.max_output),
            cap_text(result.stderr, self.max_output),
            time.monotonic() - started,
        )

    # -- observing ---------------------------------------------------------------------

    def observe(self, host: str, kind: str, name: str) -> str | None:
        """The status the backend reports for ``kind/name`` on ``host`` (None: unknown).

        A ``wrong_status`` fault bends known resources; one naming ``name`` explicitly
        can also make a resource the backend does not know appear (a ghost).
        """
        self._observe_preamble(host)
        report, faults = self.world.observe_host(host, kind)
        truth = report.get(name)
        return _bend(host, kind, name, truth, faults)

    def inventory(self, kind: str) -> dict[str, str]:
        """Every resource of ``kind`` any host reports, name -> status (orphan hunting)."""
        self._observe_preamble(None)
        reports, faults = self.world.observe_all(kind)
        found: dict[str, str] = {}
        for host, report in reports.items():
            for name, status in report.items():
                bent = _bend(host, kind, name, status, faults)
                if bent is not None:
                    found[name] = bent
        return found

    def inventory_by_host(self, kind: str) -> tuple[dict[str, dict[str, str]], set[str]]:
        """What every reachable host reports for ``kind`` (``{host: {name: status}}``,
        ``wrong_status`` faults applied) and the hosts an ``unreachable`` fault blinds.

        The reconciler's level-triggered read: unlike :meth:`inventory` it keeps the host
        each resource was seen on, and it never reports a blinded host as empty — a
        resource on an unreachable host is unknown, not gone.
        """
        self._observe_preamble(None)
        reports, faults = self.world.observe_all(kind)
        blinding = [
            r.fault
            for r in self.world.faults()
            if r.fault.mode == "unreachable" and r.fault.tool == ANY_TOOL and r.fault.n is None
        ]
        blind = {h for h in reports if any(f.host in (None, h) for f in blinding)}
        found: dict[str, dict[str, str]] = {}
        for host, report in reports.items():
            if host in blind:
                continue
            bent = {n: _bend(host, kind, n, s, faults) for n, s in report.items()}
            found[host] = {n: s for n, s in bent.items() if s is not None}
        return found, blind

    def _observe_preamble(self, host: str | None) -> None:
        if host is not None and (fault := self.world.unreachable_fault(host)) is not None:
            raise BackendError(host=host, reason=_message(fault, "host unreachable"))
        if host is not None and not self._reachable(host):
            raise BackendError(host=host, reason=_absent(host))
        latency = self.world.latency_ms
        if latency:
            time.sleep(latency / 1000)

    def close(self) -> None:
        self.world.close()

    def __enter__(self) -> SimBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _absent(host: str) -> str:
    """A host the twin does not hold: what a real network says (no route), and why."""
    return (
        f"simulated: host unreachable: host {host!r} is not in the simulated datacenter; "
        "add a resource for it or run `fleetlog sim init`"
    )


def _message(fault: Fault, default: str) -> str:
    return fault.message if fault.message is not None else f"sim: {default}"


def _bend(host: str, kind: str, name: str, truth: str | None, faults: list[Fault]) -> str | None:
    for fault in faults:
        if fault.matches_resource(host, kind, name) and (truth is not None or fault.name):
            return fault.status
    return truth
