"""The audit timeline: every state a resource was in, and why.

Built from the journal alone (up to ``--at``), so it answers for any point in the past:
per resource, in journal order — its creation; each transition with the command that
asked for it (actor, host), its steps with every attempt, outcome and duration, and the
*causation chain* that explains it (kvm_host/node3 was configured because step
``exascale`` of vm/g9's ``clone`` ensured it, and that clone was asked by alice@ops1);
backend observations; drift findings and the fixes they caused.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from fleetlog import limits
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.records import Resource
from fleetlog.engine.model.replay import replay_all
from fleetlog.engine.ops.ingest import iso_time
from fleetlog.errors import UsageError
from fleetlog.journal.base import Event, Journal

#: Events that belong to a transition (grouped under it by correlation id).
TRANSITION_PARTS = frozenset(
    (
        ev.COMMAND_ACCEPTED,
        ev.TRANSITION_STARTED,
        *ev.STEP_TYPES,
        ev.ATTENTION_REQUIRED,
        ev.LOCK_ACQUIRED,
        ev.LOCK_RELEASED,
        ev.LOCK_BROKEN,
        *ev.TRANSITION_ENDS,
    )
)
OUTPUT_EXCERPT = 300


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _duration(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((_ts(end) - _ts(start)).total_seconds(), 6)


def _who(event: Event) -> dict[str, Any]:
    return {"actor": event.actor, "host": event.host, "at": event.recorded_at, "seq": event.seq}


class _Index:
    """What causation chains need from the whole journal (up to ``to_seq``)."""

    def __init__(self, journal: Journal, to_seq: int | None) -> None:
        self.steps: dict[str, Event] = {}
        self.transitions: dict[str, Event] = {}
        self.commands: dict[str, Event] = {}
        self.by_id: dict[str, Event] = {}
        types = (ev.COMMAND_ACCEPTED, ev.TRANSITION_STARTED, ev.STEP_STARTED, ev.DRIFT_DETECTED)
        for event in journal.read_all(to_seq=to_seq, types=types):
            self.by_id[event.event_id] = event
            if event.type == ev.STEP_STARTED:
                self.steps[event.event_id] = event
            elif event.correlation_id is not None:
                started = event.type == ev.TRANSITION_STARTED
                table = self.transitions if started else self.commands
                table.setdefault(event.correlation_id, event)

    def chain(self, started: Event) -> list[dict[str, Any]]:
        """Why a transition ran: parent step, its transition and that one's command, up
        to a transition nobody caused (an operator's command)."""
        links: list[dict[str, Any]] = []
        seen: set[str] = set()
        cur = started
        while cur.causation_id and cur.causation_id not in seen:
            seen.add(cur.causation_id)
            step = self.steps.get(cur.causation_id)
            if step is None:
                cause = self.by_id.get(cur.causation_id)
                links.append(
                    {"event_id": cur.causation_id, "type": cause.type if cause else None}
                    | ({"resource": cause.stream, "seq": cause.seq} if cause else {})
                )
                break
            parent = self.transitions.get(step.correlation_id or "")
            command = self.commands.get(step.correlation_id or "")
            sp = ev.StepStarted.from_payload(step.payload)
            link: dict[str, Any] = {
                "resource": step.stream,
                "step": sp.step,
                "attempt": sp.attempt,
                "step_seq": step.seq,
                "transition_id": step.correlation_id,
            }
            if parent is not None:
                tp = ev.TransitionStarted.from_payload(parent.payload)
                link.update(trigger=tp.trigger, **{"from": tp.source, "to": tp.target})
            if command is not None:
                link["command"] = {"command_id": command.command_id, **_who(command)}
            links.append(link)
            if parent is None:
                break
            cur = parent
        return links


def _step_entry(
    steps: dict[tuple[str, bool], dict[str, Any]], step: str, undo: bool | None
) -> dict[str, Any]:
    key = (str(step), bool(undo))
    if key not in steps:
        steps[key] = {
            "step": key[0],
            "undo": key[1],
            "status": "pending",
            "attempts": [],
            "skipped": None,
        }
    return steps[key]


def _transition(events: list[Event], index: _Index) -> dict[str, Any]:
    started = next((e for e in events if e.type == ev.TRANSITION_STARTED), None)
    command = next((e for e in events if e.type == ev.COMMAND_ACCEPTED), None)
    head = started or events[0]
    p = ev.TransitionStarted.from_payload(head.payload)
    steps: dict[tuple[str, bool], dict[str, Any]] = {}
    attention: list[dict[str, Any]] = []
    locks: list[dict[str, Any]] = []
    end: Event | None = None
    for event in events:
        q = ev.read(event)
        if isinstance(q, ev.StepStarted):
            st = _step_entry(steps, q.step, q.undo)
            st["attempts"].append(
                {
                    "attempt": q.attempt,
                    "started_at": event.recorded_at,
                    "started_seq": event.seq,
                    "ended_at": None,
                    "outcome": "in_doubt",
                }
            )
            st["status"] = "running"
        elif isinstance(q, ev.StepSucceeded | ev.StepFailed):
            st = _step_entry(steps, q.step, q.undo)
            attempt = next((a for a in reversed(st["attempts"]) if a["attempt"] == q.attempt), None)
            if attempt is None:
                attempt = {"attempt": q.attempt, "started_at": None}
                st["attempts"].append(attempt)
            outcome = "succeeded" if isinstance(q, ev.StepSucceeded) else "failed"
            duration = q.duration if isinstance(q, ev.StepSucceeded) else None
            attempt.update(
                ended_at=event.recorded_at,
                outcome=outcome,
                duration=duration
                if duration is not None
                else _duration(attempt.get("started_at"), event.recorded_at),
                exit_code=q.exit_code,
                error=q.error,
                output=str(q.output or "")[-OUTPUT_EXCERPT:],
                via=q.via if isinstance(q, ev.StepSucceeded) else None,
                command=q.command,
            )
            st["status"] = outcome
        elif isinstance(q, ev.StepInDoubt):
            st = _step_entry(steps, q.step, q.undo)
            attempt = next((a for a in reversed(st["attempts"]) if a["attempt"] == q.attempt), None)
            if attempt is not None:
                attempt.update(ended_at=event.recorded_at, outcome="in_doubt", error=q.reason)
            st["status"] = "in_doubt"
        elif isinstance(q, ev.StepSkipped):
            st = _step_entry(steps, q.step, q.undo)
            st["status"] = "skipped"
            st["skipped"] = q.reason
        elif isinstance(q, ev.AttentionRequired | ev.StepResolved):
            attention.append({"type": event.type, **event.payload, **_who(event)})
            if isinstance(q, ev.StepResolved):
                _resolved(_step_entry(steps, q.step, False), q, event)
            elif q.step is not None:
                _step_entry(steps, q.step, False)["status"] = "needs_attention"
        elif isinstance(q, ev.LockAcquired | ev.LockReleased | ev.LockBroken):
            locks.append({"type": event.type, **_who(event), **event.payload})
        elif event.type in ev.TRANSITION_ENDS:
            end = event
    ended = _end(end)
    if end is None:
        outcome = "in_progress"
    elif isinstance(ended, ev.TransitionCompleted):
        outcome = "skipped" if ended.skipped else "completed"
    else:
        outcome = end.type.split(".", 1)[1]
    accepted = ev.CommandAccepted.from_payload(command.payload) if command else None
    entry: dict[str, Any] = {
        "kind": "transition",
        "seq": head.seq,
        "at": head.recorded_at,
        "last_seq": events[-1].seq,
        "last_at": events[-1].recorded_at,
        "transition_id": head.correlation_id,
        "trigger": p.trigger,
        "from": p.source,
        "to": p.target,
        "outcome": outcome,
        "state_after": ended.target if ended else None,
        "ended_at": end.recorded_at if end else None,
        "duration": _duration(head.recorded_at, end.recorded_at) if end else None,
        "error": getattr(ended, "error", None),
        "failed_step": getattr(ended, "step", None),
        "params": p.params,
        "definition_hash": p.definition_hash,
        "command": None
        if command is None or accepted is None
        else {"command_id": command.command_id, "params": accepted.params, **_who(command)},
        "cause": index.chain(started) if started is not None else [],
        "steps": list(steps.values()),
        "attention": attention,
        "locks": locks,
        "interruptions": _interruptions(events),
    }
    if isinstance(ended, ev.TransitionCompleted) and ended.skipped:
        entry["skipped"] = ended.skipped
    return entry


def _resolved(st: dict[str, Any], q: ev.StepResolved, event: Event) -> None:
    """An operator's decision settles the step the journal left in doubt: it is no
    longer shown as running."""
    st["resolved"] = {"as": q.how, "reason": q.reason, **_who(event)}
    st["status"] = {"done": "succeeded", "retry": "pending", "abort": "failed"}.get(
        q.how, st["status"]
    )
    doubtful = [a for a in st["attempts"] if a.get("outcome") == "in_doubt"]
    if doubtful:
        doubtful[-1].update(outcome=f"resolved as {q.how}", ended_at=event.recorded_at)


def _owner(owner: str) -> str:
    """``host:pid:nonce`` of a lease owner (the rest identifies the boot and namespace)."""
    return owner.split(";", 1)[0]


def _interruptions(events: list[Event]) -> list[dict[str, Any]]:
    """Where the transition's run was cut and taken up again, from its lease events: a
    holder that died (its lease broken, or taken over without a release) is a crash;
    a lease released before the end (needs attention, a worker stopped) is a pause; each
    later taking of the lease is a resume. Also what was running when the cut came."""
    out: list[dict[str, Any]] = []
    holder: str | None = None
    started = False
    running: str | None = None  # the step started and not finished, if any
    paused_for: str | None = None
    for event in events:
        q = ev.read(event)
        if isinstance(q, ev.TransitionStarted):
            started = True
        elif event.type in ev.TRANSITION_ENDS:
            started = False  # the lease let go after the end is no pause
        elif isinstance(q, ev.StepStarted) and not q.undo:
            running = q.step
        elif isinstance(q, ev.StepSucceeded | ev.StepFailed | ev.StepSkipped | ev.StepResolved):
            running = None if getattr(q, "undo", False) is False else running
        elif isinstance(q, ev.AttentionRequired):
            paused_for = f"needs attention at step {q.step}"
        elif isinstance(q, ev.LockBroken):
            out.append(
                {
                    "what": "crashed",
                    "owner": _owner(q.previous_owner),
                    "step": running,
                    "reason": q.reason,
                    **_who(event),
                }
            )
            holder = None
        elif isinstance(q, ev.LockReleased):
            if holder is not None and started:
                out.append(
                    {
                        "what": "paused",
                        "owner": _owner(q.owner),
                        "reason": paused_for,
                        **_who(event),
                    }
                )
            holder = None
        elif isinstance(q, ev.LockAcquired):
            if holder is not None and holder != q.owner:
                out.append(
                    {
                        "what": "crashed",
                        "owner": _owner(holder),
                        "step": running,
                        "reason": "its lease was taken over without a release",
                        **_who(event),
                    }
                )
            if started:
                out.append({"what": "resumed", "owner": _owner(q.owner), **_who(event)})
            holder = q.owner
            paused_for = None
    return out


def _end(
    end: Event | None,
) -> ev.TransitionCompleted | ev.TransitionFailed | ev.TransitionAborted | None:
    p = ev.read(end) if end is not None else None
    if isinstance(p, ev.TransitionCompleted | ev.TransitionFailed | ev.TransitionAborted):
        return p
    return None


def _single(event: Event, by_cause: dict[str, Event]) -> dict[str, Any]:
    p = ev.read(event)
    base: dict[str, Any] = {
        "seq": event.seq,
        "at": event.recorded_at,
        "last_seq": event.seq,
        "last_at": event.recorded_at,
        **{"actor": event.actor, "host": event.host},
    }
    if isinstance(p, ev.ResourceCreated):
        return {
            **base,
            "kind": "created",
            "state": p.state,
            "params": p.params,
            "finding": p.finding,
        }
    if isinstance(p, ev.BackendObserved):
        return {
            **base,
            "kind": "observation",
            "status": p.status,
            "event_time": p.event_time,
            "message_id": p.message_id,
            "source": p.source,
            "job": p.job,
        }
    if isinstance(p, ev.DriftDetected):
        fix = by_cause.get(event.event_id)
        return {
            **base,
            "kind": "drift",
            "class": p.cls,
            "evidence": p.evidence,
            "unfixable": p.unfixable,
            "event_id": event.event_id,
            "fixed_by": None if fix is None else {**_fix(fix), **_who(fix)},
        }
    if isinstance(p, ev.StateReconciled):
        return {
            **base,
            "kind": "reconciled",
            "from": p.source,
            "to": p.target,
            "finding": p.finding or {},
        }
    detail = {k: v for k, v in event.payload.items() if not isinstance(v, dict | list)}
    return {**base, "kind": "event", "type": event.type, "detail": detail}


def _fix(fix: Event) -> dict[str, Any]:
    """What a fix event did: the state it put the resource in."""
    p = ev.read(fix)
    to = p.target if isinstance(p, ev.StateReconciled) else getattr(p, "state", None)
    return {"seq": fix.seq, "type": fix.type, "to": to}


def resource_timeline(
    events: list[Event], index: _Index, since: str | None = None
) -> list[dict[str, Any]]:
    """Entries for one stream, in journal order; ``since`` is ``seq:N`` or an ISO time."""
    groups: dict[str, list[Event]] = {}
    order: list[tuple[int, str, Any]] = []
    by_cause = {
        e.causation_id: e
        for e in events
        if e.causation_id and e.type in (ev.STATE_RECONCILED, ev.RESOURCE_CREATED)
    }
    for event in events:
        corr = event.correlation_id
        if event.type in TRANSITION_PARTS and corr is not None:
            if corr not in groups:
                groups[corr] = []
                order.append((event.seq, "t", corr))
            groups[corr].append(event)
        else:
            order.append((event.seq, "e", event))
    entries: list[dict[str, Any]] = []
    for _seq, what, item in order:
        if what == "t":
            grp = groups[item]
            if not any(e.type == ev.TRANSITION_STARTED for e in grp):
                # Only lock events (a lock taken for a transition that never started):
                # history, shown as plain events.
                entries.extend(_single(e, by_cause) for e in grp)
                continue
            entries.append(_transition(grp, index))
        else:
            entries.append(_single(item, by_cause))
    if since is not None:
        entries = [e for e in entries if _after(e, since)]
    return entries


def _after(entry: dict[str, Any], since: str) -> bool:
    if since.startswith("seq:"):
        return int(entry["last_seq"]) >= int(since[4:])
    return str(entry["last_at"]) >= since


def since_bound(since: str | None) -> str | None:
    """``--since``: digits are a seq (``seq:N``), else an ISO time normalised to UTC."""
    if since is None:
        return None
    seq = limits.parse_seq(since, "--since")
    if seq is not None:
        return f"seq:{seq}"
    try:
        return iso_time(since)
    except ValueError:
        raise UsageError(
            f"--since {limits.shown(since, 40)}: expected a seq number or an ISO time "
            "(e.g. 1200 or 2026-11-25T14:02:00Z) between 1970 and 9999"
        ) from None


def build(
    journal: Journal,
    registry: KindRegistry,
    streams: Iterable[str],
    *,
    to_seq: int | None = None,
    since: str | None = None,
) -> list[dict[str, Any]]:
    """The timeline of every stream in ``streams`` as of ``to_seq`` (None: now)."""
    records: dict[str, Resource] = replay_all(journal, registry, to_seq=to_seq)
    index = _Index(journal, to_seq)
    out: list[dict[str, Any]] = []
    head = journal.head() if to_seq is None else min(to_seq, journal.head())
    for sid in streams:
        events = journal.read_stream(sid, to_seq=to_seq)
        if not events:
            continue
        rec = records.get(sid)
        ip = rec.in_progress if rec else None
        out.append(
            {
                "resource": sid,
                "kind": sid.split("/", 1)[0],
                "state": rec.state if rec else None,
                "known": rec is not None,
                "observed": rec.observed if rec else None,
                "in_progress": None
                if ip is None
                else {
                    "trigger": ip.trigger,
                    "source": ip.source,
                    "target": ip.target,
                    "step": ip.step,
                },
                "version": events[-1].version,
                "as_of_seq": head,
                "entries": resource_timeline(events, index, since),
            }
        )
    return out


# ---------------------------------------------------------------------------- text
def _fmt_dur(seconds: float | None) -> str:
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def cause_text(links: list[dict[str, Any]]) -> str:
    """``because step `exascale` (attempt 1) of vm/g9's clone ensured it; … asked by …``"""
    if not links:
        return ""
    parts = []
    for link in links:
        if "step" not in link:
            parts.append(f"caused by {link.get('type') or 'event'} {link.get('event_id')}")
            continue
        s = (
            f"step `{link['step']}` (attempt {link.get('attempt')}) of "
            f"{link['resource']}'s {link.get('trigger')} ({link.get('from')} -> {link.get('to')})"
        )
        parts.append(s)
    text = "because " + ", which ran because ".join(parts) + " ensured it"
    root = links[-1].get("command")
    if root:
        text += f"; that was asked by {root['actor']}@{root['host']} at {root['at']}"
    return text


def render_text(timeline: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for res in timeline:
        state = res["state"] or "not in the journal (findings only)"
        ip = res["in_progress"]
        if ip:
            state += f", in progress {ip['source']} -> {ip['target']} ({ip['trigger']})"
        lines.append(f"{res['resource']} — {state} (as of seq {res['as_of_seq']})")
        for e in res["entries"]:
            lines.extend("  " + x for x in _entry_lines(e))
        lines.append("")
    return lines


def _entry_lines(e: dict[str, Any]) -> list[str]:
    at = f"seq {e['seq']:<5} {e['at']}"
    k = e["kind"]
    if k == "created":
        extra = " (adopted: orphan finding)" if e.get("finding") else ""
        return [f"{at}  created in {e['state']} by {e['actor']}@{e['host']}{extra}"]
    if k == "observation":
        return [
            f"{at}  observed {e['status']!r} at {e['event_time']} "
            f"(source {e['source']}, message {e['message_id']})"
        ]
    if k == "drift":
        ev = e.get("evidence") or {}
        s = (
            f"{at}  drift {e['class']}: journal {ev.get('journal_state')}, backend "
            f"{ev.get('observed')!r} -> {ev.get('mapped_state')} "
            f"(sha256 {str(ev.get('raw_sha256'))[:12]}…)"
        )
        out = [s]
        if e.get("unfixable"):
            out.append(f"{' ' * 26}unfixable: {e['unfixable']}")
        if e.get("fixed_by"):
            f = e["fixed_by"]
            out.append(f"{' ' * 26}fixed at seq {f['seq']} by {f['actor']}@{f['host']}")
        return out
    if k == "reconciled":
        f = e.get("finding") or {}
        return [
            f"{at}  reconciled {e['from']} -> {e['to']} by {e['actor']}@{e['host']} "
            f"({f.get('class')} finding, backend {f.get('observed')!r})"
        ]
    if k == "transition":
        pad = " " * 26
        head = f"{at}  {e['trigger']}: {e['from']} -> {e['to']}  {e['outcome']}"
        if e["duration"] is not None:
            head += f" in {_fmt_dur(e['duration'])}"
        if e.get("error"):
            head += f": {e['error']}"
        out = [head]
        cmd = e.get("command")
        if cmd:
            out.append(f"{pad}asked by {cmd['actor']}@{cmd['host']} (command {cmd['command_id']})")
        if e["cause"]:
            out.append(f"{pad}{cause_text(e['cause'])}")
        for st in e["steps"]:
            tries = st["attempts"]
            dur = sum(a.get("duration") or 0 for a in tries)
            label = st["step"] + (" (undo)" if st["undo"] else "")
            detail = st["status"]
            if st["skipped"]:
                detail += f" ({st['skipped']})"
            if tries:
                detail += f", {len(tries)} attempt{'s' if len(tries) != 1 else ''}"
                detail += f", {_fmt_dur(dur)}"
            errors = [a.get("error") for a in tries if a.get("error")]
            if errors:
                detail += f": {errors[-1]}"
            done = st.get("resolved")
            if done:
                detail += (
                    f" (resolved as {done['as']} by {done['actor']}@{done['host']} at seq "
                    f"{done['seq']}: {done['reason']})"
                )
            out.append(f"{pad}- {label:<18} {detail}")
        # What happened to the run, in journal order: attention, decisions, crashes,
        # pauses and resumes.
        notes = [
            (a["seq"], f"{pad}! {a['type']} {a.get('step')}: {a.get('reason')}")
            for a in e["attention"]
        ]
        notes += [
            (cut["seq"], f"{pad}~ seq {cut['seq']:<5} {_cut_text(cut)}")
            for cut in e.get("interruptions", ())
        ]
        out.extend(line for _seq, line in sorted(notes, key=lambda n: n[0]))
        return out
    return [f"{at}  {e.get('type')} {e.get('detail')}"]


def _cut_text(cut: dict[str, Any]) -> str:
    if cut["what"] == "crashed":
        during = f" during step {cut['step']}" if cut.get("step") else " between steps"
        return (
            f"crashed: {cut['owner']} stopped{during} ({cut['reason']}; found by "
            f"{cut['actor']}@{cut['host']})"
        )
    if cut["what"] == "paused":
        why = f": {cut['reason']}" if cut.get("reason") else ""
        return f"paused: {cut['owner']} let go{why}"
    return f"resumed by {cut['actor']}@{cut['host']} ({cut['owner']})"
