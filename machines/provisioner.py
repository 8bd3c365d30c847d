"""The CORTX mini-provisioner contract (Hare's 20/MINIPROV specification) on fleetlog.

Two things:

- ``setup_yaml``: the ``setup.yaml`` a mini-provisioner reads — ``<component>: <stage>:
  {cmd, args}`` plus a top-level ``support_bundle:`` list — whose stage commands drive
  a fleetlog resource: ``fleetlog --journal J provisioner stage KIND/NAME STAGE --config
  $URL`` (exit 0 on success, N > 0 on error, as the contract asks). Written by hand: the
  format is small and fixed, and fleetlog does not depend on a YAML library.
- ``check_idempotent``: the contract's "every stage must be idempotent" as a test. On a
  scratch journal and a scratch copy of the simulated world, the resource is brought to
  a state where the stage may fire (by the shortest path of other stages), then the
  stage runs twice; the second run must succeed and change nothing in the world (no
  world-log effect, every host's state identical).
"""

from __future__ import annotations

import json
import re
import shlex
import tempfile
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetlog.engine.model import Kind, KindRegistry, Resource
from fleetlog.errors import FleetlogError, UsageError

#: The contract's stages, in the order a provisioner runs them (setup.yaml order).
STAGES = (
    "post_install",
    "prepare",
    "config",
    "init",
    "start",
    "test",
    "reset",
    "cleanup",
    "pre_upgrade",
    "upgrade",
    "post_upgrade",
    "backup",
    "restore",
)
SUPPORT_BUNDLE = "support_bundle"

_PLAIN = re.compile(r"^[A-Za-z0-9_./$\[\]=-][A-Za-z0-9_ ./$\[\]=:,+@%-]*$")


class NotIdempotent(FleetlogError):
    """A stage that failed its second run or changed the world the second time."""

    exit_code = 1


def yaml_scalar(text: str) -> str:
    """A YAML scalar for ``text``: plain when unambiguous, else double-quoted (JSON
    strings are valid YAML double-quoted scalars)."""
    plain = (
        bool(text)
        and _PLAIN.match(text) is not None
        and not text.endswith(" ")
        and ": " not in text
        and " #" not in text
        and not text.startswith(("- ", "-- "))
        and text.lower() not in ("true", "false", "yes", "no", "on", "off", "null", "~")
    )
    if plain:
        try:
            float(text)
        except ValueError:
            return text
    return json.dumps(text)


def stages_of(kind: Kind) -> list[str]:
    triggers = {t.trigger for t in kind.spec.transitions}
    return [s for s in STAGES if s in triggers]


def setup_yaml(
    resource: Resource,
    kind: Kind,
    journal_url: str,
    *,
    backend: str,
    fleetlog_cmd: str = "fleetlog",
    component: str | None = None,
) -> str:
    """The mini-provisioner's setup.yaml for ``resource`` (a kind with stage triggers).
    Every stage names the journal and the backend: a stage run by the provisioner must
    land where the operator's commands do, never on the simulator by default."""
    name = component or str(resource.params.get("component") or resource.name)
    stages = stages_of(kind)
    if not stages:
        raise UsageError(
            f"{resource.id}: kind {kind.name} has none of the mini-provisioner's stages "
            f"({', '.join(STAGES)})"
        )
    base = (
        f"--journal {shlex.quote(journal_url)} --backend {shlex.quote(backend)} "
        f"provisioner stage {resource.id}"
    )
    lines = [
        f"# setup.yaml for {resource.id}, written by `fleetlog provisioner export`.",
        "# Each stage runs a fleetlog transition; exit 0 on success, N > 0 on error.",
        f"{yaml_scalar(name)}:",
    ]
    for stage in stages:
        lines += [
            f"  {stage}:",
            f"    cmd: {yaml_scalar(fleetlog_cmd)}",
            f"    args: {yaml_scalar(f'{base} {stage} --config $URL')}",
        ]
    if SUPPORT_BUNDLE in {t.trigger for t in kind.spec.transitions}:
        cmd = f"{fleetlog_cmd} {base} {SUPPORT_BUNDLE}"
        lines += ["support_bundle:", f"  - {yaml_scalar(cmd)}"]
    return "\n".join(lines) + "\n"


def stage_params(kind: Kind, stage: str, given: Mapping[str, str]) -> dict[str, str]:
    """The given values the stage's transition declares (``config``, ``plan``, ...)."""
    declared = {p.name for p in kind.transition(stage).params}
    return {k: v for k, v in given.items() if k in declared}


