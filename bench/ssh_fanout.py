"""SSH fan-out benchmark: fleetlog's SSHBackend next to Ansible and ClusterShell's clush.

Run from the repository root, as root, with OpenSSH's sshd installed::

    python bench/ssh_fanout.py            # 20 lab hosts x 10 commands, all three tools
    python bench/ssh_fanout.py --hosts 5  # smaller

It starts the SSH lab of the tests (``tests/lab``: real sshd processes on 127.0.0.x, a
dedicated user with ``/bin/sh`` and an empty home), then runs the same 10 short commands
on every host with each tool, cold (no connection open beforehand), in one run:

- fleetlog: one ``SSHBackend``, one thread per host, a pooled connection per host and a
  channel per command (TCP_NODELAY), host keys checked against the lab's known_hosts;
- Ansible: ``ansible-playbook`` with ``forks=20``, one ``raw`` task per command, the linear
  strategy, no fact gathering, host key checking off, otherwise Ansible's defaults
  (which include ``ControlMaster=auto``/``ControlPersist=60s``);
- clush: one ``clush -f 64 -w node[1-N]`` call per command, through ``ssh`` with the
  lab's ssh_config and known_hosts (no ControlMaster, clush's default).

Prints one JSON object: wall-clock seconds per tool, ``ansible_ratio`` = ansible_s /
fleetlog_s (target >= 5) and ``clush_ratio`` = fleetlog_s / clush_s (target <= 1.3),
plus the versions used. Every tool's output is checked, so a failed run is not "fast".
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fleetlog.engine.backends.ssh import SSHBackend  # noqa: E402
from tests.lab.lab import Lab, start_lab  # noqa: E402

#: Short commands, the same for every tool; each prints one known line.
COMMANDS = [
    "echo hello",
    "uname -s",
    "id -un",
    "printenv FLEETLOG_SIM_HOST",
    "test -d /tmp && echo tmp-ok",
    "ls -d /etc",
    "expr 6 \\* 7",
    "basename /a/b/c",
    "printf '%s\\n' fan-out",
    "echo done",
]


#: What ssh itself prints into a raw task's output (it runs with a tty).
SSH_NOISE = ("Shared connection to ", "Warning: Permanently added ")


def expected(lab: Lab, host: str) -> list[str]:
    return ["hello", "Linux", lab.user, host, "tmp-ok", "/etc", "42", "c", "fan-out", "done"]


def run_fleetlog(lab: Lab, hosts: list[str], known_hosts: str) -> float:
    backend = SSHBackend(
        ssh_config=str(lab.ssh_config),
        known_hosts=known_hosts,
        allow_agent=False,
        look_for_keys=False,
    )
    outputs: dict[str, list[str]] = {}
    errors: list[BaseException] = []

    def one(host: str) -> None:
        try:
            outputs[host] = [backend.run(host, c, timeout=60).stdout.strip() for c in COMMANDS]
        except BaseException as exc:
            errors.append(exc)

    started = time.perf_counter()
    threads = [threading.Thread(target=one, args=(h,)) for h in hosts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    backend.close()
    if errors:
        raise SystemExit(f"fleetlog failed: {errors[0]}")
    for host in hosts:
        if outputs[host] != expected(lab, host):
            raise SystemExit(f"fleetlog: wrong output on {host}: {outputs[host]}")
    return elapsed


def run_clush(lab: Lab, hosts: list[str], work: Path) -> tuple[float, list[list[str]]]:
    clush = shutil.which("clush", path=str(Path(sys.executable).parent)) or "clush"
    ssh_opts = (
        f"-F {lab.ssh_config} -o UserKnownHostsFile={lab.known_hosts} "
        "-o StrictHostKeyChecking=yes -o BatchMode=yes"
    )
    nodes = ",".join(hosts)
    argvs = [[clush, "-f", "64", "-o", ssh_opts, "-w", nodes, "-L", c] for c in COMMANDS]
    env = {**os.environ, "HOME": str(work)}  # no ~/.clush.conf, no ~/.ssh of root
    started = time.perf_counter()
    outs = [
        subprocess.run(argv, capture_output=True, text=True, env=env, check=False) for argv in argvs
    ]
    elapsed = time.perf_counter() - started
    for i, (argv, res) in enumerate(zip(argvs, outs, strict=True)):
        lines = {}
        for line in res.stdout.splitlines():
            node, _, text = line.partition(": ")
            lines[node] = text.strip()
        want = {h: expected(lab, h)[i] for h in hosts}
        if res.returncode != 0 or lines != want:
            raise SystemExit(f"clush failed on {argv[-1]!r}: {res.returncode} {res.stderr[-500:]}")
    return elapsed, argvs


def run_ansible(lab: Lab, hosts: list[str], work: Path) -> tuple[float, list[str]]:
    playbook = shutil.which("ansible-playbook", path=str(Path(sys.executable).parent))
    if playbook is None:
        raise SystemExit("ansible-playbook not found: pip install ansible-core")
    inventory = work / "inventory.ini"
    inventory.write_text(
        "[lab]\n"
        + "".join(
            f"{h} ansible_host={lab.host(h).address} ansible_port={lab.host(h).port}\n"
            for h in hosts
        )
        + "\n[lab:vars]\n"
        f"ansible_user={lab.user}\n"
        f"ansible_ssh_private_key_file={lab.client_key}\n"
    )
    tasks = "".join(f"    - raw: {json.dumps(c)}\n" for c in COMMANDS)
    book = work / "fanout.yml"
    book.write_text("- hosts: lab\n  gather_facts: false\n  tasks:\n" + tasks)
    argv = [playbook, "-i", str(inventory), "-f", str(len(hosts)), str(book)]
    env = {
        **os.environ,
        "HOME": str(work),
        "ANSIBLE_HOME": str(work / "ansible"),
        "ANSIBLE_HOST_KEY_CHECKING": "False",
        "ANSIBLE_SSH_ARGS": "-C -o ControlMaster=auto -o ControlPersist=60s "
        "-o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes",
        "ANSIBLE_STDOUT_CALLBACK": "minimal",
        "ANSIBLE_NOCOLOR": "1",
    }
    started = time.perf_counter()
    res = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    # The minimal callback prints "HOST | CHANGED | rc=0 >>" then the output, per task
    # (raw runs with a tty, so ssh's "Shared connection ... closed." lands there too).
    outputs: dict[str, list[str]] = {h: [] for h in hosts}
    current: str | None = None
    for line in res.stdout.splitlines():
        head = re.match(r"^(\S+) \| \w+ \| rc=0 >>$", line)
        if head:
            current = head.group(1)
            outputs.setdefault(current, []).append("")
        elif current is not None and line.strip() and not line.startswith(SSH_NOISE):
            outputs[current][-1] += line.strip()
    wrong = [h for h in hosts if outputs[h] != expected(lab, h)]
    if res.returncode != 0 or wrong:
        detail = f"{wrong[0]}: {outputs[wrong[0]]}" if wrong else res.stdout[-2000:]
        raise SystemExit(f"ansible-playbook failed ({res.returncode}): {detail}")
    return elapsed, argv


def version(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hosts", type=int, default=20)
    parser.add_argument("--skip-ansible", action="store_true")
    args = parser.parse_args()

    lab = start_lab(args.hosts)
    work = Path(tempfile.mkdtemp(prefix="fleetlog-bench-"))
    try:
        hosts = lab.names
        result: dict[str, Any] = {"hosts": len(hosts), "commands_per_host": len(COMMANDS)}
        result["fleetlog_s"] = round(run_fleetlog(lab, hosts, str(lab.known_hosts)), 3)
        clush_s, _ = run_clush(lab, hosts, work)
        result["clush_s"] = round(clush_s, 3)
        if not args.skip_ansible:
            ansible_s, _ = run_ansible(lab, hosts, work)
            result["ansible_s"] = round(ansible_s, 3)
            result["ansible_ratio"] = round(ansible_s / result["fleetlog_s"], 2)
        result["clush_ratio"] = round(result["fleetlog_s"] / clush_s, 3)
        import paramiko

        bindir = Path(sys.executable).parent
        result["versions"] = {
            "paramiko": paramiko.__version__,
            "openssh": version(["/usr/sbin/sshd", "-V"]),
            "clush": version([str(bindir / "clush"), "--version"]),
            "ansible": version([str(bindir / "ansible-playbook"), "--version"])
            if not args.skip_ansible
            else None,
            "python": sys.version.split()[0],
        }
        print(json.dumps(result))
    finally:
        lab.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
