"""The simulated datacenter's persistent state: one SQLite database.

Why SQLite and not a dict: crash tests SIGKILL a process in the middle of a run and a
later process must find the world exactly as the dead one left it — every effect the
dead process committed, none that it did not. So each tool call's effect commits in one
``BEGIN IMMEDIATE`` transaction (run the tool on the host's state, write the state and
the world-log rows, commit) before the call returns: an effect is either wholly there or
absent. Calls from many threads share a transaction (``backends.sim.calls``).
Several processes may share one world file (``busy_timeout``); the threads of one
process share one connection behind a lock.

It is a simulation, so ``synchronous=NORMAL`` in WAL mode: commits survive a killed
process (the WAL is in the OS page cache), they just are not fsynced per call.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fleetlog.engine.backends.base import BackendError
from fleetlog.engine.backends.sim.calls import BatchReader, CallBatch, CallRequest
from fleetlog.engine.backends.sim.faults import ANY_TOOL, Fault, FaultRecord
from fleetlog.engine.backends.sim.registry import (
    ToolContext,
    ToolFailure,
    ToolFn,
    ToolResult,
    normalize,
    observers_for,
    scrub,
)
from fleetlog.journal.groupcommit import GroupCommitter, Slot

BUSY_TIMEOUT_MS = 30_000
#: The ``settings`` key that makes a world a twin: only its declared hosts exist.
TWIN_KEY = "twin"
#: The ``settings`` key holding the journal seq a twin is seeded through: the resources
#: created after it are the ones the next seeding adds (``ops.twin.sync_world``).
SEEDED_KEY = "seeded_seq"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hosts (
    host TEXT PRIMARY KEY,
    state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS world_log (
    seq INTEGER PRIMARY KEY,
    host TEXT NOT NULL,
    tool TEXT NOT NULL,
    argv TEXT NOT NULL,
    effect TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS world_log_host ON world_log(host, tool);
CREATE TABLE IF NOT EXISTS faults (
    id INTEGER PRIMARY KEY,
    spec TEXT NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS tool_calls (
    host TEXT NOT NULL,
    tool TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (host, tool)
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One side effect a fake tool had on the world."""

    seq: int
    host: str
    tool: str
    argv: list[str]
    effect: str
    at: str


@dataclass(frozen=True, slots=True)
class CallPlan:
    """What the faults decided about a call before it runs (phase one of a call)."""

    number: int | None  # None: not counted yet (its batch counts it)
    latency_ms: float
    fail: Fault | None = None
    hang: Fault | None = None
    unreachable: Fault | None = None
    drop: Fault | None = None


@dataclass(frozen=True, slots=True)
class CallOutcome:
    """What running the tool did (phase two): its result, extra latency, crash order."""

    result: ToolResult
    effects: tuple[str, ...]
    latency_ms: float
    crash: bool
    #: A fault matching this call arrived (from another process) after ``begin_call``
    #: let it through uncounted: nothing was done; plan it again.
    stale: bool = False


_STALE = CallOutcome(ToolResult(), (), 0.0, crash=False, stale=True)


def _dumps(value: Any) -> str:
    # sort_keys: equal states serialise equally, so "did the state change" is a compare.
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _read_state(conn: sqlite3.Connection, host: str) -> dict[str, Any]:
    row = conn.execute("SELECT state FROM hosts WHERE host = ?", (host,)).fetchone()
    return json.loads(row[0]) if row else {}


def _write_state(conn: sqlite3.Connection, host: str, state: Mapping[str, Any]) -> None:
    conn.execute(
        "INSERT INTO hosts(host, state) VALUES (?, ?) "
        "ON CONFLICT(host) DO UPDATE SET state = excluded.state",
        (host, _dumps(state)),
    )


