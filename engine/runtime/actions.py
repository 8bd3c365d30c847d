"""Running one step's action, or one probe, against the backend.

Actions never touch the journal: they return an ``ActionResult`` and the executor decides
what to record. Commands are rendered twice from the same template: once with real values
(shell-quoted) for the backend, once with ``<secret:NAME>`` for the journal.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fleetlog.dsl import evaluate, render
from fleetlog.dsl.spec import CallAction, ProbeSpec, RunAction, WaitAction
from fleetlog.engine.backends.base import (
    BackendError,
    CommandInDoubt,
    CommandResult,
    CommandTimeout,
)
from fleetlog.engine.model.values import Scope, cap, host_of
from fleetlog.errors import FleetlogError

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend


@dataclass(frozen=True)
class ActionResult:
    ok: bool
    output: str = ""
    exit_code: int | None = None
    error: str | None = None
    duration: float = 0.0
    command: str | None = None  # as journaled: secrets redacted
    #: The command was sent and its outcome is unknown (``CommandInDoubt``).
    in_doubt: bool = False
    #: The step cannot go on until an operator settles something else (an ``ensure``
    #: whose resource needs attention): why, in one line. Not a failure: nothing of the
    #: step is known to have gone wrong, and failing would run the undo meanwhile.
    attention: str | None = None


def host_for(scope: Scope, on: str | None) -> str:
    """The host a command runs on: ``on REF`` -> the referenced resource's host."""
    if on is None or on == "self":
        own = scope.record.params.get("host")
        if isinstance(own, str) and "/" in own:  # `param host: ref kvm_host`: its address
            return host_for(scope, "host")
        return host_of(scope.record)
    ref = scope.ref(on)
    if ref is not None:
        return host_of(ref)
    rid = scope.params.get(on)
    if isinstance(rid, str) and "/" in rid:
        return rid.split("/", 1)[1]
    raise FleetlogError(f"{scope.record.id}: 'on {on}' names no resource")


def _render(template: str, scope: Scope) -> tuple[str, str]:
    real = render(template, scope.lookup, scope.secret_names)
    shown = render(template, scope.lookup, scope.secret_names, redact=True)
    return real, shown


def render_for_journal(template: str, scope: Scope) -> str:
    """The command as the journal and a dry run show it: secrets as ``<secret:NAME>``."""
    return _render(template, scope)[1]


def run_command(
    backend: Backend, scope: Scope, template: str, on: str | None, timeout: float | None
) -> ActionResult:
    real, shown = _render(template, scope)
    host = host_for(scope, on)
    started = time.monotonic()
    try:
        res: CommandResult = backend.run(host, real, timeout=timeout)
    except CommandTimeout as exc:
        # No step timeout: the backend's own (a hung command it gave up on) is the one.
        waited = timeout if timeout is not None else getattr(exc, "timeout", None)
        return ActionResult(
            False,
            error=f"timed out after {float(waited or 0):g}s on {host}",
            command=shown,
            duration=time.monotonic() - started,
        )
    except CommandInDoubt as exc:
        return ActionResult(
            False,
            error=scope.redact(str(exc)),
            command=shown,
            duration=time.monotonic() - started,
            in_doubt=True,
        )
    except BackendError as exc:
        return ActionResult(
            False, error=scope.redact(str(exc)), command=shown, duration=time.monotonic() - started
        )
    text = res.stdout if not res.stderr else (res.stdout + res.stderr)
    out = cap(scope.redact(text))
    error = None
    if not res.ok:
        last = scope.redact(res.stderr or res.stdout).strip().splitlines()
        error = f"exit {res.exit_code} on {host}" + (f": {last[-1]}" if last else "")
    return ActionResult(res.ok, out, res.exit_code, error, res.duration, shown)


def probe_verdict(
    backend: Backend, scope: Scope, spec: ProbeSpec, timeout: float | None = 60.0
) -> tuple[bool | None, str]:
    """Run a read-only probe: True when its condition holds, False when it does not, and
    None when the probe itself could not run (host unreachable, timed out) — "undecided",
    which resume must not mistake for "the effect is absent"."""
    res = run_command(backend, scope, spec.command, spec.on, timeout)
    if res.exit_code is None:
        return None, res.error or ""
    if spec.op == "succeeds":
        return res.exit_code == 0, res.output
    if spec.op == "fails":
        return res.exit_code != 0, res.output
    if res.exit_code != 0:
        # ``contains``/``equals`` read the command's output, and a command that failed
        # said nothing about the effect (a listing that could not list): undecided, not
        # "absent", or a step in doubt would be run again on the strength of an error.
        return None, res.error or f"the probe exited {res.exit_code}: {res.output.strip()}"
    if spec.op == "contains":
        return (spec.expected or "") in res.output, res.output
    if spec.op == "equals":
        return res.output.strip() == (spec.expected or ""), res.output
    return False, res.output