# --------------------------------------------------------------------- check-idempotent
def path_to(kind: Kind, trigger: str) -> list[str]:
    """The shortest list of triggers from the initial state to a state ``trigger`` may
    fire from (empty if it may fire from the initial state)."""
    start = kind.spec.initial
    sources = {s for (s, t) in kind.table if t == trigger}
    if not sources:
        raise UsageError(f"kind {kind.name} has no trigger {trigger!r}")
    seen: dict[str, list[str]] = {start: []}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        if state in sources:
            return list(seen[state])
        for (src, t), dest in sorted(kind.table.items()):
            if src == state and dest not in seen and t != trigger:
                seen[dest] = [*seen[state], t]
                queue.append(dest)
    raise UsageError(f"{kind.name}: no state reachable from {start!r} allows {trigger!r}")


@dataclass
class Run:
    outcome: Any
    effects: list[str] = field(default_factory=list)
    changed_hosts: list[str] = field(default_factory=list)


@dataclass
class IdempotencyReport:
    resource: str
    stage: str
    prerequisites: list[str]
    first: Run
    second: Run

    @property
    def ok(self) -> bool:
        return (
            self.first.outcome.ok
            and self.second.outcome.ok
            and not self.second.effects
            and not self.second.changed_hosts
        )

    def problem(self) -> str | None:
        if not self.first.outcome.ok:
            first = self.first.outcome
            return f"the first run failed at step {first.step}: {first.error}"
        if not self.second.outcome.ok:
            return (
                f"the second run failed at step {self.second.outcome.step}: "
                f"{self.second.outcome.error}"
            )
        if self.second.effects or self.second.changed_hosts:
            said = [f"  {e}" for e in self.second.effects[:20]]
            if not said:
                said = [f"  state of {h} changed" for h in self.second.changed_hosts[:20]]
            return "the second run changed the world:\n" + "\n".join(said)
        return None

    def to_dict(self) -> dict[str, Any]:
        def run(r: Run) -> dict[str, Any]:
            return {
                "status": r.outcome.status,
                "state": r.outcome.state,
                "error": r.outcome.error,
                "effects": r.effects,
                "changed_hosts": r.changed_hosts,
            }

        return {
            "resource": self.resource,
            "stage": self.stage,
            "idempotent": self.ok,
            "problem": self.problem(),
            "prerequisites": self.prerequisites,
            "first": run(self.first),
            "second": run(self.second),
        }


def check_idempotent(
    registry: KindRegistry,
    resource: Resource,
    stage: str,
    given: Mapping[str, str],
    *,
    world_from: Mapping[str, Mapping[str, Any]] | None = None,
    seed: int = 0,
    sleep: Callable[[float], None] | None = None,
) -> IdempotencyReport:
    """Run ``stage`` twice on a scratch twin of ``resource`` and report what changed.

    ``world_from`` is the simulated world to start from (host -> state), e.g. a
    snapshot of the session's sim world; nothing outside the scratch copy is touched.
    """
    import time

    from fleetlog.engine.backends.sim import SimBackend
    from fleetlog.engine.ops import create_resource
    from fleetlog.engine.runtime import Runner
    from fleetlog.journal import open_journal

    kind = registry.get(resource.kind)
    kind.transition(stage)  # unknown stage: a usage error before anything runs
    prereqs = path_to(kind, stage)
    with tempfile.TemporaryDirectory(prefix="fleetlog-idem-") as tmp:
        journal = open_journal(str(Path(tmp) / "scratch.db"))
        sim = SimBackend(seed=seed)
        try:
            for host, state in (world_from or {}).items():
                sim.world.set_host_state(host, state)
            runner = Runner(journal, registry, sim, sleep=sleep or time.sleep)
            create_resource(journal, registry, resource.id, resource.params)
            for trigger in prereqs:
                out = runner.fire(resource.id, trigger, stage_params(kind, trigger, given))
                if not out.ok:
                    raise NotIdempotent(
                        f"{resource.id}: cannot reach {stage!r}: prerequisite {trigger} "
                        f"failed at step {out.step}: {out.error}"
                    )
            params = stage_params(kind, stage, given)
            runs = []
            for _ in range(2):
                before_seq = max((e.seq for e in sim.world.log_entries()), default=0)
                before = sim.world.snapshot()
                out = runner.fire(resource.id, stage, params)
                after = sim.world.snapshot()
                effects = [
                    f"{e.host}: {e.effect}" for e in sim.world.log_entries() if e.seq > before_seq
                ]
                changed = sorted(
                    h for h in set(before) | set(after) if before.get(h) != after.get(h)
                )
                runs.append(Run(out, effects, changed))
                if not out.ok:
                    break
            if len(runs) == 1:  # the first run failed: no second run
                runs.append(runs[0])
        finally:
            sim.close()
            journal.close()
    return IdempotencyReport(resource.id, stage, prereqs, runs[0], runs[1])
