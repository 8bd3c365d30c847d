"""Webhook notifications: being told about needs-attention, failed transitions, drift and
finished fan-outs instead of polling for them (docs/notifications.md).

The journal is the source of truth, so notifications are read from it, not raised from
hooks scattered through the runtime: a ``Watch`` reads the events of the notified types
appended since the command opened its journal (every few seconds while it runs, so a
long fan-out, a worker or ``reconcile --every`` reports as it goes, and once more at the
end), and a ``Sender`` posts each as signed JSON from one background thread. Nothing
here ever blocks a step or changes an exit code: the queue is bounded (an overflow is
counted, not waited for), a delivery is retried with back-off, and at the end the
command waits a bounded time for the queue to drain, then says in one warning line what
was not delivered.

Payloads are built from journal events only, which never hold a secret; the journal's
URL (a PostgreSQL URL may hold a password) is never sent, and the webhook URL (whose
path is often its credential) is shown only as scheme, host and port.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import queue
import shlex
import threading
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetlog.engine.model import events as ev
from fleetlog.errors import UsageError
from fleetlog.journal import Event, Journal
from fleetlog.limits import escape
from fleetlog.secretfile import read_private

#: The event types notified, and the name each goes by in a notification.
NOTIFIED: Mapping[str, str] = {
    ev.ATTENTION_REQUIRED: "needs_attention",
    ev.TRANSITION_FAILED: "transition_failed",
    ev.DRIFT_DETECTED: "drift_found",
    ev.PLAN_FINISHED: "plan_finished",
    # only when the state it ends in is declared ``: error`` (an HA pair ``degraded``)
    ev.TRANSITION_COMPLETED: "entered_error_state",
}
SCHEMA = "fleetlog.notification/1"
SIGNATURE_HEADER = "X-Fleetlog-Signature"
TIMESTAMP_HEADER = "X-Fleetlog-Timestamp"
EVENT_HEADER = "X-Fleetlog-Event"
DELIVERY_HEADER = "X-Fleetlog-Delivery"
#: The secret itself, for when it comes from a secret store through the environment.
SECRET_ENV = "FLEETLOG_NOTIFY_SECRET"
MIN_SECRET = 16
#: A string longer than this in a payload is cut (an error, a reason, evidence).
MAX_TEXT = 2000


def _fail(message: str) -> UsageError:
    return UsageError(f"--notify: {message}")


@dataclass(frozen=True)
class Target:
    """Where notifications go and the secret that signs them (never shown)."""

    url: str = field(repr=False)
    secret: bytes | None = field(default=None, repr=False)

    @property
    def shown(self) -> str:
        """The URL as messages show it: scheme, host and port only, since a webhook's
        path or query is often its credential."""
        parts = urllib.parse.urlsplit(self.url)
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}"

    def __repr__(self) -> str:
        return f"Target({self.shown})"


def load_target(url: str | None, secret_file: str | None, secret_env: str | None) -> Target | None:
    """The webhook ``--notify URL`` names, with its secret from ``secret_file``
    (``--notify-secret-file``, mode 0600) or ``secret_env`` (``FLEETLOG_NOTIFY_SECRET``);
    None without a URL. A bad URL or secret is a usage error before any work."""
    if not url:
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _fail("expected an http:// or https:// URL with a host")
    try:
        _ = parts.port
    except ValueError:
        raise _fail("the URL's port is not a number from 0 to 65535") from None
    if any(c.isspace() or not c.isprintable() for c in url):
        raise _fail("the URL holds a space or a control character")
    return Target(url, load_secret(secret_file, secret_env))


def load_secret(path: str | None, env: str | None) -> bytes | None:
    """The signing secret: the contents of ``path`` (stripped), or ``env``."""
    if path and env:
        raise UsageError(
            f"the notification secret is given twice (--notify-secret-file and {SECRET_ENV}): "
            "give one"
        )
    if path:
        secret, where = read_private(path, "notify secret file"), f"notify secret file {path}"
    elif env:
        secret, where = env.strip().encode("utf-8"), SECRET_ENV
    else:
        return None
    if len(secret) < MIN_SECRET:
        raise UsageError(
            f"{where} holds a secret of {len(secret)} bytes: use at least {MIN_SECRET}"
        )
    return secret


# ---------------------------------------------------------------------------- payloads
def _bounded(value: Any) -> Any:
    """``value`` with every long string cut, so one verbose error cannot make a
    notification the receiver refuses."""
    if isinstance(value, str):
        return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"
    if isinstance(value, Mapping):
        return {str(k): _bounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_bounded(v) for v in value]
    return value


#: Whether a kind's state is declared ``: error`` (``Watch`` asks the registry).
ErrorStates = Callable[[str, str], bool]


def notification(
    event: Event, journal: Journal, error_state: ErrorStates | None = None
) -> dict[str, Any] | None:
    """The notification of a journal event (None: a type that is not notified). Built
    from the event alone (and, for a plan, the plan's ``plan.started``). A completed
    transition is notified only when it ends in an error state (``error_state``)."""
    name = NOTIFIED.get(event.type)
    p = ev.read(event)
    if name is None or p is None:
        return None
    resource = event.stream
    details: dict[str, Any]
    if isinstance(p, ev.TransitionCompleted):
        kind = resource.partition("/")[0]
        if error_state is None or not error_state(kind, str(p.target)):
            return None
        details = {"trigger": p.trigger, "from": p.source, "to": p.target}
    elif isinstance(p, ev.AttentionRequired):
        details = {"step": p.step, "reason": p.reason}
        if p.step:
            # the line to type once the operator knows whether the step took effect
            details["resolve"] = (
                f"fleetlog resolve {shlex.quote(resource)} --step {shlex.quote(p.step)} "
                "--as done --reason 'it took effect'"
            )
            details["resolve_as"] = ["done", "retry", "abort"]
    elif isinstance(p, ev.TransitionFailed):
        details = {
            "trigger": p.trigger,
            "from": p.source,
            "to": p.target,
            "step": p.step,
            "error": p.error,
        }
    elif isinstance(p, ev.DriftDetected):
        resource = p.resource or resource
        details = {"class": p.cls, "evidence": p.evidence}
        if p.fix is not None:
            details["fix"] = p.fix
        if p.unfixable is not None:
            details["unfixable"] = p.unfixable
    elif isinstance(p, ev.PlanFinished):
        details = {"plan": resource.removeprefix("plan/"), "counts": p.counts}
        started = next(
            (e for e in journal.read_stream(resource) if e.type == ev.PLAN_STARTED), None
        )
        if started is not None:
            plan = ev.PlanStarted.from_payload(started.payload)
            details.update(
                trigger=plan.trigger, pattern=plan.pattern, members=len(plan.members or [])
            )
    else:  # pragma: no cover - NOTIFIED and the branches above name the same types
        return None
    return {
        "schema": SCHEMA,
        "event": name,
        "delivery": event.event_id,
        "resource": resource,
        "journal_event": {
            "seq": event.seq,
            "id": event.event_id,
            "type": event.type,
            "stream": event.stream,
            "version": event.version,
            "recorded_at": event.recorded_at,
            "actor": event.actor,
            "host": event.host,
        },
        "details": _bounded(details),
    }


def sign(secret: bytes, body: bytes) -> str:
    """The signature header's value: ``sha256=`` and the HMAC-SHA256 of the raw body in
    hex (as GitHub signs webhooks). The body holds ``sent_at``, so the time a receiver
    checks against replays is signed too."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def encode(payload: Mapping[str, Any], sent_at: int) -> bytes:
    return json.dumps({**payload, "sent_at": sent_at}, sort_keys=True, default=str).encode()


# ---------------------------------------------------------------------------- sending
@dataclass
class Undelivered:
    """What a sender gave up on: how many, out of how many, and the last reason."""

    count: int
    total: int
    last_error: str | None


class Sender:
    """Posts notifications in order from one daemon thread.

    ``put`` never waits: a full queue drops the notification and counts it. A delivery
    is retried on a connection error, a timeout, 408, 429 and 5xx, ``attempts`` times in
    all, waiting ``backoff``, then twice that, ...; any other answer outside 2xx is
    final. ``close`` waits at most ``wait`` seconds for the queue to drain."""

    def __init__(
        self,
        target: Target,
        *,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float = 3.0,
        capacity: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.target = target
        self.attempts = attempts
        self.backoff = backoff
        self.timeout = timeout
        self.clock = clock
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue(capacity)
        self._lock = threading.Lock()
        self._abandon = threading.Event()
        self._thread: threading.Thread | None = None
        self.submitted = 0
        self.delivered = 0
        self.last_error: str | None = None

    def put(self, payload: dict[str, Any]) -> None:
        with self._lock:
            self.submitted += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="fleetlog-notify", daemon=True
                )
                self._thread.start()
        try:
            self._queue.put_nowait(payload)
        except queue.Full:
            with self._lock:
                self.last_error = "too many notifications queued"

    def close(self, wait: float) -> Undelivered | None:
        """Stop taking notifications, wait up to ``wait`` seconds for the queue to
        drain; what was not delivered (None: everything was)."""
        thread = self._thread
        if thread is not None:
            deadline = time.monotonic() + wait
            while True:  # the end marker must get in even when the queue is full
                try:
                    self._queue.put(None, timeout=0.05)
                    break
                except queue.Full:
                    if time.monotonic() >= deadline or not thread.is_alive():
                        break
            thread.join(max(0.0, deadline - time.monotonic()))
            self._abandon.set()  # a retry still waiting gives up; a request in flight
            # ends within its timeout in a daemon thread nobody waits for
        with self._lock:
            missing = self.submitted - self.delivered
            if missing <= 0:
                return None
            return Undelivered(missing, self.submitted, self.last_error)

    def _run(self) -> None:
        while True:
            payload = self._queue.get()
            if payload is None or self._abandon.is_set():
                return
            if self._deliver(payload):
                with self._lock:
                    self.delivered += 1

    def _deliver(self, payload: dict[str, Any]) -> bool:
        for attempt in range(1, self.attempts + 1):
            retry, error = self._post(payload)
            if error is None:
                return True
            with self._lock:
                self.last_error = error
            if not retry or attempt == self.attempts:
                return False
            if self._abandon.wait(self.backoff * 2 ** (attempt - 1)):
                return False
        return False

    def _post(self, payload: dict[str, Any]) -> tuple[bool, str | None]:
        """One attempt: (worth retrying, error or None when delivered)."""
        import urllib.error
        import urllib.request

        sent_at = int(self.clock())
        body = encode(payload, sent_at)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "fleetlog-notify",
            EVENT_HEADER: str(payload.get("event")),
            DELIVERY_HEADER: str(payload.get("delivery")),
            TIMESTAMP_HEADER: str(sent_at),
        }
        if self.target.secret is not None:
            headers[SIGNATURE_HEADER] = sign(self.target.secret, body)
        request = urllib.request.Request(self.target.url, body, headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read(65536)
            return False, None
        except urllib.error.HTTPError as e:
            e.close()
            return e.code in (408, 429) or e.code >= 500, f"HTTP {e.code}"
        except urllib.error.URLError as e:
            return True, _reason(e.reason)
        except (OSError, ValueError) as e:  # a timeout, a reset, a bad answer
            return True, _reason(e)


def _reason(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        text = reason.strerror
    elif isinstance(reason, TimeoutError) or "timed out" in str(reason):
        text = "timed out"
    else:
        text = str(reason) or type(reason).__name__
    return escape(text[:200])


# ---------------------------------------------------------------------------- watching
class Watch:
    """Reads the notified events the journal receives from ``start`` on and hands each
    to ``sink``. Only once this process has written to the journal: a reading command
    never notifies. Events another process appended meanwhile are read too; receivers
    tell repeats apart by ``delivery`` (the journal event's id)."""

    def __init__(
        self,
        journal: Journal,
        sink: Callable[[dict[str, Any]], None],
        *,
        interval: float = 2.0,
    ) -> None:
        self.journal = journal
        self.sink = sink
        self.interval = interval
        self.last = journal.head()
        self._error_states: set[tuple[str, str]] | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="fleetlog-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.scan()
            except Exception:  # a journal busy or closing: the final scan reads it again
                continue

    def scan(self) -> None:
        with self._lock:
            if not self.journal.wrote:
                return
            for event in self.journal.read_all(from_seq=self.last, types=tuple(NOTIFIED)):
                self.last = event.seq
                payload = notification(event, self.journal, self._is_error_state)
                if payload is not None:
                    self.sink(payload)

    def _is_error_state(self, kind: str, state: str) -> bool:
        """From the machine definitions, loaded once, when a transition first completes."""
        if self._error_states is None:
            from fleetlog.engine.model.loader import load_registry

            try:
                registry = load_registry()
                self._error_states = {
                    (k.name, st.name) for k in registry for st in k.spec.states if st.error
                }
            except Exception:  # the command itself reports a broken definition
                self._error_states = set()
        return (kind, state) in self._error_states

    def stop(self) -> str | None:
        """Stop the periodic reads and read what is left (before the journal closes);
        why that read failed, if it did (the command's outcome stands either way)."""
        self._stop.set()
        self._thread.join()
        try:
            self.scan()
        except Exception as exc:
            return f"the journal could not be read for notifications: {_reason(exc)}"
        return None


class Notifier:
    """A command's notifications: ``watch`` the journal it opens, ``stop`` before that
    journal closes, ``finish`` at the end for the warning line (or None)."""

    def __init__(
        self, target: Target, *, interval: float = 2.0, wait: float = 5.0, **sender: Any
    ) -> None:
        self.target = target
        self.interval = interval
        self.wait = wait
        self.sender = Sender(target, **sender)
        self._watch: Watch | None = None
        self._problem: str | None = None

    def watch(self, journal: Journal) -> None:
        if self._watch is None:
            self._watch = Watch(journal, self.sender.put, interval=self.interval)

    def stop(self) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            self._problem = watch.stop()

    def finish(self) -> list[str]:
        """Wait (a bounded time) for the queue to drain; the warning lines to show."""
        self.stop()
        lines = [self._problem] if self._problem else []
        missing = self.sender.close(self.wait)
        if missing is not None:
            why = f" (last error: {missing.last_error})" if missing.last_error else ""
            lines.append(
                f"{missing.count} of {missing.total} notification(s) not delivered to "
                f"{self.target.shown}{why}"
            )
        return lines
