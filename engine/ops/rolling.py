"""Rolling fan-outs: a canary, batches in order, a start rate and a failure budget per batch.

``--parallel`` only caps how many members run at once. A thousand nodes logging in to
two iSCSI targets together, or a bad image rolled to the whole fleet before anyone
notices, are what these are for:

- ``--canary K``: the first K members run alone. Any of them failing (or needing
  attention) stops the fan-out with the rest not started. When all K are done the
  fan-out goes on only if ``--yes`` was given or the ``--canary-check`` probe passes;
  otherwise it stops and waits for ``fleetlog resume --plan ID --yes``.
- ``--batch N`` or ``--batch N%``: the members after the canary run in batches of N (or
  N% of all members, rounded up, at least one), each batch finished before the next
  starts, in the plan's (natural) order.
- ``--max-fail PCT`` applies to each batch on its own: once more than PCT% of a batch's
  members failed, no more of that batch start and no later batch starts. Without
  ``--batch`` the whole plan is one batch, as before.
- ``--rate N/s`` (or ``N/m``): members start at most N per second (per minute), evenly
  spaced, across batches; ``--parallel`` still caps how many run at once.

This module holds the parts that need no journal: reading the options, splitting the
members into batches, the verdict at the end of a batch, the pacer and the probe.
``plans.run_plan`` drives them, and journals the batches with the plan.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from fleetlog.errors import UsageError

#: How long a ``--canary-check`` command may run before it counts as failed.
CHECK_TIMEOUT = 300.0
#: Ways a plan continued past a batch (``plan.continued``'s ``by``).
BY_YES, BY_CHECK, BY_ACCEPT = "yes", "canary-check", "accept-failures"

_BATCH = re.compile(r"([0-9]{1,9})(%?)")
_RATE = re.compile(r"([0-9]{1,9}(?:\.[0-9]{1,6})?)/(s|m)")


class RolloutError(UsageError):
    """A rolling option that cannot be used as given (exit 2)."""


def parse_batch(text: str) -> tuple[int, bool]:
    """``--batch``: (N, True when N is a percentage)."""
    m = _BATCH.fullmatch(text.strip())
    if m is None:
        raise RolloutError(f"--batch {text!r}: give a number of members (10) or a share (10%)")
    n, percent = int(m.group(1)), bool(m.group(2))
    if n < 1 or (percent and n > 100):
        what = "between 1% and 100%" if percent else "at least 1"
        raise RolloutError(f"--batch {text!r}: a batch must be {what}")
    return n, percent


def parse_rate(text: str) -> float:
    """``--rate``: starts per second."""
    m = _RATE.fullmatch(text.strip())
    if m is None:
        raise RolloutError(f"--rate {text!r}: give starts per second or minute, e.g. 5/s or 30/m")
    n = float(m.group(1))
    if n <= 0:
        raise RolloutError(f"--rate {text!r}: the rate must be more than 0")
    return n if m.group(2) == "s" else n / 60.0


def batch_sizes(total: int, batch: str | None, canary: int) -> list[int]:
    """The sizes of the batches of a plan of ``total`` members, in order: the canary's
    first (if any), then batches of ``--batch`` (a share is of all members, rounded up),
    the last one holding what is left."""
    sizes = [canary] if canary else []
    rest = total - canary
    if batch is None:
        return [*sizes, rest] if rest else sizes
    n, percent = parse_batch(batch)
    size = max(1, math.ceil(total * n / 100)) if percent else n
    while rest > 0:
        sizes.append(min(size, rest))
        rest -= sizes[-1]
    return sizes


@dataclass(frozen=True)
class Rollout:
    """The rolling options of one plan, as journaled with it (all None/0: a plain
    fan-out, one batch)."""

    batch: str | None = None
    sizes: tuple[int, ...] = ()
    canary: int = 0
    canary_check: str | None = None
    rate: str | None = None

    @property
    def rolling(self) -> bool:
        return bool(self.batch or self.canary or self.rate)

    @property
    def per_second(self) -> float | None:
        return parse_rate(self.rate) if self.rate else None

    def split(self, members: Sequence[str]) -> list[list[str]]:
        """``members`` in their batches (one batch when the plan has none)."""
        if not self.sizes:
            return [list(members)]
        out, start = [], 0
        for size in self.sizes:
            out.append(list(members[start : start + size]))
            start += size
        return out

    def describe(self) -> str:
        """One line for ``status --plan``: 'canary 2, batches of 10%, 5/s'."""
        parts = []
        if self.canary:
            check = f" (check: {self.canary_check})" if self.canary_check else ""
            parts.append(f"canary {self.canary}{check}")
        if self.batch:
            parts.append(f"batches of {self.batch}")
        if self.rate:
            parts.append(f"at most {self.rate}")
        return ", ".join(parts)


def rollout(
    total: int,
    *,
    batch: str | None = None,
    canary: int = 0,
    canary_check: str | None = None,
    rate: str | None = None,
) -> Rollout:
    """Check the rolling options of a fan-out of ``total`` members; one usage error
    (exit 2, one line) for the first that is wrong."""
    if batch is not None:
        parse_batch(batch)
    if rate is not None:
        parse_rate(rate)
    if canary < 0:
        raise RolloutError(f"--canary {canary}: give the number of members to try first")
    if canary and canary >= total:
        raise RolloutError(
            f"--canary {canary}: the canary must leave members after it (the pattern names {total})"
        )
    if canary_check is not None and not canary:
        raise RolloutError("--canary-check probes the canary: give --canary K with it")
    if canary_check is not None and not canary_check.strip():
        raise RolloutError("--canary-check: give a shell command")
    sizes = tuple(batch_sizes(total, batch, canary)) if (batch or canary) else ()
    return Rollout(batch, sizes, canary, canary_check, rate)


# -------------------------------------------------------------- the end of a batch
@dataclass(frozen=True)
class Verdict:
    """What the end of a batch says about starting the next one.

    ``go``: start it. Otherwise ``reason`` says why not, ``members`` names the members
    it is about, ``failures`` says the failures (not an unconfirmed canary) are why,
    and ``confirm`` that the canary is done and waits for ``--yes`` or its check."""

    go: bool
    reason: str = ""
    members: tuple[str, ...] = ()
    failures: bool = False
    confirm: bool = False


GO = Verdict(True)


def verdict(
    statuses: Mapping[str, str],
    *,
    canary: bool,
    max_fail: float,
    forgiven: frozenset[str] = frozenset(),
    confirmed: bool = False,
) -> Verdict:
    """The verdict at the end of one batch, from where each member stands (the plan's
    member statuses: done, failed, attention, running, not_started). ``forgiven``:
    failures an operator accepted (``resume --accept-failures``); ``confirmed``: the
    canary was confirmed or passed its check."""
    failed = tuple(r for r, s in statuses.items() if s == "failed" and r not in forgiven)
    if canary:
        failed += tuple(r for r, s in statuses.items() if s == "attention" and r not in forgiven)
    size = max(1, len(statuses))
    if canary and failed:
        return Verdict(False, "the canary failed", failed, failures=True)
    if not canary and len(failed) * 100.0 / size > max_fail:
        return Verdict(False, "--max-fail reached", failed, failures=True)
    open_ = tuple(r for r, s in statuses.items() if s in ("running", "not_started"))
    if open_:
        return Verdict(False, "members of the batch are still running elsewhere", open_)
    if canary and not confirmed:
        return Verdict(False, "the canary waits for confirmation", confirm=True)
    return GO


# ------------------------------------------------------------------------- pacing
class Pacer:
    """``--rate``: hands out start times ``1/rate`` apart to any number of threads; the
    first start is at once. A start waits (sleeps) for its slot, never a lock."""

    def __init__(self, per_second: float) -> None:
        self.interval = 1.0 / per_second
        self._lock = threading.Lock()
        self._next = 0.0

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            at = max(now, self._next)
            self._next = at + self.interval
        if at > now:
            time.sleep(at - now)


# --------------------------------------------------------------------- the probe
@dataclass(frozen=True)
class CheckResult:
    passed: bool
    #: The command's exit status (None: it could not run or timed out).
    code: int | None
    #: Its last line of output, or why it did not run.
    detail: str


def run_check(
    command: str, *, plan: str, trigger: str, canary: Sequence[str], timeout: float = CHECK_TIMEOUT
) -> CheckResult:
    """Run ``--canary-check`` on this machine: ``/bin/sh -c COMMAND`` with fleetlog's
    environment plus ``FLEETLOG_PLAN``, ``FLEETLOG_TRIGGER`` and ``FLEETLOG_CANARY`` (the
    canary's resource ids, space-separated). Values reach it through the environment,
    never spliced into the command, so no quoting can go wrong. Exit 0 passes."""
    import subprocess  # only a canary check runs one: not every command's start-up

    env = dict(os.environ)
    env.update(FLEETLOG_PLAN=plan, FLEETLOG_TRIGGER=trigger, FLEETLOG_CANARY=" ".join(canary))
    try:
        done = subprocess.run(
            ["/bin/sh", "-c", command],
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return CheckResult(False, None, f"timed out after {timeout:g}s")
    except OSError as exc:
        return CheckResult(False, None, f"could not run: {exc.strerror or exc}")
    lines = [line for line in (done.stdout + "\n" + done.stderr).splitlines() if line.strip()]
    return CheckResult(done.returncode == 0, done.returncode, lines[-1].strip() if lines else "")
