"""What must hold after any run of a flow, whatever went wrong during it.

The explorer checks these once a run has been resumed until it is at rest. Each check
returns the violations it found, in words an operator can act on; none is read from
the journal alone when the thing itself can be counted: effects are counted in the
simulated world's effect log.

1. ``effects``: every effect of a non-idempotent step happened at most once.
2. ``settled``: every member of every plan, and every resource a transition ran on, is
   completed, failed with a reason, or needs attention with a reason.
3. ``replay``: ``status`` and ``replay`` succeed and agree with a from-scratch fold.
4. ``verify``: the hash chain, the snapshots and the fencing (no event under a
   superseded lease token) are sound.
5. ``leases``: no lease was broken while its holder was live and unexpired.
6. ``reconcile``: no stale or orphan finding that the world without its faults does not
   also show (an unknown never becomes a stale or an orphan).
"""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fleetlog.engine.backends.sim import SimBackend
from fleetlog.engine.model.events import FOLDED_TYPES
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.records import Resource
from fleetlog.engine.model.replay import ReplayError, fold, load_resource, replay_all
from fleetlog.engine.ops import plans as plan_ops
from fleetlog.engine.ops.fencing import check as check_fencing
from fleetlog.engine.ops.reconcile import Reconciler
from fleetlog.engine.ops.snapshots import check as check_snapshots
from fleetlog.errors import FleetlogError
from fleetlog.journal.base import Journal

INVARIANTS: dict[str, str] = {
    "effects": "every effect of a non-idempotent step happened at most once (counted in "
    "the world's effect log)",
    "settled": "every plan member and every resource a transition ran on is completed, "
    "failed with a reason, or needs attention with a reason",
    "replay": "status and replay succeed and agree with a from-scratch fold",
    "verify": "the hash chain, snapshots and fencing are sound (no event under a "
    "superseded lease token)",
    "leases": "no lease was broken while its holder was live and unexpired",
    "reconcile": "reconcile after the run invents no stale or orphan from an unknown",
}

_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
_PLACEHOLDER = re.compile(r"\{[^{}]*\}")


def _token_pattern(token: str) -> re.Pattern[str]:
    parts = _PLACEHOLDER.split(token)
    return re.compile(".*".join(re.escape(p) for p in parts), re.DOTALL)


@functools.cache
def _templates(registry: KindRegistry) -> tuple[tuple[re.Pattern[str], ...], ...]:
    """Every non-idempotent ``run`` step's command, as one pattern per argv token (an
    interpolated value is shell-quoted: one placeholder is always one token)."""
    found: list[tuple[re.Pattern[str], ...]] = []
    for kind in registry:
        for t in kind.spec.transitions:
            for step in t.steps:
                action: Any = step.action
                if step.idempotent or action.kind != "run":
                    continue
                try:
                    tokens = shlex.split(action.command)
                except ValueError:
                    continue
                while len(tokens) > 1 and _ASSIGNMENT.match(tokens[0]):
                    tokens.pop(0)
                found.append(tuple(_token_pattern(tok) for tok in tokens))
    return tuple(found)


def _non_idempotent(registry: KindRegistry, argv: Sequence[str]) -> bool:
    return any(
        len(t) == len(argv) and all(p.fullmatch(a) for p, a in zip(t, argv, strict=True))
        for t in _templates(registry)
    )


def effects(registry: KindRegistry, sim: SimBackend, since_seq: int) -> list[str]:
    """Invariant 1: calls that changed the world, grouped by host and command line; a
    non-idempotent step's command may be among them once."""
    calls: dict[tuple[str, tuple[str, ...]], set[str]] = {}
    for entry in sim.world.log_entries():
        if entry.seq <= since_seq:
            continue
        # The effects of one call share its time stamp: count calls, not effects.
        calls.setdefault((entry.host, tuple(entry.argv)), set()).add(entry.at)
    out = []
    for (host, argv), times in sorted(calls.items()):
        if len(times) > 1 and _non_idempotent(registry, argv):
            out.append(
                f"effects: `{shlex.join(argv)}` took effect {len(times)} times on {host}, "
                "and it is a non-idempotent step"
            )
    return out


