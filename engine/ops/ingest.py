"""Backend event messages -> ``backend.observed`` events.

Messages arrive one per top-level ``{…}`` value (docs/reconcile.md has the reference):

- fleetlog's own JSON messages, one per line:
  ``{"id": "m1", "resource": "vm/g1", "status": "running", "event_time": "…Z"}``;
- any format a machine pack declares as an ingest source (``Pack.ingest_sources``): the
  built-in pack reads Ganeti job results, which are Python literals (``'``, ``None``,
  ``True``), often pretty-printed over many lines. Parsing is JSON first, then
  ``ast.literal_eval`` on one complete message — never ``eval`` — and the first source
  that accepts the parsed value turns it into messages.

Framing: a message is one top-level ``{…}`` value; it starts at a ``{`` and ends where its
brackets balance (quotes respected), so it may span lines. Between messages only blank
lines and ``#`` comments are allowed; anything else is garbage.

Order of effects: the whole input is framed, parsed and validated first; one bad message
refuses the input with ``FILE:LINE: problem`` and journals nothing (``skip_bad`` journals
the good ones and reports the bad). Then, in input order, a message whose id was already
applied to its resource is a duplicate, and one whose event time is not newer than the
last applied for that resource is out of order: both are dropped and counted, so
redelivery and reordering are harmless. Appends carry the stream's expected version, so
two ingesters racing on one resource cannot both apply an older message.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from fleetlog import limits, packs
from fleetlog.engine.model import events as ev
from fleetlog.engine.model.kinds import Kind, KindRegistry
from fleetlog.engine.model.listing import text_of
from fleetlog.engine.model.records import Resource, split_id
from fleetlog.engine.model.replay import fold
from fleetlog.engine.model.statusmap import job_rule_state, map_status
from fleetlog.errors import FleetlogError, UsageError
from fleetlog.journal.base import ConcurrencyConflict, Journal

MAX_MESSAGE_CHARS = 1 << 20
_OPEN = {"{": "}", "[": "]", "(": ")"}
_CLOSE = {v: k for k, v in _OPEN.items()}


class IngestError(UsageError):
    """A message that cannot be read: garbage, truncated, or missing what is needed."""

    msg_fmt = "%(source)s:%(line)s: %(problem)s"


@dataclass(frozen=True)
class Message:
    """One backend event about one resource.

    ``status``: the backend's status of the resource, when the message says it (read
    through the kind's observe map). ``operation`` and ``job_status``: the backend job the
    message reports (``OP_INSTANCE_STARTUP``, ``success``), read through the kind's
    ``job`` rules. ``fields``: backend fields the message carries (``be/vcpus`` after a
    resize), read through the kind's ``compare`` clauses. ``progress`` (0-100) and
    ``logmsg`` are journaled as they are. ``job``: evidence (ids, raw statuses).
    """

    line: int
    message_id: str
    resource: str
    status: str | None
    event_time: str
    source: str
    job: dict[str, Any] | None = None
    operation: str | None = None
    job_status: str | None = None
    fields: dict[str, Any] | None = None
    progress: float | None = None
    logmsg: str | None = None


class IngestSource(Protocol):
    """A message format a machine pack contributes (``Pack.ingest_sources``)."""

    name: str

    def accepts(self, data: dict[str, Any]) -> bool:
        """Whether ``data`` (one parsed message) is in this source's format."""
        ...

    def messages(self, data: dict[str, Any], line: int, kind: str) -> tuple[list[Message], int]:
        """(messages, parts ignored) for one parsed message; ``kind`` is the kind its
        resources are (``--ganeti-kind``). ``ValueError`` for a malformed one."""
        ...


def pack_sources() -> list[IngestSource]:
    """Every ingest source the installed machine packs declare, in pack order."""
    return [packs.resolve(ref) for ref in packs.discover().named("ingest_sources")]


