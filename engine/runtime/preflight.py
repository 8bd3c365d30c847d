"""Before the first side effect: what a transition will need that can be known now.

A secret used to be found missing only when the step reading it ran, after the steps
before it had changed the host (``configure_exascale`` ran eight steps, then failed at
``wallet``, leaving the host half-configured). And the local backend refused a step for a
remote host only once its turn came. Both are known before anything runs: every secret
the plan reads (in commands, checks, probes, plugin arguments, undo actions and guards),
and the host each step runs on. So the runner's ``validate`` asks here, for ``fire``,
``fire --dry-run`` and ``fire --submit`` alike, and the command is refused whole, with
every problem and its fix in one message, before anything is journaled.

The plans of the transitions an ``ensure`` step would start are read too (each target not
already in the state asked for), since they run inside this one. A step whose ``when``
guard is false now is left out: it will be skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fleetlog.dsl import placeholders
from fleetlog.dsl.guards import names
from fleetlog.dsl.spec import (
    CallAction,
    EnsureAction,
    ProbeSpec,
    RunAction,
    StepSpec,
    TransitionSpec,
    WaitAction,
)
from fleetlog.engine.model.kinds import Kind
from fleetlog.engine.model.records import Resource
from fleetlog.engine.model.values import Scope, host_of, secret_env
from fleetlog.engine.runtime import actions
from fleetlog.errors import FleetlogError, UsageError

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend

#: The most ensured resources read ahead (an ``ensure each`` over a huge list is still
#: checked member by member when it runs).
MAX_ENSURED = 256


class NotReady(UsageError):
    """The transition would fail part-way for a reason known now: refused, nothing run."""

    msg_fmt = "%(resource)s %(trigger)s: nothing was run: %(problems)s"


@dataclass
class _Found:
    #: secret name -> where it is read ("step wallet", "step x of kvm_host/n3 configure")
    secrets: dict[str, list[str]] = field(default_factory=dict)
    #: (where, host, on, resource) of each step that would run on another host than this one
    remote: list[tuple[str, str, str | None, Resource]] = field(default_factory=list)
    seen: set[tuple[str, str]] = field(default_factory=set)
    #: where the backend can run commands (the local backend: this machine only)
    local_hosts: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Lookups:
    """How to read what an ``ensure`` would act on (the runner supplies them)."""

    load: Callable[[str], Resource | None]
    kind: Callable[[str], Kind]
    scope: Callable[[Resource, str], Scope]


def check(kind: Kind, t: TransitionSpec, scope: Scope, backend: Backend, look: Lookups) -> None:
    """Raise ``NotReady`` naming every missing secret and every step the backend cannot
    run, with the fix for each; return when there is none."""
    local = backend.name == "local"
    has_ensure = any(isinstance(s.action, EnsureAction) for s in t.steps)
    if not (kind.spec.secrets or local or has_ensure):
        return  # nothing to look at: the common case costs nothing
    found = _Found()
    if local:
        from fleetlog.engine.backends.local import LOCAL_HOSTS

        found.local_hosts = LOCAL_HOSTS
    _walk(kind, t, scope, look, found, local, top=scope.record.id)
    problems: list[str] = []
    missing = [name for name in found.secrets if _unset(scope, name)]
    if missing:
        problems.append(_secrets_problem(missing, found.secrets))
    if found.remote:
        problems.append(_remote_problem(found.remote, look))
    if problems:
        raise NotReady(resource=scope.record.id, trigger=t.trigger, problems="; ".join(problems))


def _unset(scope: Scope, name: str) -> bool:
    try:
        scope.secret(name)
    except FleetlogError:
        return True
    return False


def _walk(
    kind: Kind,
    t: TransitionSpec,
    scope: Scope,
    look: Lookups,
    found: _Found,
    local: bool,
    top: str,
) -> None:
    rid = scope.record.id
    found.seen.add((rid, t.trigger))
    where_suffix = "" if rid == top else f" of {rid} {t.trigger}"
    secret_names = {s.name for s in kind.spec.secrets}
    if t.skip_if is not None:
        _note_secrets(found, secret_names, _probe_names(t.skip_if), "skip if" + where_suffix)
    for step in t.steps:
        if step.when is not None and not _may_run(scope, step.when):
            continue
        where = f"step {step.name}{where_suffix}"
        _note_secrets(found, secret_names, _step_names(step), where)
        if local:
            for host, on in _hosts(scope, step):
                if host not in found.local_hosts:
                    found.remote.append((where, host, on, scope.record))
                    break
        if isinstance(step.action, EnsureAction):
            _ensured(step.action, scope, look, found, local, top)


def _may_run(scope: Scope, when: Any) -> bool:
    """False only when the guard is known to be false now (an error: it may run)."""
    try:
        return actions.guard_holds(scope, when)
    except FleetlogError:
        return True


def _ensured(
    a: EnsureAction, scope: Scope, look: Lookups, found: _Found, local: bool, top: str
) -> None:
    if a.ref == "self":
        targets: list[Any] = [scope.record.id]
    elif a.each:
        value = scope.params.get(a.ref)
        targets = list(value) if isinstance(value, list) else []
    else:
        targets = [scope.params.get(a.ref)]
    for rid in targets[:MAX_ENSURED]:
        if not isinstance(rid, str) or (rid, a.trigger) in found.seen:
            continue
        rec = scope.record if rid == scope.record.id else look.load(rid)
        if rec is None or (rec.in_progress is None and rec.state == a.state):
            continue  # nothing to start (a missing resource fails the step on its own)
        try:
            kind = look.kind(rec.kind)
            t = kind.transition(a.trigger)
        except (KeyError, FleetlogError):
            continue
        _walk(kind, t, look.scope(rec, a.trigger), look, found, local, top)


def _probe_names(p: ProbeSpec) -> Iterator[tuple[str, str | None]]:
    yield from placeholders(p.command)


def _action_names(a: Any) -> Iterator[tuple[str, str | None]]:
    if isinstance(a, RunAction):
        yield from placeholders(a.command)
    elif isinstance(a, CallAction):
        for _key, value in a.args:
            if isinstance(value, tuple) and value and value[0] in ("name", "attr"):
                yield from names(value)
    elif isinstance(a, WaitAction):
        yield from _probe_names(a.probe)


def _step_names(step: StepSpec) -> Iterator[tuple[str, str | None]]:
    yield from _action_names(step.action)
    if step.check is not None:
        yield from _probe_names(step.check)
    if step.compensate is not None:
        yield from _action_names(step.compensate)


def _note_secrets(
    found: _Found, secret_names: set[str], used: Iterator[tuple[str, str | None]], where: str
) -> None:
    if not secret_names:
        return
    for name, attr in used:
        if attr is None and name in secret_names:
            places = found.secrets.setdefault(name, [])
            if where not in places:
                places.append(where)


def _hosts(scope: Scope, step: StepSpec) -> Iterator[tuple[str, str | None]]:
    """(host, on) of every command the step sends: its action, check and undo."""
    a = step.action
    ons: list[str | None] = []
    if isinstance(a, RunAction):
        ons.append(a.on)
    elif isinstance(a, WaitAction):
        ons.append(a.probe.on)
    elif isinstance(a, CallAction):
        yield host_of(scope.record), None  # a plugin's ctx.run runs on the resource's host
    if step.check is not None:
        ons.append(step.check.on)
    if isinstance(step.compensate, RunAction):
        ons.append(step.compensate.on)
    for on in ons:
        try:
            yield actions.host_for(scope, on), on
        except FleetlogError:
            continue  # 'on' naming nothing: the step reports it when it runs


def _secrets_problem(missing: list[str], used: dict[str, list[str]]) -> str:
    parts = [f"{name!r} ({', '.join(used[name])})" for name in missing]
    envs = ", ".join(secret_env(name) for name in missing)
    word = "secret" if len(missing) == 1 else "secrets"
    verb = "is" if len(missing) == 1 else "are"
    return (
        f"{word} {', '.join(parts)} {verb} not set: export {envs} "
        "(secrets are read from the environment, never stored in the journal)"
    )


def _remote_problem(remote: list[tuple[str, str, str | None, Resource]], look: Lookups) -> str:
    where, host, on, rec = remote[0]
    more = f" (and {len(remote) - 1} more)" if len(remote) > 1 else ""
    if on not in (None, "self"):
        rule = f"it runs `on {on}`, the host of the resource {on} names"
        fix = f"use --backend ssh to reach {host!r}"
        return (
            f"the local backend runs commands only on this machine, but {where}{more} "
            f"would run on {host!r}: {rule}; {fix}"
        )
    rule = "a step without `on` runs on the resource's `host` param, else on its name"
    kind = look.kind(rec.kind).spec
    if any(p.name == "host" for p in kind.params):
        fix = (
            f"create the resource with --param host=localhost (`fleetlog add "
            f"{rec.kind}/NAME --param host=localhost`), or use --backend ssh to reach {host!r}"
        )
    else:
        fix = (
            f'declare `param host: str = "localhost"` in machine {rec.kind} '
            f"({kind.filename or 'its .fsm file'}) and add the resource again, or use "
            f"--backend ssh to reach {host!r}"
        )
    return (
        f"the local backend runs commands only on this machine (localhost), but "
        f"{where}{more} would run on {host!r} ({rule}): {fix}"
    )