def settled(journal: Journal, records: Mapping[str, Resource], since_seq: int) -> list[str]:
    """Invariant 2: nothing silently left behind (``records``: every resource, replayed)."""
    out = []
    for plan in plan_ops.plans(journal):
        if plan.started_seq <= since_seq:
            continue
        for m in plan_ops.members(journal, plan).values():
            if m.status in ("failed", "attention") and not m.error:
                out.append(
                    f"settled: plan {plan.id} member {m.resource} {m.status} without a reason"
                )
            elif m.status not in ("done", "failed", "attention"):
                out.append(f"settled: plan {plan.id} member {m.resource} left {m.status}")
    for rid, rec in sorted(records.items()):
        ip = rec.in_progress
        if ip is None or ip.started_seq <= since_seq:
            continue
        reason = (rec.attention or {}).get("reason")
        if not reason:
            out.append(
                f"settled: {rid} left in progress ({ip.trigger}, at step {ip.step}) "
                "with no attention and no reason"
            )
    return out


def _comparable(rec: Resource | None) -> Any:
    if rec is None:
        return None
    data = rec.to_dict()
    data.pop("version", None)
    return data


def replay(
    journal: Journal, registry: KindRegistry, records: Mapping[str, Resource], since_seq: int
) -> list[str]:
    """Invariant 3: for every resource the run touched, the fleet-wide replay
    (``records``), the per-resource load ``status`` uses (snapshots and all) and a fold
    of its events from scratch agree."""
    rows = journal.read_all_rows(from_seq=since_seq, columns=("seq", "stream"))
    touched = {row[1] for row in rows}
    out = []
    try:
        for rid in sorted(touched):
            if rid.split("/", 1)[0] not in registry:
                continue
            events = [e for e in journal.read_stream(rid) if e.type in FOLDED_TYPES]
            scratch = fold(events, registry).get(rid)
            loaded = load_resource(journal, registry, rid)
            a, b, c = _comparable(records.get(rid)), _comparable(scratch), _comparable(loaded)
            if not a == b == c:
                out.append(f"replay: {rid} replays differently (fleet-wide, from scratch, status)")
    except (ReplayError, FleetlogError) as exc:
        out.append(f"replay: the journal does not replay: {exc}")
    return out


def verify(journal: Journal, registry: KindRegistry) -> list[str]:
    """Invariant 4: ``fleetlog verify`` is clean."""
    report = journal.verify()
    out = []
    if not report.ok:
        out.append(f"verify: chain broken at seq {report.first_bad_seq}: {report.reason}")
    out.extend(f"verify: {v}" for v in check_fencing(journal))
    out.extend(f"verify: seq {seq}: {why}" for seq, why in check_snapshots(journal, registry))
    return out


def leases(broken_live: Iterable[str]) -> list[str]:
    """Invariant 5 (the explorer saw every break as it happened)."""
    return [f"leases: {line}" for line in broken_live]


def _drift(journal: Journal, registry: KindRegistry, sim: SimBackend) -> set[tuple[str, str]]:
    report = Reconciler(journal, registry, sim, read_only=True).run_pass()
    return {(f.resource, f.cls) for f in report.findings if f.cls in ("stale", "orphan")}


def reconcile(journal: Journal, registry: KindRegistry, sim: SimBackend) -> list[str]:
    """Invariant 6: a read-only reconcile with the faults still in the world finds no
    stale or orphan that one without them does not find too. (Clears the faults.)"""
    faulted = _drift(journal, registry, sim)
    sim.world.clear_faults()
    truth = _drift(journal, registry, sim) if faulted else set()
    return [
        f"reconcile: {rid} found {cls} only while faults blinded the backend"
        for rid, cls in sorted(faulted - truth)
    ]


def check_all(
    journal: Journal,
    registry: KindRegistry,
    sim: SimBackend,
    *,
    since_seq: int,
    since_effect: int,
    broken_live: Iterable[str] = (),
    world_faults: bool = True,
) -> list[str]:
    """Every invariant, in order; the violations found. ``world_faults`` False: no
    fault could have blinded an observation, so the reconcile check is skipped."""
    out = effects(registry, sim, since_effect)
    try:
        records = replay_all(journal, registry)
    except (ReplayError, FleetlogError) as exc:
        out.append(f"replay: status cannot replay the journal: {exc}")
    else:
        out += settled(journal, records, since_seq)
        out += replay(journal, registry, records, since_seq)
    out += verify(journal, registry)
    out += leases(broken_live)
    if world_faults:
        out += reconcile(journal, registry, sim)
    return out