@dataclass
class IngestReport:
    read: int = 0
    applied: int = 0
    duplicates: int = 0
    out_of_order: int = 0
    unknown: list[str] = field(default_factory=list)
    ignored: int = 0
    moved: int = 0  # state changes the messages caused
    attributes: int = 0  # attribute updates (a resize)
    after_delete: int = 0  # messages for resources the journal has in a final state
    in_progress: int = 0  # journaled, but nothing moved under a running transition
    bad: list[str] = field(default_factory=list)
    applied_seqs: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "read": self.read,
            "applied": self.applied,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "unknown": len(self.unknown),
            "unknown_resources": sorted(set(self.unknown)),
            "ignored": self.ignored,
            "moved": self.moved,
            "attributes": self.attributes,
            "after_delete": self.after_delete,
            "in_progress": self.in_progress,
            "bad": len(self.bad),
            "errors": self.bad,
        }


# ---------------------------------------------------------------------------- framing
def frame(lines: Iterable[str], source: str = "-") -> Iterator[tuple[int, str]]:
    """``(first line number, text)`` of each message; garbage raises ``IngestError``."""
    buf: list[str] = []
    stack: list[str] = []
    start = 0
    quote: str | None = None
    escape = False
    lineno = 0
    size = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        i = 0
        if stack:
            buf.append("\n")
        while i < len(line):
            ch = line[i]
            if not stack:
                if ch.isspace():
                    i += 1
                    continue
                if ch == "#":
                    break
                if ch != "{":
                    raise IngestError(
                        source=source,
                        line=lineno,
                        problem="expected a message starting with '{', "
                        f"found {line[i : i + 20]!r}",
                    )
                start, buf, size = lineno, [], 0
            buf.append(ch)
            size += 1
            if size > MAX_MESSAGE_CHARS:
                raise IngestError(
                    source=source,
                    line=start,
                    problem=f"message longer than {MAX_MESSAGE_CHARS} characters",
                )
            if quote is not None:
                if escape:
                    escape = False
                elif ch == "\\":
                    escape = True
                elif ch == quote:
                    quote = None
            elif ch in "'\"":
                quote = ch
            elif ch in _OPEN:
                stack.append(ch)
            elif ch in _CLOSE:
                if not stack or stack[-1] != _CLOSE[ch]:
                    raise IngestError(
                        source=source, line=lineno, problem=f"unbalanced {ch!r} in a message"
                    )
                stack.pop()
                if not stack:
                    rest = line[i + 1 :].strip()
                    if rest and not rest.startswith("#"):
                        raise IngestError(
                            source=source,
                            line=lineno,
                            problem=f"text after the end of a message: {rest[:20]!r}",
                        )
                    yield start, "".join(buf)
                    buf = []
                    break
            i += 1
        if quote is not None and not escape:
            raise IngestError(source=source, line=lineno, problem="unterminated string")
        escape = False
    if stack:
        raise IngestError(
            source=source,
            line=start,
            problem=f"truncated message: it starts here and the input ends at line {lineno} "
            f"with {len(stack)} bracket(s) open",
        )


def parse_message(text: str) -> Any:
    """JSON first; else a Python literal via ``ast.literal_eval`` (never ``eval``)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        json_error = exc
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
        detail = exc.msg if isinstance(exc, SyntaxError) and exc.msg else type(exc).__name__
        raise ValueError(
            f"neither JSON ({json_error.msg}) nor a Python literal ({detail})"
        ) from None


# ---------------------------------------------------------------------------- meaning
def iso_time(value: Any) -> str:
    """An event time as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC): an ISO string (UTC when it
    has no zone), unix seconds, or Ganeti's ``[seconds, microseconds]``; between 1970 and
    9999 (``fleetlog.limits``), else ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError(f"not a time: {_shown(value)}")
    try:
        if (
            isinstance(value, list | tuple)
            and len(value) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        ):
            when = _from_timestamp(value[0], value)
            when += timedelta(microseconds=value[1])
        elif isinstance(value, int | float):
            when = _from_timestamp(value, value)
        elif isinstance(value, str) and value.strip():
            try:
                when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                raise ValueError(f"not an ISO time: {_shown(value)}") from None
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            when = when.astimezone(UTC)
        else:
            raise ValueError(f"not a time: {_shown(value)}")
    except (OverflowError, OSError):  # beyond what datetime (or the C library) can hold
        raise ValueError(f"not a time between 1970 and 9999: {_shown(value)}") from None
    if not limits.MIN_TIME <= when <= limits.MAX_TIME:
        raise ValueError(f"not a time between 1970 and 9999: {_shown(value)}")
    return limits.iso(when)


