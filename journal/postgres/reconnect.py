"""Surviving a lost database connection: retry with back-off, one line per outage.

A PostgreSQL restart, a failover or a killed backend breaks every open connection of
every process at once. Each journal operation that fails because the connection went
away (not because the server refused the operation) is retried, with exponential
back-off and jitter so a fleet of workers does not reconnect in lock step, for up to
``FLEETLOG_PG_RETRY_FOR`` seconds (120 by default); only then does it fail, as a
``JournalError`` naming the journal and the cause.

The operator is told once per outage and process, when the connection is back:
``fleetlog: journal …: connection lost (…); reconnected after 2.1s`` is logged on the
``fleetlog.journal`` logger at WARNING, which without any logging set up is one line on
stderr (Python's last-resort handler). psycopg_pool's own warnings about the same outage
are silenced, so there is no second account of it and no traceback.

Operations retried here must be safe to repeat. Reads and lease changes are; an append
whose commit is unknown is resolved by reading it back first (``writer.resolve``).
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import psycopg
import psycopg_pool

from fleetlog.journal.base import JournalError
from fleetlog.journal.postgres.conninfo import first_line

T = TypeVar("T")

log = logging.getLogger("fleetlog.journal")
logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)

#: Seconds an operation keeps retrying a lost connection before it fails.
RETRY_FOR = float(os.environ.get("FLEETLOG_PG_RETRY_FOR", "120"))
_FIRST_DELAY = 0.05
_MAX_DELAY = 2.0
#: Failures this soon after a recovery are the same outage's stragglers (connections
#: that were in use when it happened), not a new one to report.
_STRAGGLERS = 5.0

# SQLSTATE classes and codes that mean "the connection is gone", not "refused":
# 08 connection exception, 57P01 admin shutdown (pg_terminate_backend, a restart),
# 57P02 crash shutdown, 57P03 cannot connect now (starting up or shutting down).
_GONE = ("57P01", "57P02", "57P03")


def is_disconnect(error: BaseException | None) -> bool:
    """True when ``error`` (or what caused it) means the connection or server went away."""
    while error is not None:
        if isinstance(error, psycopg_pool.PoolClosed):
            return False  # the journal was closed: nothing to wait for
        if isinstance(error, psycopg_pool.PoolTimeout):
            return True
        if isinstance(error, psycopg.OperationalError):
            state = error.sqlstate
            return state is None or state.startswith("08") or state in _GONE
        error = error.__cause__
    return False


class Reconnector:
    """Runs operations with retries across an outage, and reports each outage once."""

    def __init__(self, where: str, on_lost: Callable[[], None] | None = None) -> None:
        self.where = where
        self.retry_for = RETRY_FOR
        #: Called once when an outage is first seen (the pool checks its idle
        #: connections, so the retries do not walk through every dead one).
        self._on_lost = on_lost
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._silent = False
        self._back_at = -_STRAGGLERS
        self._cause = ""
        self.outages = 0

    def run(self, what: str, operation: Callable[[], T]) -> T:
        """``operation()``, repeated while it fails for want of a connection."""
        deadline: float | None = None
        delay = _FIRST_DELAY
        while True:
            try:
                result = operation()
            except Exception as e:
                if not is_disconnect(e):
                    raise
                now = time.monotonic()
                self.lost(e)
                if deadline is None:
                    deadline = now + self.retry_for
                if now >= deadline:
                    raise JournalError(
                        f"{what} failed: journal {self.where} unreachable for "
                        f"{self.retry_for:g}s: {first_line(e)}"
                    ) from e
                time.sleep(min(delay * random.uniform(0.5, 1.5), max(0.0, deadline - now)))
                delay = min(delay * 2, _MAX_DELAY)
                continue
            if self._down_since is not None:
                self.back()
            return result

    def lost(self, error: BaseException) -> None:
        """An operation failed for want of a connection (the outage starts, if new)."""
        with self._lock:
            if self._down_since is not None:
                return
            self._down_since = time.monotonic()
            self._silent = self._down_since - self._back_at < _STRAGGLERS
            self._cause = first_line(error)
        if self._on_lost is not None:
            try:
                self._on_lost()
            except Exception:  # a check that fails is only a missed shortcut
                pass

    def back(self) -> None:
        """An operation succeeded: if an outage was on, it is over; say so once."""
        with self._lock:
            since, self._down_since = self._down_since, None
            if since is None:
                return
            self._back_at = time.monotonic()
            if self._silent:
                return
            self.outages += 1
        log.warning(
            "fleetlog: journal %s: connection lost (%s); reconnected after %.1fs",
            self.where,
            self._cause,
            time.monotonic() - since,
        )
