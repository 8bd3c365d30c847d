"""SSHBackend failure modes against the real OpenSSH lab: every one a BackendError with
a one-line reason naming the host, and the pool recovering once the fault is gone."""

from __future__ import annotations

import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetlog.engine.backends import BackendError, CommandTimeout
from fleetlog.engine.backends.sim import Fault
from fleetlog.engine.backends.ssh import HostKeyChanged, SSHBackend, UnknownHostKey
from tests.lab.lab import Lab, _processes

pytest_plugins = ["tests.lab.fixtures"]

MakeSSH = Callable[..., SSHBackend]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ssh_keygen_fingerprint(pub: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


def wait_until(predicate: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll for a condition (not a timing assertion: the limit only bounds a hang)."""
    done = threading.Event()
    for _ in range(int(limit / 0.02)):
        if predicate():
            return
        done.wait(0.02)
    raise AssertionError(f"gave up waiting for {what}")


def running(*argv_tail: str) -> bool:
    tail = list(argv_tail)
    return any(argv[-len(tail) :] == tail for _pid, argv in _processes())


# ------------------------------------------------------------------ cannot connect
def test_connection_refused(make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        ssh_lab.ssh_config_text(["node1"], overrides={"node1": {"Port": str(free_port())}})
    )
    ssh = make_ssh(ssh_config=str(config))
    with pytest.raises(BackendError) as err:
        ssh.run("node1", "true")
    assert str(err.value).startswith("node1: connection refused by 127.0.0.11:")
    assert "\n" not in str(err.value)


def test_unresolvable_host(make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path) -> None:
    config = tmp_path / "config"
    config.write_text(
        ssh_lab.ssh_config_text(
            ["node1"], overrides={"node1": {"HostName": "no-such-host.invalid"}}
        )
    )
    ssh = make_ssh(ssh_config=str(config))
    with pytest.raises(BackendError, match=r"^node1: cannot resolve no-such-host\.invalid"):
        ssh.run("node1", "true")


def test_authentication_failure_with_a_wrong_key(
    make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path
) -> None:
    wrong = tmp_path / "wrong_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong)], check=True)
    config = tmp_path / "config"
    config.write_text(ssh_lab.ssh_config_text(identity=wrong))
    ssh = make_ssh(ssh_config=str(config))
    with pytest.raises(BackendError) as err:
        ssh.run("node2", "true")
    message = str(err.value)
    assert message.startswith(f"node2: authentication failed as {ssh_lab.user}@127.0.0.12:")
    assert str(wrong) in message


# ------------------------------------------------------------------ host keys
def test_unknown_host_key_is_refused_by_default(
    make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path
) -> None:
    known = ssh_lab.write_known_hosts(tmp_path / "known", ["node1"])  # not node3
    ssh = make_ssh(known_hosts=str(known))
    with pytest.raises(UnknownHostKey) as err:
        ssh.run("node3", "true")
    expected_fp = ssh_keygen_fingerprint(ssh_lab.sshds[0].host_key.with_suffix(".pub"))
    assert str(err.value) == (
        f"unknown host key for node3 (127.0.0.13:{ssh_lab.port}, ssh-ed25519 fingerprint "
        f"{expected_fp}); add it to {known} or use --accept-new-host-keys"
    )
    assert known.read_text() == ssh_lab.host_key_line("node1")  # nothing was added
    assert ssh.run("node1", "true").ok


def test_accept_new_host_keys_records_and_reports_the_key(
    make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path
) -> None:
    known = tmp_path / "sub" / "known_hosts"  # the directory does not exist yet
    accepted: list[tuple[str, str, str]] = []
    ssh = make_ssh(
        known_hosts=str(known),
        accept_new_host_keys=True,
        on_new_host_key=lambda *a: accepted.append(a),
    )
    assert ssh.run("node3", "true").ok
    fp = ssh_keygen_fingerprint(ssh_lab.sshds[0].host_key.with_suffix(".pub"))
    assert accepted == [("node3", "ssh-ed25519", fp)]
    assert known.read_text() == ssh_lab.host_key_line("node3")
    assert known.stat().st_mode & 0o777 == 0o600
    # A strict backend now trusts it.
    strict = make_ssh(known_hosts=str(known))
    assert strict.run("node3", "true").ok


def test_changed_host_key_is_always_refused(
    make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path
) -> None:
    # Record sshd1's key (node11..20) for node3, which sshd0 serves: a "changed" key.
    h3 = ssh_lab.host("node3")
    other = ssh_lab.sshds[1].host_key.with_suffix(".pub")
    kind, blob = other.read_text().split()[:2]
    known = tmp_path / "known"
    known.write_text(f"[{h3.address}]:{h3.port} {kind} {blob}\n")
    accepted: list[object] = []
    ssh = make_ssh(
        known_hosts=str(known),
        accept_new_host_keys=True,
        on_new_host_key=lambda *a: accepted.append(a),
    )
    with pytest.raises(HostKeyChanged) as err:
        ssh.run("node3", "true")
    real_fp = ssh_keygen_fingerprint(ssh_lab.sshds[0].host_key.with_suffix(".pub"))
    old_fp = ssh_keygen_fingerprint(other)
    message = str(err.value)
    assert message.startswith(f"host key for node3 (127.0.0.13:{h3.port}) has CHANGED")
    assert real_fp in message and old_fp in message
    assert accepted == []
    assert known.read_text() == f"[{h3.address}]:{h3.port} {kind} {blob}\n"


# ------------------------------------------------------------------ during a command
def test_command_timeout_kills_the_remote_command(make_ssh: MakeSSH, ssh_lab: Lab) -> None:
    world = ssh_lab.world()
    try:
        world.inject(Fault("flag", mode="hang", host="node4"))
    finally:
        world.close()
    ssh = make_ssh()
    token = f"hang-{uuid.uuid4().hex}"
    hung = ("fleetlog.engine.backends.sim.tool_main", "flag", token)
    errors: list[BaseException] = []

    def call() -> None:
        try:
            ssh.run("node4", f"flag {token}", timeout=3)
        except BaseException as exc:
            errors.append(exc)

    t = threading.Thread(target=call)
    t.start()
    try:
        wait_until(lambda: running(*hung), "the fake tool to hang")
        t.join(60)
        [err] = errors
        assert isinstance(err, CommandTimeout)
        assert str(err) == f"node4: command timed out after 3s: flag {token}"
        # The session's process group got SIGKILL: the hung fake tool is gone.
        wait_until(lambda: not running(*hung), "the hung tool to die")
    finally:
        ssh_lab.kill_commands_running(*hung)
    assert ssh.run("node4", "echo alive").stdout == "alive\n"  # the connection survived


def test_sshd_killed_mid_command_then_the_pool_reconnects(make_ssh: MakeSSH, ssh_lab: Lab) -> None:
    ssh = make_ssh()
    before = ssh.run("node7", "echo $SSH_CONNECTION").stdout
    outcome: list[BaseException | object] = []

    def long_command() -> None:
        try:
            outcome.append(ssh.run("node7", "sleep 41.25"))
        except BaseException as exc:
            outcome.append(exc)

    t = threading.Thread(target=long_command)
    t.start()
    try:
        wait_until(lambda: running("sleep", "41.25"), "the remote sleep to start")
        assert ssh_lab.kill_sessions_running("sleep", "41.25") >= 1
        t.join(60)
    finally:
        ssh_lab.kill_commands_running("sleep", "41.25")  # the orphaned command
    assert not t.is_alive()
    [err] = outcome
    assert isinstance(err, BackendError) and not isinstance(err, CommandTimeout)
    assert str(err).startswith("node7: connection lost while running a command")
    after = ssh.run("node7", "echo $SSH_CONNECTION").stdout
    assert after and after != before  # a new connection


def test_a_slow_host_still_completes(make_ssh: MakeSSH, ssh_lab: Lab) -> None:
    world = ssh_lab.world()
    try:
        world.inject(Fault("*", mode="slow", ms=400, host="node8"))
    finally:
        world.close()
    ssh = make_ssh()
    res = ssh.run("node8", "touch_flag slow; flag slow", timeout=30)
    assert (res.exit_code, res.stdout) == (0, "set\n")


def test_injected_failure_is_an_exit_code_not_an_error(make_ssh: MakeSSH, ssh_lab: Lab) -> None:
    world = ssh_lab.world()
    try:
        world.inject(Fault("flag", mode="fail_nth", n=1, exit_code=7, message="boom"))
    finally:
        world.close()
    ssh = make_ssh()
    res = ssh.run("node9", "flag a")
    assert (res.exit_code, res.stderr) == (7, "boom")
    assert ssh.run("node9", "flag a").stdout == "unset\n"