def probe(
    backend: Backend, scope: Scope, spec: ProbeSpec, timeout: float | None = 60.0
) -> tuple[bool, str]:
    """``probe_verdict`` where "undecided" counts as "does not hold" (safe before a step:
    the step then runs and reports its own failure)."""
    verdict, output = probe_verdict(backend, scope, spec, timeout)
    return bool(verdict), output


def run_wait(
    backend: Backend, scope: Scope, action: WaitAction, sleep: Callable[[float], None]
) -> ActionResult:
    """Poll until the probe holds: at most ``timeout / every`` sleeps. Counting polls
    rather than reading a clock keeps the wait deterministic when ``sleep`` is injected
    (tests, the sim) and bounded however slow each probe is."""
    started = time.monotonic()
    polls = max(0, math.ceil(action.timeout / action.every)) if action.every > 0 else 0
    output = ""
    for i in range(polls + 1):
        holds, output = probe(backend, scope, action.probe)
        if holds:
            return ActionResult(True, output, 0, duration=time.monotonic() - started)
        if i < polls:
            sleep(action.every)
    return ActionResult(
        False,
        output,
        None,
        f"condition not met within {action.timeout:g}s",
        time.monotonic() - started,
    )


@dataclass
class PluginContext:
    """What a step plugin gets: the resource, its values, and a way to run commands on
    the same backend (so plugins work unchanged on sim, local and ssh)."""

    resource: Any
    params: dict[str, Any]
    backend: Backend
    host: str
    scope: Scope
    #: The step's ``timeout`` option (None: none set): a plugin bounds its own waits by it.
    timeout: float | None = None

    def run(
        self, command: str, *, host: str | None = None, timeout: float | None = None
    ) -> CommandResult:
        return self.backend.run(host or self.host, command, timeout=timeout)

    def secret(self, name: str) -> str:
        return self.scope.secret(name)


def run_call(
    backend: Backend,
    scope: Scope,
    action: CallAction,
    plugins: dict[str, Callable[..., Any]],
    timeout: float | None = None,
) -> ActionResult:
    fn = plugins.get(action.plugin)
    if fn is None:
        return ActionResult(False, error=f"step plugin {action.plugin!r} is not installed")
    args = {k: _arg(v, scope) for k, v in action.args}
    ctx = PluginContext(
        scope.record, dict(scope.params), backend, host_of(scope.record), scope, timeout
    )
    started = time.monotonic()
    try:
        result = fn(ctx, **args)
    except CommandInDoubt as exc:  # a command the plugin ran may have taken effect
        return ActionResult(
            False,
            error=scope.redact(str(exc)),
            duration=time.monotonic() - started,
            in_doubt=True,
        )
    except FleetlogError as exc:
        return ActionResult(
            False, error=scope.redact(str(exc)), duration=time.monotonic() - started
        )
    except Exception as exc:  # plugins are user code: any failure is the step's failure
        return ActionResult(
            False,
            error=scope.redact(f"{type(exc).__name__}: {exc}"),
            duration=time.monotonic() - started,
        )
    if isinstance(result, CommandResult):
        return ActionResult(
            result.ok,
            cap(scope.redact(result.stdout + result.stderr)),
            result.exit_code,
            None if result.ok else f"exit {result.exit_code}",
            time.monotonic() - started,
        )
    return ActionResult(
        True,
        cap(scope.redact("" if result is None else str(result))),
        0,
        duration=time.monotonic() - started,
    )


def _arg(value: Any, scope: Scope) -> Any:
    if isinstance(value, tuple) and value and value[0] in ("name", "attr", "lit"):
        return evaluate(value, scope.lookup)
    return value


def guard_holds(scope: Scope, expr: Any) -> bool:
    return bool(evaluate(expr, scope.lookup))


def run_run(
    backend: Backend, scope: Scope, action: RunAction, timeout: float | None
) -> ActionResult:
    return run_command(backend, scope, action.command, action.on, timeout)
