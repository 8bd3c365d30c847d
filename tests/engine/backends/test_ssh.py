"""SSHBackend against the real OpenSSH lab: commands, pooling, env, caps, config, jumps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paramiko
import pytest

from fleetlog.dsl import render
from fleetlog.engine.backends import Backend, BackendError
from fleetlog.engine.backends.ssh import SSHBackend
from fleetlog.engine.backends.ssh.config import load_config, resolve, resolve_hop
from tests.lab.lab import Lab

pytest_plugins = ["tests.lab.fixtures"]

MakeSSH = Callable[..., SSHBackend]
HOSTILE = "x; rm -rf / | cat & echo $(id) `id` 'single' \"double\" \\ \nsecond line"


def connection_of(backend: SSHBackend, host: str) -> str:
    """``$SSH_CONNECTION`` of a fresh session: the same value means the same connection."""
    return backend.run(host, "echo $SSH_CONNECTION").stdout.strip()


# ------------------------------------------------------------------ config (no lab needed)
def test_ssh_config_is_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "config"
    config.write_text(
        "Host web*\n    User deploy\n    Port 2200\n    IdentityFile ~/keys/web\n"
        "    ProxyJump bastion,ops@gw:2222\n    HostKeyAlias webfarm\n"
        "Host gw\n    HostName 10.0.0.1\n    User nobody\n"
        "Host *\n    IdentitiesOnly yes\n"
    )
    monkeypatch.setenv("FLEETLOG_SSH_CONFIG", str(config))
    cfg = load_config(None)
    t = resolve(cfg, "web3")
    assert (t.hostname, t.port, t.user) == ("web3", 2200, "deploy")
    assert t.identity_files == (os.path.expanduser("~/keys/web"),)
    assert t.identities_only
    assert t.jumps == ("bastion", "ops@gw:2222")
    assert t.known_hosts_name == "[webfarm]:2200"
    hop = resolve_hop(cfg, "ops@gw:2222")
    assert (hop.hostname, hop.port, hop.user, hop.jumps) == ("10.0.0.1", 2222, "ops", ())
    assert resolve(cfg, "plain").known_hosts_name == "plain"


def test_named_config_must_exist(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="cannot read ssh config"):
        SSHBackend(ssh_config=str(tmp_path / "missing"))


# ------------------------------------------------------------------ running commands
def test_exit_codes_and_streams(make_ssh: MakeSSH) -> None:
    ssh = make_ssh()
    assert isinstance(ssh, Backend)
    res = ssh.run("node1", "echo out; echo err >&2; exit 3")
    assert (res.exit_code, res.stdout, res.stderr) == (3, "out\n", "err\n")
    assert ssh.run("node1", "true").ok
    missing = ssh.run("node1", "no-such-tool-here")
    assert missing.exit_code == 127


def test_stdin_is_empty_so_a_prompt_does_not_hang(make_ssh: MakeSSH) -> None:
    res = make_ssh().run("node1", "cat; read answer || echo no-answer", timeout=60)
    assert (res.exit_code, res.stdout) == (0, "no-answer\n")


def test_commands_see_each_hosts_own_state(make_ssh: MakeSSH, ssh_lab: Lab) -> None:
    ssh = make_ssh()
    assert ssh.run("node1", "touch_flag ready").ok
    assert ssh.run("node1", "flag ready").stdout == "set\n"
    assert ssh.run("node2", "flag ready").stdout == "unset\n"
    world = ssh_lab.world()
    try:
        assert world.host_state("node1")["flags"] == {"ready": True}
    finally:
        world.close()


def test_one_pooled_connection_per_host_shared_by_threads(make_ssh: MakeSSH) -> None:
    ssh = make_ssh(max_sessions=4)
    seen: list[str] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                seen.append(connection_of(ssh, "node3"))
        except BaseException as exc:  # collected and re-raised by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(seen) == 36
    assert len(set(seen)) == 1  # one connection, 36 channels
    assert seen[0].split()[2] == "127.0.0.13"
    assert ssh.pooled_routes() == [("node3",)]


def test_fan_out_to_every_lab_host(make_ssh: MakeSSH, ssh_lab: Lab) -> None:
    ssh = make_ssh()
    results: dict[str, str] = {}

    def one(host: str) -> None:
        results[host] = ssh.run(host, "printenv FLEETLOG_SIM_HOST").stdout.strip()

    threads = [threading.Thread(target=one, args=(h,)) for h in ssh_lab.names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {h: h for h in ssh_lab.names}


def test_output_is_capped_keeping_the_tail(make_ssh: MakeSSH) -> None:
    ssh = make_ssh(max_output=1000)
    res = ssh.run("node1", "seq 1 20000; seq 1 5000 >&2")
    assert res.ok
    assert res.stdout.startswith("[... ") and "bytes truncated" in res.stdout
    assert res.stdout.endswith("19999\n20000\n")
    assert res.stderr.endswith("5000\n") and "truncated" in res.stderr


def test_environment_is_exported_quoted(make_ssh: MakeSSH) -> None:
    ssh = make_ssh()
    res = ssh.run("node1", "printenv A B", env={"A": HOSTILE, "B": "$(id)"})
    assert res.stdout == f"{HOSTILE}\n$(id)\n"
    with pytest.raises(BackendError, match="invalid environment variable name"):
        ssh.run("node1", "true", env={"A;B": "x"})


def test_environment_by_ssh_request_obeys_accept_env(make_ssh: MakeSSH) -> None:
    ssh = make_ssh(env_mode="request")
    res = ssh.run(
        "node1",
        "printenv FLEETLOG_TEST_X; printenv OTHER; true",
        env={"FLEETLOG_TEST_X": "accepted", "OTHER": "dropped"},
    )
    # The lab's sshd has AcceptEnv FLEETLOG_TEST_*: the other name is silently dropped.
    assert res.stdout == "accepted\n"


def test_rendered_hostile_values_arrive_as_single_arguments(make_ssh: MakeSSH) -> None:
    ssh = make_ssh()
    values = {"name": HOSTILE, "param": "a'b\"c\\d\n$HOME `id` ; | &"}
    command = render("argv_json {name} {param} plain", lambda n, a: values[n])
    res = ssh.run("node2", command)
    assert res.ok, res.stderr
    assert json.loads(res.stdout) == [values["name"], values["param"], "plain"]


def test_observe_command(make_ssh: MakeSSH) -> None:
    ssh = make_ssh()
    assert ssh.observe_command("node4", "echo '  running  '") == "running"
    with pytest.raises(BackendError, match=r"node4: probe `flag nope` exited 1: unset"):
        ssh.observe_command("node4", "flag nope")


# ------------------------------------------------------------------ ProxyJump, agent
def test_proxy_jump_goes_through_the_jump_hosts_transport(
    make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    h5 = ssh_lab.host("node5")
    config.write_text(
        ssh_lab.ssh_config_text()
        + f"\nHost behind\n    HostName {h5.address}\n    Port {h5.port}\n"
        f"    User {ssh_lab.user}\n    IdentityFile {ssh_lab.client_key}\n"
        "    IdentitiesOnly yes\n    ProxyJump node1\n"
    )
    ssh = make_ssh(ssh_config=str(config))
    assert ssh.run("behind", "printenv FLEETLOG_SIM_HOST").stdout == "node5\n"
    assert sorted(ssh.pooled_routes()) == [("node1",), ("node1", "behind")]
    # The jump host's connection is the pooled one, shared with commands on node1.
    assert ssh.run("node1", "true").ok
    assert len(ssh.pooled_routes()) == 2


def test_proxy_jump_to_a_closed_port_names_the_route(
    make_ssh: MakeSSH, ssh_lab: Lab, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    config.write_text(
        ssh_lab.ssh_config_text()
        + f"\nHost nowhere\n    HostName 127.0.0.9\n    Port {ssh_lab.port}\n"
        f"    User {ssh_lab.user}\n    ProxyJump node1\n"
    )
    ssh = make_ssh(ssh_config=str(config))
    with pytest.raises(BackendError, match=r"nowhere \(via node1\): jump host cannot reach"):
        ssh.run("nowhere", "true")


@pytest.fixture
def agent(ssh_lab: Lab, tmp_path: Path) -> Iterator[str]:
    """An ssh-agent (we start it, we kill it by pid) holding the lab's client key."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        for _ in range(500):
            if os.path.exists(sock):
                break
            threading.Event().wait(0.01)
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        subprocess.run(
            ["ssh-add", "-q", str(ssh_lab.client_key)],
            env=env,
            check=True,
            stderr=subprocess.DEVNULL,
        )
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


def test_agent_authentication(
    make_ssh: MakeSSH,
    ssh_lab: Lab,
    agent: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    h = ssh_lab.host("node6")
    config = tmp_path / "config"
    config.write_text(
        f"Host node6\n    HostName {h.address}\n    Port {h.port}\n    User {ssh_lab.user}\n"
    )
    ssh = make_ssh(ssh_config=str(config), allow_agent=True)
    assert ssh.run("node6", "id -un").stdout == f"{ssh_lab.user}\n"
    no_agent = make_ssh(ssh_config=str(config), allow_agent=False)
    with pytest.raises(BackendError, match="node6: no identity to authenticate with"):
        no_agent.run("node6", "true")


def test_paramiko_is_imported_only_by_the_ssh_backend() -> None:
    code = (
        "import sys, fleetlog.engine.backends.factory, fleetlog.engine.backends.local, "
        "fleetlog.engine.cli.session; "
        "print('paramiko' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert out.stdout.strip() == "False"
    assert paramiko.__version__
