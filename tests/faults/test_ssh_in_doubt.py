"""The SSH connection cut after the remote side effect: the outcome is unknown.

Against the lab's real sshd: the remote command commits its effect, then hangs; the test
kills the sshd process serving the session. The step is journaled ``step.in_doubt``, never
retried as if it had failed: a non-idempotent step needs attention (with the resolve
command line), an idempotent one runs again, and one with a check is judged by it. The
effect is counted from the hosts' own world log.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from fleetlog.engine.backends.sim import Fault
from fleetlog.engine.backends.ssh import SSHBackend
from fleetlog.engine.runtime import Outcome
from tests.faults.conftest import wait_for
from tests.lab.lab import Lab, _processes

if TYPE_CHECKING:
    from tests.lab.fixtures import SshRig

pytest_plugins = ["tests.lab.fixtures"]

MakeSSH = Callable[..., SSHBackend]
MakeRig = Callable[..., "SshRig"]

JOB = """
machine cut {
    param host: str
    initial state new
    state done
    transition plain : new -> done {
        step bump run "counter cut_bump"
    }
    transition idem : new -> done {
        step mark run "touch_flag cut_mark" idempotent
    }
    transition checked : new -> done {
        step mk run "escli mkuser cutuser" check "escli lsuser" contains "cutuser"
    }
}
"""


def _cut_after_effect(
    lab: Lab,
    rig: SshRig,
    rid: str,
    trigger: str,
    tool_argv: tuple[str, ...],
    effect: str,
    nth: int = 1,
) -> Outcome:
    """Fire ``trigger`` with the ``nth`` call of the tool slowed to a minute *after* its
    effect committed, and kill the session's sshd once the effect is in the world."""
    host = rig_host(rig, rid)
    world = lab.world()
    try:
        world.inject(Fault(tool_argv[0], mode="slow", ms=60_000, n=nth, host=host))
    finally:
        world.close()
    outcomes: list[Outcome] = []
    t = threading.Thread(target=lambda: outcomes.append(rig.runner.fire(rid, trigger)))
    t.start()
    try:
        wait_for(
            f"{' '.join(tool_argv)} to run",
            lambda: any(argv[-len(tool_argv) :] == list(tool_argv) for _pid, argv in _processes()),
        )
        wait_for(f"{effect!r} on {host}", lambda: any(effect in e for e in effects(lab, host)))
        assert lab.kill_sessions_running(*tool_argv) >= 1
        t.join(60)
    finally:
        lab.kill_commands_running(*tool_argv)
    [outcome] = outcomes
    return outcome


def rig_host(rig: SshRig, rid: str) -> str:
    return str(rig.runner.load(rid).params["host"])


def effects(lab: Lab, host: str) -> list[str]:
    """This module's effects on ``host`` (the lab's world log outlives each test)."""
    world = lab.world()
    try:
        return [e.effect for e in world.log_entries(host=host) if "cut" in e.effect]
    finally:
        world.close()


def test_a_non_idempotent_step_needs_attention(
    make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab
) -> None:
    rig = ssh_rig(make_ssh(), JOB)
    rig.add("cut/a", host="node8")
    outcome = _cut_after_effect(
        ssh_lab, rig, "cut/a", "plain", ("counter", "cut_bump"), "counter cut_bump"
    )
    assert outcome.status == "attention"
    assert "fleetlog resolve cut/a --step bump --as done --reason" in str(outcome.error)
    assert effects(ssh_lab, "node8") == ["counter cut_bump = 1"]
    assert [t for t, _s, _n in rig.steps("cut/a")] == ["step.started", "step.in_doubt"]
    # The operator saw the counter moved: done. Nothing runs it again.
    rig.runner.resolve("cut/a", "bump", "done", "the counter shows 1")
    assert rig.runner.resume("cut/a").status == "completed"
    assert effects(ssh_lab, "node8") == ["counter cut_bump = 1"]


def test_an_idempotent_step_runs_again(make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab) -> None:
    rig = ssh_rig(make_ssh(), JOB)
    rig.add("cut/b", host="node9")
    outcome = _cut_after_effect(
        ssh_lab, rig, "cut/b", "idem", ("touch_flag", "cut_mark"), "flag cut_mark set"
    )
    assert outcome.status == "completed", outcome.error
    assert rig.steps("cut/b") == [
        ("step.started", "mark", 1),
        ("step.in_doubt", "mark", 1),
        ("step.started", "mark", 2),
        ("step.succeeded", "mark", 2),
    ]
    assert effects(ssh_lab, "node9") == ["flag cut_mark set"]


def test_a_checked_step_is_judged_by_its_check(
    make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab
) -> None:
    rig = ssh_rig(make_ssh(), JOB)
    rig.add("cut/c", host="node10")
    # escli's first call is the check before the step (`lsuser`); the second, mkuser.
    outcome = _cut_after_effect(
        ssh_lab, rig, "cut/c", "checked", ("escli", "mkuser", "cutuser"), "cutuser", nth=2
    )
    assert outcome.status == "completed", outcome.error
    steps = rig.steps("cut/c")
    assert [t for t, _s, _n in steps] == [
        "step.started",
        "step.in_doubt",
        "step.succeeded",  # found done by its check: not run again
    ]
    made = [e for e in effects(ssh_lab, "node10") if "cutuser" in e]
    assert len(made) == 1, made
