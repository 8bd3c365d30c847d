"""``set NAME = VALUE``: a succeeded step records values into its resource, journaled
as ``attributes.set`` and folded by replay; later steps see them; output that cannot be
read fails the step without running it again."""

from __future__ import annotations

from collections.abc import Callable

from fleetlog.engine.model import load_resource
from tests.engine.conftest import Rig

BOX = """
machine box {
    param host: str
    param job: str = ""
    param size: int = 1
    param where: str = "a"
    initial state new
    state made
    state broken : error
    transition make(to: str = "b") : new -> made {
        step submit run "echo JobID: 4711" set job = output matching "JobID: ([0-9]+)"
                    set size = 3 set where = to
        step use    run "touch_flag used-{job}-{where}"
        on failure -> broken
    }
    transition count : new -> made {
        step submit run "echo not-a-number" retry 3 set size = output
        on failure -> broken
    }
}
"""


def test_a_step_records_values_and_later_steps_read_them(make_rig: Callable[..., Rig]) -> None:
    rig = make_rig(BOX)
    rig.add("box/a", host="h1")
    assert rig.runner.fire("box/a", "make", {"to": "z"}).ok
    rec = load_resource(rig.journal, rig.registry, "box/a")
    assert rec is not None
    assert (rec.params["job"], rec.params["size"], rec.params["where"]) == ("4711", 3, "z")
    [set_event] = [e for e in rig.events("box/a") if e.type == "attributes.set"]
    assert set_event.payload["values"] == {"job": "4711", "size": 3, "where": "z"}
    assert set_event.payload["previous"] == {"job": "", "size": 1, "where": "a"}
    assert set_event.payload["step"] == "submit"
    # Journaled right behind the step's success, before the next step started.
    types = rig.types("box/a")
    assert types[types.index("attributes.set") - 1] == "step.succeeded"
    # The next step ran with the new values.
    assert rig.sim.world.host_state("h1")["flags"] == {"used-4711-z": True}


def test_unreadable_output_fails_the_step_once_never_retried(
    make_rig: Callable[..., Rig],
) -> None:
    rig = make_rig(BOX)
    rig.add("box/b", host="h1")
    out = rig.runner.fire("box/b", "count")
    assert not out.ok and out.state == "broken"
    steps = rig.steps("box/b")
    # The command ran once and succeeded; its output is not an int: failed, no retry.
    assert [s for s in steps if s[0] == "step.started"] == [("step.started", "submit", 1)]
    failed = [e for e in rig.events("box/b") if e.type == "step.failed"]
    assert len(failed) == 1 and failed[0].payload["will_retry"] is False
    assert "set size" in failed[0].payload["error"]
    assert "attributes.set" not in rig.types("box/b")
