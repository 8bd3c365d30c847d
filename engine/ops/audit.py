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

from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.records import Resource
from fleetlog.engine.model.replay import replay_all
from fleetlog.journal.base import Event, Journal

TRANSITION_END = ("transition.completed", "transition.failed", "transition.aborted")
#: Events that belong to a transition (grouped under it by correlation id).
TRANSITION_PARTS = (
    "command.accepted",
    "transition.started",
    "step.started",
    "step.succeeded",
    "step.failed",
    "step.skipped",
    "step.resolved",
    "attention.required",
    "lock.acquired",
    "lock.released",
    "lock.broken",
    *TRANSITION_END,
)
OUTPUT_EXCERPT = 300


def _ts(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def _duration(start: str | None, end: str | None) -> float | None:
    if not start or not end:
        return None
    return round((_ts(end) - _ts(start)).total_seconds(), 6)


def _who(ev: Event) -> dict[str, Any]:
    return {"actor": ev.actor, "host": ev.host, "at": ev.recorded_at, "seq": ev.seq}


class _Index:
    """What causation chains need from the whole journal (up to ``to_seq``)."""

    def __init__(self, journal: Journal, to_seq: int | None) -> None:
        self.steps: dict[str, Event] = {}
        self.transitions: dict[str, Event] = {}
        self.commands: dict[str, Event] = {}
        self.by_id: dict[str, Event] = {}
        types = ("command.accepted", "transition.started", "step.started", "drift.detected")
        for ev in journal.read_all(to_seq=to_seq, types=types):
            self.by_id[ev.event_id] = ev
            if ev.type == "step.started":
                self.steps[ev.event_id] = ev
            elif ev.correlation_id is not None:
                table = self.transitions if ev.type == "transition.started" else self.commands
                table.setdefault(ev.correlation_id, ev)

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
            link: dict[str, Any] = {
                "resource": step.stream,
                "step": step.payload.get("step"),
                "attempt": step.payload.get("attempt"),
                "step_seq": step.seq,
                "transition_id": step.correlation_id,
            }
            if parent is not None:
                link.update(
                    trigger=parent.payload.get("trigger"),
                    **{"from": parent.payload.get("from"), "to": parent.payload.get("to")},
                )
            if command is not None:
                link["command"] = {"command_id": command.command_id, **_who(command)}
            links.append(link)
            if parent is None:
                break
            cur = parent
        return links


def _step_entry(steps: dict[tuple[str, bool], dict[str, Any]], ev: Event) -> dict[str, Any]:
    p = ev.payload
    key = (str(p.get("step")), bool(p.get("undo")))
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
    started = next((e for e in events if e.type == "transition.started"), None)
    command = next((e for e in events if e.type == "command.accepted"), None)
    head = started or events[0]
    p = head.payload
    steps: dict[tuple[str, bool], dict[str, Any]] = {}
    attention: list[dict[str, Any]] = []
    locks: list[dict[str, Any]] = []
    end: Event | None = None
    for ev in events:
        t = ev.type
        if t == "step.started":
            st = _step_entry(steps, ev)
            st["attempts"].append(
                {
                    "attempt": ev.payload.get("attempt"),
                    "started_at": ev.recorded_at,
                    "started_seq": ev.seq,
                    "ended_at": None,
                    "outcome": "in_doubt",
                }
            )
            st["status"] = "running"
        elif t in ("step.succeeded", "step.failed"):
            st = _step_entry(steps, ev)
            q = ev.payload
            attempt = next(
                (a for a in reversed(st["attempts"]) if a["attempt"] == q.get("attempt")), None
            )
            if attempt is None:
                attempt = {"attempt": q.get("attempt"), "started_at": None}
                st["attempts"].append(attempt)
            outcome = "succeeded" if t == "step.succeeded" else "failed"
            attempt.update(
                ended_at=ev.recorded_at,
                outcome=outcome,
                duration=q.get("duration", _duration(attempt.get("started_at"), ev.recorded_at)),
                exit_code=q.get("exit_code"),
                error=q.get("error"),
                output=str(q.get("output") or "")[-OUTPUT_EXCERPT:],
                via=q.get("via"),
                command=q.get("command"),
            )
            st["status"] = outcome
        elif t == "step.skipped":
            st = _step_entry(steps, ev)
            st["status"] = "skipped"
            st["skipped"] = ev.payload.get("reason")
        elif t in ("attention.required", "step.resolved"):
            attention.append({"type": t, **ev.payload, **_who(ev)})
        elif t.startswith("lock."):
            locks.append({"type": t, **_who(ev), **ev.payload})
        elif t in TRANSITION_END:
            end = ev
    if end is None:
        outcome = "in_progress"
    elif end.type == "transition.completed":
        outcome = "skipped" if end.payload.get("skipped") else "completed"
    else:
        outcome = end.type.split(".", 1)[1]
    entry: dict[str, Any] = {
        "kind": "transition",
        "seq": head.seq,
        "at": head.recorded_at,
        "last_seq": events[-1].seq,
        "last_at": events[-1].recorded_at,
        "transition_id": head.correlation_id,
        "trigger": p.get("trigger"),
        "from": p.get("from"),
        "to": p.get("to"),
        "outcome": outcome,
        "state_after": end.payload.get("to") if end else None,
        "ended_at": end.recorded_at if end else None,
        "duration": _duration(head.recorded_at, end.recorded_at) if end else None,
        "error": end.payload.get("error") if end else None,
        "failed_step": end.payload.get("step") if end else None,
        "params": p.get("params"),
        "definition_hash": p.get("definition_hash"),
        "command": None
        if command is None
        else {
            "command_id": command.command_id,
            "params": command.payload.get("params"),
            **_who(command),
        },
        "cause": index.chain(started) if started is not None else [],
        "steps": list(steps.values()),
        "attention": attention,
        "locks": locks,
    }
    if end is not None and end.payload.get("skipped"):
        entry["skipped"] = end.payload.get("skipped")
    return entry


def _single(ev: Event, by_cause: dict[str, Event]) -> dict[str, Any]:
    p = ev.payload
    base: dict[str, Any] = {
        "seq": ev.seq,
        "at": ev.recorded_at,
        "last_seq": ev.seq,
        "last_at": ev.recorded_at,
        **{"actor": ev.actor, "host": ev.host},
    }
    t = ev.type
    if t == "resource.created":
        return {
            **base,
            "kind": "created",
            "state": p.get("state"),
            "params": p.get("params"),
            "finding": p.get("finding"),
        }
    if t == "backend.observed":
        return {
            **base,
            "kind": "observation",
            "status": p.get("status"),
            "event_time": p.get("event_time"),
            "message_id": p.get("message_id"),
            "source": p.get("source"),
            "job": p.get("job"),
        }
    if t == "drift.detected":
        fix = by_cause.get(ev.event_id)
        return {
            **base,
            "kind": "drift",
            "class": p.get("class"),
            "evidence": p.get("evidence"),
            "unfixable": p.get("unfixable"),
            "event_id": ev.event_id,
            "fixed_by": None
            if fix is None
            else {
                "seq": fix.seq,
                "type": fix.type,
                "to": fix.payload.get("to", fix.payload.get("state")),
                **_who(fix),
            },
        }
    if t == "state.reconciled":
        finding = p.get("finding") or {}
        return {
            **base,
            "kind": "reconciled",
            "from": p.get("from"),
            "to": p.get("to"),
            "finding": finding,
        }
    detail = {k: v for k, v in p.items() if not isinstance(v, dict | list)}
    return {**base, "kind": "event", "type": t, "detail": detail}


def resource_timeline(
    events: list[Event], index: _Index, since: str | None = None
) -> list[dict[str, Any]]:
    """Entries for one stream, in journal order; ``since`` is ``seq:N`` or an ISO time."""
    groups: dict[str, list[Event]] = {}
    order: list[tuple[int, str, Any]] = []
    by_cause = {
        e.causation_id: e
        for e in events
        if e.causation_id and e.type in ("state.reconciled", "resource.created")
    }
    for ev in events:
        corr = ev.correlation_id
        if ev.type in TRANSITION_PARTS and corr is not None:
            if corr not in groups:
                groups[corr] = []
                order.append((ev.seq, "t", corr))
            groups[corr].append(ev)
        else:
            order.append((ev.seq, "e", ev))
    entries: list[dict[str, Any]] = []
    for _seq, what, item in order:
        if what == "t":
            grp = groups[item]
            if not any(e.type == "transition.started" for e in grp):
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
    if since.isdigit():
        return f"seq:{since}"
    from fleetlog.engine.ops.ingest import iso_time

    try:
        return iso_time(since)
    except ValueError:
        from fleetlog.errors import UsageError

        raise UsageError(f"--since {since!r}: expected a seq number or an ISO time") from None


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
            out.append(f"{pad}- {label:<18} {detail}")
        for a in e["attention"]:
            out.append(f"{pad}! {a['type']} {a.get('step')}: {a.get('reason')}")
        return out
    return [f"{at}  {e.get('type')} {e.get('detail')}"]