class World:
    """The shared world of a :class:`~engine.backends.sim.SimBackend`.

    ``path`` None keeps it in memory (one connection behind a lock: SQLite's in-memory
    databases are per-connection); a path allows several processes to share it.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        # One connection per World, shared by this process's threads behind one lock:
        # every write had to queue on a Python lock anyway (SQLite's busy handler sleeps
        # in 1-100 ms steps, which a hundred fan-out threads turn into seconds), and with
        # one connection ``PRAGMA data_version`` changes only when *another* process
        # commits, which is what makes the caches below safe. Other processes still
        # wait on SQLite's own lock (``busy_timeout``).
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        self._closed = False
        #: ``PRAGMA data_version`` the caches below were read at. This connection's own
        #: writes keep them right: tool calls update them, anything else drops them.
        self._seen_version: int | None = None
        self._cached_faults: list[FaultRecord] | None = None
        self._cached_latency: float | None = None
        self._cached_states: dict[str, str] = {}  # host -> canonical state text
        self._cached_counts: dict[tuple[str, str], int] = {}
        #: Whether this is a twin (only declared hosts exist) and its hosts, for the
        #: reachability check every call makes.
        self._cached_twin: bool | None = None
        self._cached_hosts: frozenset[str] | None = None
        self._committer: GroupCommitter[CallRequest] = GroupCommitter(self._apply_batch)
        try:
            _create_private(path)
            self._conn()  # create the schema now, so a bad path fails here and not mid-run
        except (sqlite3.Error, OSError) as exc:
            self.close()
            raise BackendError(host="sim", reason=f"cannot open world {path}: {exc}") from exc

    # -- connections -------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path or ":memory:",
            timeout=BUSY_TIMEOUT_MS / 1000,
            isolation_level=None,  # we issue BEGIN IMMEDIATE / COMMIT ourselves
            check_same_thread=False,  # shared by threads, serialised by self._lock
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if self.path is not None:
            conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in filter(str.strip, _SCHEMA.split(";")):
                conn.execute(statement)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise RuntimeError("the simulated world is closed")
        if self._db is None:
            self._db = self._connect()
        return self._db

    def _refresh(self, conn: sqlite3.Connection) -> None:
        """Drop the caches if another process committed since they were read."""
        (version,) = conn.execute("PRAGMA data_version").fetchone()
        if version != self._seen_version:
            self._seen_version = version
            self._forget()

    def _forget(self) -> None:
        self._cached_faults = None
        self._cached_latency = None
        self._cached_states.clear()
        self._cached_counts.clear()
        self._cached_twin = None
        self._cached_hosts = None

    def _faults_cached(self, conn: sqlite3.Connection) -> list[FaultRecord]:
        if self._cached_faults is None:
            self._cached_faults = _load_faults(conn)
        return self._cached_faults

    def _latency_cached(self, conn: sqlite3.Connection) -> float:
        if self._cached_latency is None:
            self._cached_latency = _setting_latency(conn)
        return self._cached_latency

    @contextmanager
    def _transaction(
        self, *, write: bool = True, forget: bool = True
    ) -> Iterator[sqlite3.Connection]:
        """One transaction under the world's lock. Writers use ``BEGIN IMMEDIATE``: the
        write lock is taken up front, so a writer in another process queues on
        ``busy_timeout`` instead of failing on a lock upgrade."""
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                self._refresh(conn)
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if write and forget:
                self._forget()  # seeding, faults, settings: rare, so re-read them all

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
            self._db = None
            self._closed = True

    # -- faults and settings -----------------------------------------------------------

    def inject(self, fault: Fault) -> int:
        """Store ``fault``; it applies to every process using this world. Returns its id."""
        with self._transaction() as conn:
            cur = conn.execute("INSERT INTO faults(spec) VALUES (?)", (_dumps(fault.to_json()),))
            assert cur.lastrowid is not None
            return cur.lastrowid

    def remove_fault(self, fault_id: int) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM faults WHERE id = ?", (fault_id,))

    def clear_faults(self) -> None:
        with self._transaction() as conn:
            conn.execute("DELETE FROM faults")

    def faults(self) -> list[FaultRecord]:
        with self._transaction(write=False) as conn:
            return list(self._faults_cached(conn))

    @property
    def latency_ms(self) -> float:
        """Latency every call and observation sleeps (outside any lock): for benchmarks."""
        with self._transaction(write=False) as conn:
            return self._latency_cached(conn)

    @latency_ms.setter
    def latency_ms(self, value: float) -> None:
        if value < 0:
            raise ValueError("latency_ms must be >= 0")
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO settings(key, value) VALUES ('latency_ms', ?)",
                (repr(float(value)),),
            )

    # -- reading and seeding -----------------------------------------------------------

    def hosts(self) -> list[str]:
        with self._transaction(write=False) as conn:
            return [row[0] for row in conn.execute("SELECT host FROM hosts ORDER BY host")]

    def host_state(self, host: str) -> dict[str, Any]:
        """A copy of one host's state ({} for a host never touched)."""
        with self._transaction(write=False) as conn:
            return _read_state(conn, host)

    def set_host_state(self, host: str, state: Mapping[str, Any]) -> None:
        """Seed a host (test set-up, scenarios). Not a tool effect, so not logged."""
        with self._transaction() as conn:
            _write_state(conn, host, state)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every host's state: compare an interrupted+resumed run with a clean one."""
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT host, state FROM hosts ORDER BY host").fetchall()
        return {host: json.loads(state) for host, state in rows}

    def log_entries(self, host: str | None = None, tool: str | None = None) -> list[LogEntry]:
        sql = "SELECT seq, host, tool, argv, effect, at FROM world_log"
        clauses, params = [], []
        if host is not None:
            clauses.append("host = ?")
            params.append(host)
        if tool is not None:
            clauses.append("tool = ?")
            params.append(tool)
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        with self._transaction(write=False) as conn:
            rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
        return [LogEntry(s, h, t, json.loads(a), e, at) for s, h, t, a, e, at in rows]

    def call_count(self, host: str, tool: str) -> int:
        """How many times ``tool`` was called on ``host`` (faulted calls included)."""
        with self._transaction(write=False) as conn:
            row = conn.execute(
                "SELECT count FROM tool_calls WHERE host = ? AND tool = ?", (host, tool)
            ).fetchone()
        return int(row[0]) if row else 0

    # -- the twin: a world that holds only the hosts it was built with ----------------

    def declare(self, states: Mapping[str, Mapping[str, Any]], meta: Mapping[str, str]) -> None:
        """Make this world a twin holding exactly ``states`` (host -> state): every
        other host is unreachable, as on a real network. Faults, call counts and the
        effect log start empty; ``meta`` (where the twin came from) is kept in the
        settings. The file is made private (0600) whatever created it."""
        with self._transaction() as conn:
            for table in ("hosts", "world_log", "tool_calls", "faults"):
                conn.execute(f"DELETE FROM {table}")
            for host, state in states.items():
                _write_state(conn, host, state)
            rows = [(TWIN_KEY, "1"), *meta.items()]
            conn.executemany("INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)", rows)
        if self.path is not None:
            os.chmod(self.path, 0o600)

    def is_empty(self) -> bool:
        """No host yet: a world nobody has seeded or used."""
        with self._transaction(write=False) as conn:
            return conn.execute("SELECT 1 FROM hosts LIMIT 1").fetchone() is None

    def seeded_through(self) -> int | None:
        """The journal seq this twin is seeded through (None: never seeded from one)."""
        value = self.setting(SEEDED_KEY)
        return None if value is None else int(value)

    def extend(
        self,
        through: int,
        build: Callable[[int, Callable[[str], dict[str, Any] | None]], Mapping[str, Any]],
    ) -> bool:
        """Add hosts to this world and make it a twin seeded through journal seq
        ``through``, in one transaction: ``build(since, existing)`` gets the seq the
        world is seeded through (0: never) and a reader of the hosts' current states,
        and returns the states of the hosts it added or changed. Nothing happens (False)
        when the world is already seeded that far, by this process or another."""
        with self._transaction() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (SEEDED_KEY,)).fetchone()
            since = 0 if row is None else int(row[0])
            if row is not None and since >= through:
                return False

            def existing(host: str) -> dict[str, Any] | None:
                found = conn.execute("SELECT state FROM hosts WHERE host = ?", (host,)).fetchone()
                return None if found is None else dict(json.loads(found[0]))

            for host, state in build(since, existing).items():
                _write_state(conn, host, state)
            conn.executemany(
                "INSERT OR REPLACE INTO settings(key, value) VALUES (?, ?)",
                [(TWIN_KEY, "1"), (SEEDED_KEY, str(through))],
            )
        return True

    def setting(self, key: str) -> str | None:
        with self._transaction(write=False) as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    @property
    def is_twin(self) -> bool:
        self._twin_cache()
        return bool(self._cached_twin)

    def reachable(self, host: str) -> bool:
        """Whether ``host`` answers: every host does in a sandbox world (its state is
        made on first use); in a twin only the hosts it declares do."""
        twin, hosts = self._twin_cache()
        return not twin or host in hosts

    def _twin_cache(self) -> tuple[bool, frozenset[str]]:
        twin, hosts = self._cached_twin, self._cached_hosts
        if twin is None or hosts is None:
            with self._transaction(write=False) as conn:
                row = conn.execute(
                    "SELECT value FROM settings WHERE key = ?", (TWIN_KEY,)
                ).fetchone()
                twin = row is not None and row[0] == "1"
                hosts = frozenset(r[0] for r in conn.execute("SELECT host FROM hosts"))
                self._cached_twin, self._cached_hosts = twin, hosts
        return twin, hosts

    def record(self, host: str, tool: str, argv: list[str], effect: str) -> None:
        """Log an effect that no tool call had: a change injected from outside
        (``fleetlog sim fault add``), so the effect log says what happened behind the
        machines' backs."""
        with self._transaction(forget=False) as conn:
            conn.execute(
                "INSERT INTO world_log(host, tool, argv, effect, at) VALUES (?, ?, ?, ?, ?)",
                (host, tool, _dumps(argv), effect, _now()),
            )

    def copy_to(self, path: str) -> None:
        """Copy the whole world (states, faults, log, settings) to a new private file:
        the scratch twin a rehearsal runs on."""
        _create_private(path)
        with self._lock:
            target = sqlite3.connect(path)
            try:
                self._conn().backup(target)
            finally:
                target.close()

    # -- the two phases of a call ------------------------------------------------------

    def begin_call(
        self,
        host: str,
        tool: str,
        *,
        timeout: float | None = None,
        count: bool = False,
        argv: list[str] | None = None,
    ) -> CallPlan:
        """Let the faults decide the call's fate, before anything sleeps.

        With no fault that matches the call (the common case), nothing is read or
        written now: the cached faults say so, and the call is counted in the batch of
        its effect (``CallPlan.number`` None; :meth:`finish_call` answers ``stale`` if a
        fault from another process turns up meanwhile). The call is counted here, before
        any sleep, when a fault needs its hit, when the latency alone will outlast
        ``timeout`` (a call that times out was still made), or when ``count`` says so.
        """
        faults, latency = self._cached_faults, self._cached_latency
        if (
            not count
            and faults is not None
            and latency is not None
            and not _matching(faults, host, tool, argv)
            and (timeout is None or latency / 1000 < timeout)
        ):
            return CallPlan(number=None, latency_ms=latency)
        with self._transaction(forget=False) as conn:
            latency = self._latency_cached(conn)
            fired: dict[str, Fault] = {}
            for rec in _matching(self._faults_cached(conn), host, tool, argv):
                fault = rec.fault
                hits = rec.hits + 1
                conn.execute("UPDATE faults SET hits = ? WHERE id = ?", (hits, rec.id))
                self._cached_faults = None  # the hits changed
                if not fault.fires(hits):
                    continue
                if fault.mode == "slow":
                    latency += fault.ms or 0.0
                else:
                    key = "fail" if fault.mode.startswith("fail") else fault.mode
                    fired.setdefault(key, fault)
            number = CallBatch(conn, {}, self._cached_counts).count(host, tool)
            conn.execute(
                "INSERT INTO tool_calls(host, tool, count) VALUES (?, ?, ?) "
                "ON CONFLICT(host, tool) DO UPDATE SET count = excluded.count",
                (host, tool, number),
            )
            self._cached_counts[(host, tool)] = number
        return CallPlan(
            number=number,
            latency_ms=latency,
            fail=fired.get("fail"),
            hang=fired.get("hang"),
            unreachable=fired.get("unreachable"),
            drop=fired.get("drop"),
        )

    def start_call(
        self,
        host: str,
        argv: list[str],
        env: Mapping[str, str],
        fn: ToolFn,
        *,
        number: int | None,
        seed: int,
    ) -> Slot[CallRequest]:
        """Run the tool; its whole effect commits, or none of it (``ToolFailure``).

        The call joins the next batch (``backends.sim.calls``) and this returns at
        once, so the caller can sleep out the call's latency meanwhile; ``finish_call``
        waits for the batch and gives the outcome. ``number`` None: :meth:`begin_call`
        did not count the call, so it is counted in that batch.
        """
        return self._committer.submit_nowait(CallRequest(host, argv, env, fn, number, seed))

    def finish_call(self, pending: Slot[CallRequest]) -> CallOutcome:
        outcome: CallOutcome = self._committer.collect(pending)
        return outcome

    def _apply_batch(self, slots: list[Slot[CallRequest]]) -> None:
        """Run every queued call in one transaction (the group commit's leader)."""
        outcomes: list[CallOutcome | BaseException] = []
        with self._lock:
            conn = self._conn()
            conn.execute("BEGIN IMMEDIATE")
            try:
                self._refresh(conn)
                self._latency_cached(conn)  # (re)fill what begin_call's fast path reads
                batch = CallBatch(conn, self._cached_states, self._cached_counts)
                for slot in slots:
                    try:
                        outcomes.append(self._run_call(conn, batch, slot.request))
                    except Exception as exc:  # a bug in a tool: that call fails, not all
                        outcomes.append(exc)
                batch.write()
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                self._forget()  # the caches may hold what never committed
                raise
            batch.adopt()
            if batch.faults_hit:
                self._cached_faults = None
        for slot, outcome in zip(slots, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                slot.fail(outcome)
            else:
                slot.succeed(outcome)

    def _run_call(
        self, conn: sqlite3.Connection, batch: CallBatch, req: CallRequest
    ) -> CallOutcome:
        host, tool = req.host, req.argv[0]
        number = req.number
        if number is None:
            if _matching(self._faults_cached(conn), host, tool, req.argv):
                return _STALE
            number = batch.count(host, tool)
        # States are kept as canonical text (_dumps), so comparing texts says whether
        # the tool changed anything, and json.loads gives the tool a private copy.
        before = batch.state_text(host)
        reader = BatchReader(batch)
        ctx = ToolContext(
            argv=list(req.argv),
            env=dict(req.env),
            host=host,
            state=json.loads(before),
            world=reader,
            seed=f"{req.seed}:{host}:{tool}:{number}",
            call_number=number,
        )
        try:
            result = normalize(req.fn(ctx))
        except ToolFailure as failure:  # the call was made (counted); its effect is not
            message = failure.message if failure.message.endswith("\n") else failure.message + "\n"
            result = ToolResult(failure.exit_code, failure.stdout, message)
            return CallOutcome(result, (), ctx.latency_ms, crash=False)
        batch.states.update(reader.writes)  # shared volumes (tools/linux.py)
        after = _dumps(ctx.state)
        if after != before:
            batch.states[host] = after
        crash = False
        if ctx.effects:
            at = _now()
            # A secret the tool was given is logged as its digest, never its value.
            argv_json = _dumps([scrub(a, ctx.concealed) for a in req.argv])
            batch.logs.extend(
                (host, tool, argv_json, scrub(effect, ctx.concealed), at) for effect in ctx.effects
            )
            crash = self._count_crash_faults(conn, batch, host, tool, req.argv)
        return CallOutcome(result, tuple(ctx.effects), ctx.latency_ms, crash)

    def _count_crash_faults(
        self, conn: sqlite3.Connection, batch: CallBatch, host: str, tool: str, argv: list[str]
    ) -> bool:
        """Advance the crash_after faults this side-effecting call matches; True if one
        fires. The hit is committed with the effect, so the restarted process does not
        crash again."""
        crash = False
        for rec in self._faults_cached(conn):
            if rec.fault.mode != "crash_after" or not rec.fault.matches_call(host, tool, argv):
                continue
            (hits,) = conn.execute(
                "UPDATE faults SET hits = hits + 1 WHERE id = ? RETURNING hits", (rec.id,)
            ).fetchone()
            batch.faults_hit = True
            crash = crash or rec.fault.fires(int(hits))
        return crash

    # -- observation -------------------------------------------------------------------

    def observe_host(self, host: str, kind: str) -> tuple[dict[str, str], list[Fault]]:
        """What the observers of ``kind`` report on ``host`` plus the wrong_status faults
        that could bend it (the caller applies them per resource name)."""
        with self._transaction(write=False) as conn:
            state = _read_state(conn, host)
            faults = [r.fault for r in _load_faults(conn) if r.fault.mode == "wrong_status"]
        return _observe(host, kind, state) or {}, faults

    def observe_all(self, kind: str) -> tuple[dict[str, dict[str, str]], list[Fault]]:
        with self._transaction(write=False) as conn:
            rows = conn.execute("SELECT host, state FROM hosts ORDER BY host").fetchall()
            faults = [r.fault for r in _load_faults(conn) if r.fault.mode == "wrong_status"]
        reports: dict[str, dict[str, str]] = {}
        for host, state in rows:
            report = _observe(host, kind, json.loads(state))
            if report is not None:  # a host with no view of the kind proves nothing
                reports[host] = report
        return reports, faults

    def unreachable_fault(self, host: str) -> Fault | None:
        """An ``unreachable`` fault for any tool on ``host`` also blinds observation."""
        for rec in self.faults():
            f = rec.fault
            if f.mode == "unreachable" and f.tool == ANY_TOOL and f.n is None:
                if f.host in (None, host):
                    return f
        return None


def _create_private(path: str | None) -> None:
    """Create a world file readable by its owner only (0600) before SQLite opens it:
    SQLite gives its WAL and shared-memory files the same mode."""
    if path is None or path.startswith("file:") or path == ":memory:":
        return
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return
    os.close(fd)


def _observe(host: str, kind: str, state: Mapping[str, Any]) -> dict[str, str] | None:
    """What ``host`` reports for ``kind``; None when no observer has a view there."""
    report: dict[str, str] | None = None
    for observer in observers_for(kind):
        seen = observer(host, state)
        if seen is not None:
            report = {**(report or {}), **seen}
    return report


def _load_faults(conn: sqlite3.Connection) -> list[FaultRecord]:
    rows = conn.execute("SELECT id, spec, hits FROM faults ORDER BY id").fetchall()
    return [FaultRecord(i, Fault.from_json(json.loads(spec)), hits) for i, spec, hits in rows]


def _setting_latency(conn: sqlite3.Connection) -> float:
    row = conn.execute("SELECT value FROM settings WHERE key = 'latency_ms'").fetchone()
    return float(row[0]) if row else 0.0


def _matching(
    faults: list[FaultRecord], host: str, tool: str, argv: list[str] | None = None
) -> list[FaultRecord]:
    """The faults that decide a call's fate before it runs (all but crash_after)."""
    return [
        r
        for r in faults
        if r.fault.mode != "crash_after" and r.fault.matches_call(host, tool, argv)
    ]
