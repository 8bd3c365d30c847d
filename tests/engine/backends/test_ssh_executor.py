"""SSH faults seen through the executor: a fault before the command ran shows in the
journal as ``step.failed`` with a clear reason, retries are honoured, and re-firing
completes once the fault is gone; a connection lost after the command was sent leaves the
step in doubt, never retried blindly."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fleetlog.engine.backends.sim import Fault
from fleetlog.engine.backends.ssh import SSHBackend
from tests.lab.lab import Lab, _processes

if TYPE_CHECKING:  # importing the plugin module itself would defeat assert rewriting
    from tests.lab.fixtures import SshRig

pytest_plugins = ["tests.lab.fixtures"]

MakeSSH = Callable[..., SSHBackend]
MakeRig = Callable[..., "SshRig"]

JOB = """
machine sshjob "a job run over ssh" {
    param host: str
    param label: str = "plain"

    initial state new
    state done
    state broken : error

    transition build(pause: float = 0) : new, broken -> done {
        step touch  run "touch_flag built" idempotent retry 2 every 10ms timeout 20s
        step pause  run "sleep {pause}" timeout 120s
        step greet  run "argv_json {name} {label}" idempotent
        on failure -> broken
    }
}
"""


def state(rig: SshRig, rid: str) -> str:
    return rig.runner.load(rid).state


def test_connection_refused_fails_the_step_then_refire_completes(
    make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab, tmp_path: Path
) -> None:
    broken = tmp_path / "broken_config"
    broken.write_text(ssh_lab.ssh_config_text(["node1"], overrides={"node1": {"Port": "1"}}))
    rig = ssh_rig(make_ssh(ssh_config=str(broken)), JOB)
    rig.add("sshjob/j1", host="node1")
    outcome = rig.runner.fire("sshjob/j1", "build")
    assert outcome.status == "failed"
    assert state(rig, "sshjob/j1") == "broken"
    assert rig.steps("sshjob/j1") == [
        ("step.started", "touch", 1),
        ("step.failed", "touch", 1),
        ("step.started", "touch", 2),
        ("step.failed", "touch", 2),
        ("step.started", "touch", 3),
        ("step.failed", "touch", 3),
    ]
    assert set(rig.failures("sshjob/j1")) == {"node1: connection refused by 127.0.0.11:1"}

    fixed = rig.with_backend(make_ssh())
    assert fixed.runner.fire("sshjob/j1", "build").status == "completed"
    assert state(fixed, "sshjob/j1") == "done"


def test_authentication_failure_then_refire(
    make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(ssh_lab.ssh_config_text(identity=tmp_path / "missing_key"))
    rig = ssh_rig(make_ssh(ssh_config=str(config)), JOB)
    rig.add("sshjob/j2", host="node2")
    assert rig.runner.fire("sshjob/j2", "build").status == "failed"
    [reason] = set(rig.failures("sshjob/j2"))
    assert reason.startswith("node2: no identity to authenticate with")
    assert rig.with_backend(make_ssh()).runner.fire("sshjob/j2", "build").status == "completed"


def test_unknown_host_key_then_accepted(
    make_ssh: MakeSSH, ssh_rig: MakeRig, tmp_path: Path
) -> None:
    known = tmp_path / "empty_known_hosts"
    known.write_text("")
    rig = ssh_rig(make_ssh(known_hosts=str(known)), JOB)
    rig.add("sshjob/j3", host="node3")
    assert rig.runner.fire("sshjob/j3", "build").status == "failed"
    [reason] = set(rig.failures("sshjob/j3"))
    assert reason.startswith("unknown host key for node3 (127.0.0.13:")
    accepting = make_ssh(known_hosts=str(known), accept_new_host_keys=True)
    assert rig.with_backend(accepting).runner.fire("sshjob/j3", "build").status == "completed"


def test_a_hung_command_times_out_and_the_retry_succeeds(
    make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab
) -> None:
    world = ssh_lab.world()
    try:
        world.inject(Fault("touch_flag", mode="hang", host="node4", n=1))
    finally:
        world.close()
    rig = ssh_rig(make_ssh(), JOB.replace("timeout 20s", "timeout 1s"))
    rig.add("sshjob/j4", host="node4")
    assert rig.runner.fire("sshjob/j4", "build").status == "completed"
    assert rig.steps("sshjob/j4")[:4] == [
        ("step.started", "touch", 1),
        ("step.failed", "touch", 1),
        ("step.started", "touch", 2),
        ("step.succeeded", "touch", 2),
    ]
    assert rig.failures("sshjob/j4") == ["timed out after 1s on node4"]


def test_sshd_killed_mid_step_leaves_it_in_doubt_until_resolved(
    make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab
) -> None:
    rig = ssh_rig(make_ssh(), JOB)
    rig.add("sshjob/j5", host="node5")
    outcomes: list[object] = []
    t = threading.Thread(
        target=lambda: outcomes.append(rig.runner.fire("sshjob/j5", "build", {"pause": 42.5}))
    )
    t.start()
    found = threading.Event()
    try:
        for _ in range(1500):
            if any(argv[-2:] == ["sleep", "42.5"] for _pid, argv in _processes()):
                found.set()
                break
            found.wait(0.02)
        assert found.is_set(), "the remote sleep never started"
        assert ssh_lab.kill_sessions_running("sleep", "42.5") >= 1
        t.join(60)
    finally:
        ssh_lab.kill_commands_running("sleep", "42.5")  # the orphaned command
    [outcome] = outcomes
    # `pause` is neither idempotent nor checked: its command ran, how it ended is unknown
    assert outcome.status == "attention"  # type: ignore[attr-defined]
    hint = "fleetlog resolve sshjob/j5 --step pause --as done --reason 'it took effect'"
    assert hint in outcome.error  # type: ignore[attr-defined]
    assert rig.failures("sshjob/j5") == []
    pause = [(t, n) for t, step, n in rig.steps("sshjob/j5") if step == "pause"]
    assert pause == [("step.started", 1), ("step.in_doubt", 1)]
    [doubt] = [e for e in rig.events("sshjob/j5") if e.type == "step.in_doubt"]
    assert str(doubt.payload["reason"]).startswith("node5: connection lost while running")
    assert rig.runner.load("sshjob/j5").in_progress is not None
    # The operator decides; the same backend's pool reconnects for the rest.
    rig.runner.resolve("sshjob/j5", "pause", "retry", "the sleep was killed with sshd")
    assert rig.runner.resume("sshjob/j5").status == "completed"
    assert state(rig, "sshjob/j5") == "done"


def test_a_slow_host_completes(make_ssh: MakeSSH, ssh_rig: MakeRig, ssh_lab: Lab) -> None:
    world = ssh_lab.world()
    try:
        world.inject(Fault("*", mode="slow", ms=300, host="node6"))
    finally:
        world.close()
    rig = ssh_rig(make_ssh(), JOB)
    rig.add("sshjob/j6", host="node6")
    assert rig.runner.fire("sshjob/j6", "build").status == "completed"
    assert rig.failures("sshjob/j6") == []


def test_hostile_names_and_params_reach_the_tool_as_single_arguments(
    make_ssh: MakeSSH, ssh_rig: MakeRig
) -> None:
    # A name cannot hold spaces, newlines or pattern characters such as '&' (the label
    # carries those); everything else a shell would act on is in it.
    name = "x;rm$(id)|cat>`id`'q'\"dq\"\\<next"
    label = "a'b\"c\\d\n$HOME `uname` ; | & $(true)"
    rig = ssh_rig(make_ssh(), JOB)
    rig.add(f"sshjob/{name}", host="node7", label=label)
    outcome = rig.runner.fire(f"sshjob/{name}", "build")
    assert outcome.status == "completed", outcome.error
    assert json.loads(outcome.output) == [name, label]
