"""A real Redfish service on loopback: sushy-tools' emulator over its fake driver.

``start_emulator(n)`` writes an emulator config holding ``n`` fake systems (names
``node1`` … ``nodeN``, all powered on, booting from disk) and an htpasswd file (bcrypt,
the only digest the emulator reads) for one user, starts ``sushy-emulator`` on a free
loopback port and waits until its service root answers. The fake driver applies a power
change 1-11 s after it is asked (hardware is not instant), which is what the Redfish
plugin's "confirmed" waits are for.

``Emulator.system(name)`` / ``set_power(name, reset_type)`` talk to the service directly
over HTTP (urllib, basic auth), never through sushy: that is how a test changes a node
"behind fleetlog's back" and reads what the plugin did.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

USER = "fleet-admin"
PASSWORD = "bmc-Pa55-31f7"
START_TIMEOUT = 60.0


class EmulatorUnavailable(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _executable() -> str:
    here = Path(sys.executable).parent / "sushy-emulator"
    if here.exists():
        return str(here)
    found = shutil.which("sushy-emulator")
    if found is None:
        raise EmulatorUnavailable("sushy-emulator is not installed (pip install sushy-tools)")
    return found


@dataclass
class Emulator:
    """A running emulator: its base URL, its systems (name -> uuid), its process."""

    url: str
    systems: dict[str, str]
    proc: subprocess.Popen[bytes]
    root: Path
    log: Path
    user: str = USER
    password: str = PASSWORD
    _auth: str = field(default="", repr=False)

    def __post_init__(self) -> None:
        token = base64.b64encode(f"{self.user}:{self.password}".encode()).decode()
        self._auth = f"Basic {token}"

    def bmc(self, name: str) -> str:
        """The ``bmc`` param of node ``name``: the URL of its ComputerSystem."""
        return f"{self.url}/redfish/v1/Systems/{self.systems[name]}"

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Authorization", self._auth)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as resp:
            text = resp.read().decode()
        return json.loads(text) if text.strip() else None

    def system(self, name: str) -> dict[str, Any]:
        found: dict[str, Any] = self.request("GET", f"/redfish/v1/Systems/{self.systems[name]}")
        return found

    def power(self, name: str) -> str:
        return str(self.system(name)["PowerState"])

    def boot(self, name: str) -> tuple[str, str]:
        b = self.system(name)["Boot"]
        return str(b["BootSourceOverrideTarget"]), str(b["BootSourceOverrideEnabled"])

    def set_power(self, name: str, reset_type: str) -> None:
        path = f"/redfish/v1/Systems/{self.systems[name]}/Actions/ComputerSystem.Reset"
        self.request("POST", path, {"ResetType": reset_type})

    def wait_power(self, name: str, want: str, timeout: float = 30.0) -> None:
        """Until the fake driver applied a pending change (it does within 11 s)."""
        deadline = time.monotonic() + timeout
        while self.power(name) != want:
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} did not reach power {want} in {timeout}s")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _htpasswd(user: str, password: str) -> str:
    import bcrypt

    digest = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    return f"{user}:{digest}\n"


def start_emulator(n: int = 60, *, power: str = "On") -> Emulator:
    exe = _executable()
    root = Path(tempfile.mkdtemp(prefix="fleetlog-redfish-"))
    systems = {f"node{i}": str(uuid.uuid4()) for i in range(1, n + 1)}
    fake = [
        {
            "uuid": u,
            "name": name,
            "power_state": power,
            "external_notifier": False,
            "nics": [
                {
                    "mac": f"52:54:00:00:{i // 256:02x}:{i % 256:02x}",
                    "ip": f"10.9.{i // 256}.{i % 256}",
                }
            ],
        }
        for i, (name, u) in enumerate(systems.items(), 1)
    ]
    auth = root / "htpasswd"
    auth.write_text(_htpasswd(USER, PASSWORD))
    auth.chmod(0o600)
    port = free_port()
    config = root / "emulator.conf"
    config.write_text(
        "SUSHY_EMULATOR_FAKE_DRIVER = True\n"
        f"SUSHY_EMULATOR_FAKE_SYSTEMS = {fake!r}\n"
        f"SUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}\n"
        "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\n"
        f"SUSHY_EMULATOR_LISTEN_PORT = {port}\n"
        "SUSHY_EMULATOR_FEATURE_SET = 'full'\n"
        # the fake driver keeps its systems in files: here, not in /tmp/sushy-emulator,
        # where another run's power states would leak in
        f"SUSHY_EMULATOR_STATE_DIR = {str(root / 'state')!r}\n"
    )
    log = root / "emulator.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUSHY_EMULATOR_")}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [exe, "--config", str(config), "--fake"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    emu = Emulator(f"http://127.0.0.1:{port}", systems, proc, root, log)
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if proc.poll() is not None:
            text = log.read_text(errors="replace")[-2000:]
            emu.stop()
            raise EmulatorUnavailable(f"sushy-emulator exited {proc.returncode}: {text}")
        try:
            emu.request("GET", "/redfish/v1/Systems")
            return emu
        except (urllib.error.URLError, OSError):
            if time.monotonic() > deadline:
                emu.stop()
                raise EmulatorUnavailable(
                    f"sushy-emulator did not answer in {START_TIMEOUT}s"
                ) from None
            time.sleep(0.2)


class SilentBMC:
    """A loopback socket that accepts connections and never answers: a BMC that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/redfish/v1/Systems/1"

    def close(self) -> None:
        self.sock.close()