def _from_timestamp(seconds: float, value: Any) -> datetime:
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except ValueError:  # NaN, or a year datetime cannot hold
        raise ValueError(f"not a time between 1970 and 9999: {_shown(value)}") from None


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return limits.shown(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _resource_of(value: Any) -> str:
    if isinstance(value, dict):
        kind, name = value.get("kind"), value.get("name")
        if not isinstance(kind, str) or not isinstance(name, str):
            raise ValueError("'resource' object needs string 'kind' and 'name'")
        value = f"{kind}/{name}"
    if not isinstance(value, str):
        raise ValueError('\'resource\' must be "KIND/NAME" or {"kind", "name"}')
    split_id(value)
    return value


def fleetlog_message(d: dict[str, Any], line: int) -> Message:
    """fleetlog's own message: a ``status``, or a job's ``operation`` and ``job_status``
    (or both), optional backend ``fields``, ``progress`` (0-100) and ``logmsg``."""
    missing = [k for k in ("id", "resource", "event_time") if k not in d]
    has_job = "operation" in d or "job_status" in d
    if "status" not in d and not has_job:
        missing.append("status")
    if missing:
        raise ValueError(f"message without {', '.join(repr(m) for m in missing)}")
    mid = d["id"]
    if not isinstance(mid, str | int) or isinstance(mid, bool) or mid == "":
        raise ValueError("'id' must be a non-empty string or an integer")
    status = d.get("status")
    if status is not None and (not isinstance(status, str) or not status):
        raise ValueError("'status' must be a non-empty string")
    operation, job_status = d.get("operation"), d.get("job_status")
    if has_job and not (
        isinstance(operation, str) and operation and isinstance(job_status, str) and job_status
    ):
        raise ValueError("'operation' and 'job_status' come together, as non-empty strings")
    job = d.get("job")
    if job is not None and not isinstance(job, dict):
        raise ValueError("'job' must be an object")
    fields = d.get("fields")
    if fields is not None and (
        not isinstance(fields, dict) or not all(isinstance(k, str) for k in fields)
    ):
        raise ValueError("'fields' must be an object of backend field names")
    progress = d.get("progress")
    if progress is not None and (
        isinstance(progress, bool)
        or not isinstance(progress, int | float)
        or not 0 <= progress <= 100
    ):
        raise ValueError("'progress' must be a number from 0 to 100")
    logmsg = d.get("logmsg")
    if logmsg is not None and not isinstance(logmsg, str):
        raise ValueError("'logmsg' must be a string")
    source = d.get("source", "ingest")
    return Message(
        line,
        str(mid),
        _resource_of(d["resource"]),
        status,
        iso_time(d["event_time"]),
        str(source),
        job,
        operation=operation,
        job_status=job_status,
        fields=fields,
        progress=float(progress) if progress is not None else None,
        logmsg=logmsg,
    )


def frame_resyncing(
    lines: list[str], source: str
) -> tuple[list[tuple[int, str]], list[IngestError]]:
    """Frame everything; a message that cannot be framed (truncated, unbalanced, garbage)
    is an error at its line, and framing starts again at the line after it: every other
    line is still read."""
    framed: list[tuple[int, str]] = []
    errors: list[IngestError] = []
    start = 0
    while start < len(lines):
        try:
            for line, text in frame(lines[start:], source):
                framed.append((line + start, text))
        except IngestError as exc:
            at = int(exc.fields["line"]) + start
            errors.append(IngestError(source=source, line=at, problem=exc.fields["problem"]))
            start = at  # resume at the line after the broken one
            continue
        break
    return framed, errors


def read_messages(
    lines: Iterable[str],
    registry: KindRegistry,
    *,
    source: str = "-",
    source_kind: str = "vm",
    skip_bad: bool = False,
    sources: list[IngestSource] | None = None,
) -> tuple[list[Message], IngestReport]:
    """Frame, parse and validate the whole input before anything is journaled.
    ``source_kind``: the kind of the resources a pack's source reports (Ganeti
    instances are ``vm``s by default)."""
    formats = pack_sources() if sources is None else sources
    report = IngestReport()
    messages: list[Message] = []
    bad: list[IngestError] = []
    if skip_bad:
        framed, bad = frame_resyncing(list(lines), source)
    else:
        framed = list(frame(lines, source))
    for line, text in framed:
        try:
            data = parse_message(text)
            if not isinstance(data, dict):
                raise ValueError(f"a message must be an object, not {type(data).__name__}")
            fmt = next((f for f in formats if f.accepts(data)), None)
            if fmt is not None:
                found, ignored = fmt.messages(data, line, source_kind)
                report.ignored += ignored
            else:
                found = [fleetlog_message(data, line)]
            for m in found:
                registry.get(split_id(m.resource)[0])
                _check_bounds(m)
        except (ValueError, FleetlogError) as exc:
            err = IngestError(source=source, line=line, problem=str(exc))
            if not skip_bad:
                raise err from None
            bad.append(err)
            continue
        report.read += 1
        messages.extend(found)
    report.bad = [str(e) for e in sorted(bad, key=lambda e: int(e.fields["line"]))]
    return messages, report


def _check_bounds(m: Message) -> None:
    """What a message would journal holds no control character (``fleetlog.limits``): a
    status, an id or a field value from a backend is shown to operators later, and must
    not carry an escape sequence to their terminals. A log message may hold line breaks."""
    name = split_id(m.resource)[1]
    problem = limits.name_problem(name)
    if problem is not None:
        raise ValueError(f"resource {limits.shown(m.resource)}: {problem}")
    texts: list[tuple[str, Any]] = [
        ("id", m.message_id),
        ("status", m.status),
        ("source", m.source),
        ("operation", m.operation),
        ("job_status", m.job_status),
        *((f"fields.{k}", v) for k, v in (m.fields or {}).items()),
        *((f"job.{k}", v) for k, v in (m.job or {}).items()),
    ]
    for what, value in texts:
        if isinstance(value, str):
            problem = limits.text_problem(value)
            if problem is not None:
                raise ValueError(f"{limits.escape(what)} {limits.shown(value, 40)}: {problem}")
    if m.logmsg is not None:
        problem = limits.text_problem(m.logmsg, multiline=True)
        if problem is not None:
            raise ValueError(f"logmsg: {problem}")


# ---------------------------------------------------------------------------- applying
@dataclass
class _StreamView:
    version: int
    ids: set[str]
    last_time: str | None
    record: Resource | None


def _view(journal: Journal, registry: KindRegistry, rid: str) -> _StreamView:
    events = journal.read_stream(rid)
    ids: set[str] = set()
    last: str | None = None
    for event in events:
        if event.type == ev.BACKEND_OBSERVED:
            p = ev.BackendObserved.from_payload(event.payload)
            if p.message_id is not None:
                ids.add(str(p.message_id))
            t = p.event_time
            if isinstance(t, str) and (last is None or t > last):
                last = t
    version = events[-1].version if events else 0
    record = fold(events, registry).get(rid) if events else None
    return _StreamView(version, ids, last, record)


def effects(kind: Kind, rec: Resource, m: Message) -> list[ev.Payload]:
    """What one new message does to its resource, besides being journaled: a state its
    kind's rules give it (a job rule for a job's outcome, the observe map for a status),
    and the attributes its fields carry (a resize). Nothing moves under a transition in
    progress: the transition owns the state until it ends."""
    from fleetlog.engine.model.params import coerce

    out: list[ev.Payload] = []
    spec = kind.spec
    if spec.observe is None or rec.in_progress is not None:
        return out
    target: str | None = None
    if m.operation is not None and m.job_status is not None:
        target = job_rule_state(spec, [m.operation], m.job_status)
    elif m.status is not None:
        target = map_status(spec, m.status)
    if m.fields and m.job_status in (None, "success"):
        values: dict[str, Any] = {}
        for param_name, field_name in spec.observe.compared().items():
            if field_name not in m.fields:
                continue
            param = spec.param(param_name)
            raw = m.fields[field_name]
            if isinstance(raw, list | tuple):
                raw = raw[0] if param.type in ("int", "float") and len(raw) == 1 else text_of(raw)
            try:
                value = coerce(param, raw, rec.id)
            except FleetlogError:
                continue  # not a value of the param (an unknown flavor): reconcile says so
            if value != rec.params.get(param_name):
                values[param_name] = value
        if values:
            previous = {k: rec.params.get(k) for k in values}
            out.append(ev.AttributesSet(values=values, previous=previous, message=m.message_id))
    if target is not None and target != rec.state:
        moved = {
            "id": m.message_id,
            "operation": m.operation,
            "job_status": m.job_status,
            "status": m.status,
        }
        out.append(
            ev.StateReconciled(
                source=rec.state,
                target=target,
                message={k: v for k, v in moved.items() if v is not None},
            )
        )
    return out


def apply_messages(
    journal: Journal, registry: KindRegistry, messages: list[Message], report: IngestReport
) -> IngestReport:
    views: dict[str, _StreamView] = {}
    for m in messages:
        for _ in range(20):
            view = views.get(m.resource)
            if view is None:
                view = views[m.resource] = _view(journal, registry, m.resource)
            rec = view.record
            if rec is None:
                report.unknown.append(m.resource)
                break
            if m.message_id in view.ids:
                report.duplicates += 1
                break
            kind = registry.get(rec.kind)
            if kind.spec.state(rec.state).final:
                report.after_delete += 1  # Synnefo ignores messages for deleted servers
                break
            if view.last_time is not None and m.event_time <= view.last_time:
                report.out_of_order += 1
                break
            job = dict(m.job or {})
            for key, value in (
                ("operation", m.operation),
                ("status", m.job_status),
                ("progress", m.progress),
                ("logmsg", m.logmsg),
            ):
                if value is not None:
                    job.setdefault(key, value)
            observed = ev.BackendObserved(
                status=m.status,
                event_time=m.event_time,
                message_id=m.message_id,
                source=m.source,
                job=job or None,
            )
            then = effects(kind, rec, m)
            if rec.in_progress is not None and (m.operation or m.status):
                report.in_progress += 1
            drafts = [ev.new_event(observed), *(ev.new_event(p) for p in then)]
            try:
                recorded = journal.append(m.resource, drafts, expected_version=view.version)
            except ConcurrencyConflict:
                views.pop(m.resource)  # someone appended meanwhile: look again
                continue
            view.version, view.last_time = recorded[-1].version, m.event_time
            view.ids.add(m.message_id)
            for p in then:
                if isinstance(p, ev.StateReconciled):
                    rec.state = str(p.target)
                    report.moved += 1
                elif isinstance(p, ev.AttributesSet):
                    rec.params.update(p.values)
                    report.attributes += 1
            report.applied += 1
            report.applied_seqs.append(recorded[0].seq)
            break
    return report


def ingest(
    journal: Journal,
    registry: KindRegistry,
    lines: Iterable[str],
    *,
    source: str = "-",
    source_kind: str = "vm",
    skip_bad: bool = False,
) -> IngestReport:
    messages, report = read_messages(
        lines, registry, source=source, source_kind=source_kind, skip_bad=skip_bad
    )
    return apply_messages(journal, registry, messages, report)
