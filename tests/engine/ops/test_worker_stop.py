"""``Worker.stop`` is what ``fleetlog worker``'s SIGTERM handler calls, and a handler runs
on the main thread between two bytecodes: possibly while ``run`` holds the lock inside
its wake-up event (``_wake.clear()``). A ``stop`` that set that event itself waited on
that lock forever, and the worker never exited (seen in ``bench/postgres.py``: a
SIGTERMed worker hung until SIGKILL)."""

from __future__ import annotations

import threading
from collections.abc import Callable

from fleetlog.engine.ops.worker import Worker
from tests.engine.conftest import Rig

BOX = """
machine box {
    initial state new
    state done
    transition go : new -> done {
        step one run "touch_flag one" idempotent
    }
}
"""


def test_stop_returns_while_the_main_thread_holds_the_wake_lock(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(BOX)
    worker = Worker(rig.runner, parallel=2, idle_wait=0.05, lease_scan=0.05)
    stopped = threading.Event()

    def handler() -> None:
        worker.stop()
        stopped.set()

    with worker._wake._cond:  # as if the signal arrived inside ``_wake.clear()``
        threading.Thread(target=handler).start()
        # stop() must not need the lock this thread holds: it returns at once.
        assert stopped.wait(timeout=60), "stop() waited for a lock its caller holds"
        assert worker.stopping
    result = worker.run()  # and the stop did reach the loop
    assert result.outcomes == []
    assert rig.runner.stopping.is_set()
