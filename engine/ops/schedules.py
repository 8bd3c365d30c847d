"""Fault schedules for the explorer: what goes wrong, and when, in one run.

A schedule is a short list of faults, each pinned to a point of the flow: the k-th
journal append of the driving process, the k-th command it sends, or the n-th call of
one command on one host. Points are drawn from a fault-free run of the same flow (its
``Profile``), with ``random.Random(seed)``, so a seed always gives the same schedule on
the same twin. A failing schedule is shrunk (``shrink``) to the shortest one that still
fails, and kept as JSON a test can load.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from fleetlog.errors import UsageError

#: Every fault kind, in an operator's words.
FAULT_KINDS: dict[str, str] = {
    "crash": "the fleetlog process is killed (SIGKILL) right after its k-th journal append",
    "kill": "the fleetlog process is killed right after its k-th command ran, before it "
    "journals the outcome",
    "pause": "the process stops (SIGSTOP) before its k-th append, past its lease; another "
    "resumes the work; then the paused one continues",
    "twin": "before the k-th append, a second fleetlog with the same host name in another "
    "PID namespace runs `resume --all` while the first is live",
    "disk_full": "the journal's disk fills at the k-th append: that append and every later "
    "one of the process fail",
    "fail": "a command fails N times in a row (exit 1), then works",
    "drop": "the connection drops after the n-th call of a command ran: its outcome is in doubt",
    "unreachable": "a host does not answer its n-th call (or, with count 0, any call)",
    "probe": "a read-only command (a check, a probe, a wait) fails on its n-th call",
}
PROCESS_KINDS = frozenset({"crash", "kill", "pause", "twin", "disk_full"})
FORMAT = 1


class ScheduleError(UsageError):
    """A schedule file or a fault list that cannot be used."""


@dataclass(frozen=True)
class Call:
    """One command the driving process sent in the fault-free run."""

    host: str
    command: str
    #: The command line as the simulator matches it (``shlex.join`` of its argv).
    line: str
    tool: str
    effect: bool  # it changed the world (else read-only: a probe, a check, a wait)


@dataclass(frozen=True)
class Profile:
    """What a fault-free run of the flow did: where faults can be pinned."""

    appends: int
    calls: tuple[Call, ...]


@dataclass(frozen=True)
class Fault:
    """One fault of a schedule (``FAULT_KINDS``)."""

    kind: str
    #: crash/pause/twin/disk_full: the append; kill: the command (1-based, the driver's);
    #: fail/drop/probe/unreachable: the call of ``line`` (or of any command on ``host``).
    at: int = 1
    host: str | None = None
    line: str | None = None
    tool: str | None = None
    #: fail: how many times in a row; unreachable: 0 = every call, else just the n-th.
    count: int = 1

    def describe(self) -> str:
        where = f" on {self.host}" if self.host else ""
        what = f"`{self.line}`" if self.line else "any command"
        if self.kind in ("crash", "pause", "twin", "disk_full"):
            return f"{self.kind} at journal append {self.at}"
        if self.kind == "kill":
            return f"kill after command {self.at}"
        if self.kind == "fail":
            return f"fail {what}{where} {self.count} time(s)"
        if self.kind == "drop":
            return f"drop the connection after call {self.at} of {what}{where}"
        if self.kind == "probe":
            return f"fail call {self.at} of {what}{where}"
        if self.count == 0:
            return f"{self.host} unreachable"
        return f"{self.host} unreachable for its call {self.at}"


@dataclass(frozen=True)
class Schedule:
    seed: int
    faults: tuple[Fault, ...] = ()

    def describe(self) -> list[str]:
        return [f.describe() for f in self.faults] or ["no fault"]


@dataclass(frozen=True)
class Flow:
    """What the explorer drives: ``fire TRIGGER PATTERN --param …``."""

    trigger: str
    pattern: str
    params: dict[str, str] = field(default_factory=dict)


def parse_kinds(text: str | None) -> tuple[str, ...]:
    """``--faults crash,drop`` (None or "all": every kind)."""
    if text is None or text.strip() in ("", "all"):
        return tuple(FAULT_KINDS)
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULT_KINDS]
    if unknown:
        raise ScheduleError(
            f"--faults: unknown fault kind {unknown[0]!r} (kinds: {', '.join(FAULT_KINDS)})"
        )
    return kinds


def _nth(calls: Sequence[Call], index: int, same: Callable[[Call], bool]) -> int:
    """Which call of its kind ``calls[index]`` is (1-based)."""
    return sum(1 for c in calls[: index + 1] if same(c))


def generate(profile: Profile, seed: int, kinds: Sequence[str], max_faults: int = 3) -> Schedule:
    """The schedule of ``seed``: one to ``max_faults`` faults of ``kinds``, each pinned
    to a point the fault-free run passed through."""
    rng = random.Random(seed)
    calls = profile.calls
    probes = [i for i, c in enumerate(calls) if not c.effect]
    usable = [
        k
        for k in kinds
        if (k not in PROCESS_KINDS or profile.appends > 0)
        and (k != "probe" or probes)
        and (k not in ("fail", "drop", "unreachable", "kill") or calls)
    ]
    if not usable:
        return Schedule(seed)
    faults: list[Fault] = []
    for _ in range(min(max_faults, rng.choice([1, 1, 2, 2, 3]))):
        kind = rng.choice(usable)
        if kind in ("crash", "pause", "twin", "disk_full"):
            faults.append(Fault(kind, at=rng.randint(1, profile.appends)))
        elif kind == "kill":
            faults.append(Fault(kind, at=rng.randint(1, len(calls))))
        elif kind == "unreachable":
            i = rng.randrange(len(calls))
            host = calls[i].host
            if rng.random() < 0.2:
                faults.append(Fault(kind, host=host, count=0))
            else:
                n = _nth(calls, i, lambda c, h=host: c.host == h)  # type: ignore[misc]
                faults.append(Fault(kind, at=n, host=host))
        else:
            i = rng.choice(probes) if kind == "probe" else rng.randrange(len(calls))
            call = calls[i]
            n = _nth(calls, i, lambda c, x=call: (c.host, c.line) == (x.host, x.line))  # type: ignore[misc]
            count = rng.choice([1, 1, 2, 3]) if kind == "fail" else 1
            at = 1 if kind == "fail" else n  # a failure repeats from the first call
            faults.append(
                Fault(kind, at=at, host=call.host, line=call.line, tool=call.tool, count=count)
            )
    return Schedule(seed, tuple(faults))


def shrink(schedule: Schedule, fails: Callable[[Schedule], bool]) -> Schedule:
    """The shortest schedule that still ``fails``: drop faults one at a time while it
    fails, then lower each count (a fault repeated fewer times, a host down for one
    call instead of all)."""
    best = schedule
    changed = True
    while changed and best.faults:
        changed = False
        for i in range(len(best.faults)):
            fewer = replace(best, faults=best.faults[:i] + best.faults[i + 1 :])
            if fails(fewer):
                best, changed = fewer, True
                break
    for i, fault in enumerate(best.faults):
        for smaller in _smaller(fault):
            trial = replace(best, faults=(*best.faults[:i], smaller, *best.faults[i + 1 :]))
            if fails(trial):
                best = trial
                break
    return best


def _smaller(fault: Fault) -> Iterable[Fault]:
    if fault.kind == "fail":
        for count in range(1, fault.count):
            yield replace(fault, count=count)
    if fault.kind == "unreachable" and fault.count == 0:
        yield replace(fault, count=1, at=1)


# ---------------------------------------------------------------------------- files


def to_json(
    flow: Flow, schedule: Schedule, found: Sequence[str] = (), inventory: str | None = None
) -> dict[str, Any]:
    """The schedule as a file holds it; ``inventory``: the one its twin was built from."""
    return {
        "format": FORMAT,
        "flow": asdict(flow),
        "inventory": inventory,
        "seed": schedule.seed,
        "faults": [{k: v for k, v in asdict(f).items() if v is not None} for f in schedule.faults],
        "violations": list(found),
    }


def from_json(data: Mapping[str, Any], where: str) -> tuple[Flow, Schedule]:
    try:
        if data.get("format") != FORMAT:
            raise ScheduleError(f"{where}: not an explorer schedule (format {FORMAT})")
        flow_data = data["flow"]
        flow = Flow(
            str(flow_data["trigger"]),
            str(flow_data["pattern"]),
            {str(k): str(v) for k, v in (flow_data.get("params") or {}).items()},
        )
        faults = []
        for item in data["faults"]:
            if item.get("kind") not in FAULT_KINDS:
                raise ScheduleError(f"{where}: unknown fault kind {item.get('kind')!r}")
            faults.append(Fault(**item))
        return flow, Schedule(int(data["seed"]), tuple(faults))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ScheduleError(f"{where}: not an explorer schedule: {exc}") from None


def save(
    directory: str,
    flow: Flow,
    schedule: Schedule,
    found: Sequence[str],
    inventory: str | None = None,
) -> Path:
    """Write the schedule as ``DIR/<trigger>-<seed>.json``; its path."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    target = path / f"{flow.trigger}-{schedule.seed}.json"
    target.write_text(json.dumps(to_json(flow, schedule, found, inventory), indent=2) + "\n")
    return target


def load(path: str) -> tuple[Flow, Schedule]:
    try:
        with open(path, encoding="utf-8") as fp:
            data = json.load(fp)
    except FileNotFoundError:
        raise ScheduleError(f"{path}: no such file") from None
    except (OSError, json.JSONDecodeError) as exc:
        raise ScheduleError(f"{path}: {exc}") from None
    if not isinstance(data, dict):
        raise ScheduleError(f"{path}: not an explorer schedule")
    return from_json(data, path)
