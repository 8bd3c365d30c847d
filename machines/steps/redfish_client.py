"""One node's BMC, reached either over Redfish (sushy) or in the simulated datacenter.

How the BMC is chosen, per node, from its params:

- ``bmc`` is an ``http://`` or ``https://`` URL: real Redfish through sushy, whatever the
  backend the node's other steps run on (a BMC is out of band: it is reached from the
  operator's host, not from the node). The URL names the ComputerSystem
  (``https://10.1.0.7/redfish/v1/Systems/1``) or just the service
  (``https://10.1.0.7``), whose one system is then used. TLS certificates are verified
  unless ``bmc_verify`` is false. Credentials are the secrets ``bmc_user`` and
  ``bmc_password`` (``FLEETLOG_SECRET_BMC_USER``/``…_PASSWORD``), sent as HTTP basic
  auth and never written anywhere.
- ``bmc`` is empty, on the sim backend: the node's simulated BMC, the pseudo-host
  ``bmc:NODE`` of the sim world (``fleetlog.machines.sim.bmc``).
- ``bmc`` is empty on any other backend: the step fails and says which param to set.

Every failure is a ``BMCError`` with one line that names the BMC and says what went
wrong (credentials refused, no answer in time, an HTTP error and the BMC's message); a
request that failed changed nothing on the BMC's side that fleetlog relied on.
"""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fleetlog.errors import FleetlogError

#: Redfish ResetType values for the plugin's actions, and the power state each ends in.
ACTIONS: dict[str, tuple[str, str]] = {
    "on": ("On", "On"),
    "off": ("ForceOff", "Off"),
    "shutdown": ("GracefulShutdown", "Off"),
    "reset": ("ForceRestart", "On"),
}
#: Redfish BootSourceOverrideTarget values for the plugin's boot devices.
DEVICES = {"pxe": "Pxe", "disk": "Hdd"}
DEFAULT_TIMEOUT = 120.0
POLL = 0.5
SYSTEMS = "/redfish/v1/Systems"


class BMCError(FleetlogError):
    """A BMC refused, did not answer, or answered an error: the step fails with this."""


@dataclass(frozen=True)
class Target:
    """One node's BMC and how to talk to it. ``password`` never reaches ``repr``."""

    node: str
    bmc: str
    verify: bool
    user: str | None
    password: str | None
    timeout: float

    def __repr__(self) -> str:
        return f"Target(node={self.node!r}, bmc={self.bmc!r}, verify={self.verify})"

    @property
    def is_http(self) -> bool:
        return self.bmc.startswith(("http://", "https://"))


class BMC:
    """The operations the plugin needs, on the real or the simulated BMC."""

    def __init__(self, target: Target, backend: Any) -> None:
        self.t = target
        self.backend = backend
        self._system: Any = None

    # ---------------------------------------------------------------- operations
    def power_state(self) -> str:
        if self.t.is_http:
            return str(self._http(lambda s: _value(s.power_state)))
        return str(self._sim("show")["power"])

    def reset(self, reset_type: str) -> None:
        if self.t.is_http:
            import sushy

            kind = sushy.ResetType(reset_type)
            self._http(lambda s: s.reset_system(kind))
        else:
            self._sim("power", reset_type)

    def boot_once(self, target: str) -> tuple[str, str]:
        """Set the next boot (only) to ``target``; what the BMC reads back afterwards."""
        if self.t.is_http:
            import sushy

            def act(s: Any) -> tuple[str, str]:
                s.set_system_boot_options(
                    target=sushy.BootSource(target),
                    enabled=sushy.BootSourceOverrideEnabled.ONCE,
                )
                s.refresh()
                return _value(s.boot.target), _value(s.boot.enabled)

            result: tuple[str, str] = self._http(act)
            return result
        shown = self._sim("boot", target, "Once")
        return str(shown["boot_target"]), str(shown["boot_enabled"])

    def wait_power(self, want: str, started: float) -> str:
        """Poll until the power state is ``want`` (a BMC applies a change in its own
        time) within the step's timeout."""
        while True:
            state = self.power_state()
            if state == want:
                return state
            if time.monotonic() - started + POLL > self.t.timeout:
                raise BMCError(
                    f"BMC {self.t.bmc or 'bmc:' + self.t.node}: power is still {state}, "
                    f"not {want}, after {self.t.timeout:g}s"
                )
            time.sleep(POLL)

    # ---------------------------------------------------------------- HTTP
    def _connect(self) -> Any:
        import logging

        import sushy
        from sushy import auth

        # sushy logs each refusal as a multi-line warning; the step's error says it once
        logging.getLogger("sushy").setLevel(logging.ERROR)

        parts = urlsplit(self.t.bmc)
        base = f"{parts.scheme}://{parts.netloc}"
        creds = None
        if self.t.user is not None and self.t.password is not None:
            creds = auth.BasicAuth(self.t.user, self.t.password)
        read = max(1.0, min(self.t.timeout, 30.0))
        root = sushy.Sushy(
            base,
            auth=creds,
            verify=self.t.verify,
            server_side_retries=0,
            read_timeout=read,
            connect_timeout=min(read, 10.0),
        )
        path = parts.path.rstrip("/")
        if path.startswith(SYSTEMS + "/"):
            return root.get_system(path)
        members = root.get_system_collection().members_identities
        if len(members) != 1:
            raise BMCError(
                f"BMC {self.t.bmc} manages {len(members)} systems: name one in the bmc "
                f"param ({base}{SYSTEMS}/ID)"
            )
        return root.get_system(next(iter(members)))

    def _http(self, act: Any) -> Any:
        from sushy import exceptions as sx

        where = f"BMC {self.t.bmc}"
        try:
            if self._system is None:
                self._system = self._connect()
            else:
                self._system.refresh()
            return act(self._system)
        except sx.AccessError as exc:
            who = "the credentials" if self.t.user else "a request without credentials"
            hint = "" if self.t.user else " (set FLEETLOG_SECRET_BMC_USER and _PASSWORD)"
            raise BMCError(
                f"{where} refused {who}: HTTP {exc.status_code}{hint}", bmc=self.t.bmc
            ) from None
        except sx.HTTPError as exc:
            said = (exc.detail or "").strip().splitlines()
            raise BMCError(
                f"{where} answered HTTP {exc.status_code}" + (f": {said[0][:200]}" if said else ""),
                bmc=self.t.bmc,
            ) from None
        except sx.ConnectionError as exc:
            text = str(exc)
            if "timed out" in text.lower() or "timeout" in text.lower():
                raise BMCError(
                    f"{where} did not answer within {self.t.timeout:g}s", bmc=self.t.bmc
                ) from None
            raise BMCError(f"{where} cannot be reached: {_last(text)}", bmc=self.t.bmc) from None
        except sx.SushyError as exc:
            raise BMCError(f"{where}: {_last(str(exc))}", bmc=self.t.bmc) from None
        except ValueError as exc:  # a value the BMC does not offer (an unknown enum)
            raise BMCError(f"{where}: {exc}", bmc=self.t.bmc) from None

    # ---------------------------------------------------------------- the sim
    def _sim(self, *argv: str) -> dict[str, Any]:
        from fleetlog.engine.backends import BackendError

        if getattr(self.backend, "name", "") != "sim":
            raise BMCError(
                f"{self.t.node} has no bmc param: set it to its BMC's Redfish URL "
                "(https://BMC/redfish/v1/Systems/ID); only the sim backend simulates BMCs"
            )
        host = f"bmc:{self.t.node}"
        env = ""
        if self.t.user is not None and self.t.password is not None:
            env = (
                f"BMC_USER={shlex.quote(self.t.user)} BMC_PASSWORD={shlex.quote(self.t.password)} "
            )
        command = env + "bmc " + " ".join(shlex.quote(a) for a in argv)
        try:
            res = self.backend.run(host, command, timeout=self.t.timeout)
        except BackendError as exc:
            raise BMCError(f"BMC {host}: {_last(exc.fields.get('reason') or str(exc))}") from None
        if not res.ok:
            raise BMCError(f"BMC {host}: {_last(res.stderr or res.stdout)}")
        shown: dict[str, Any] = json.loads(res.stdout)
        return shown


def _value(v: Any) -> str:
    return str(getattr(v, "value", v))


def _last(text: str) -> str:
    lines = [ln.strip() for ln in str(text).strip().splitlines() if ln.strip()]
    return lines[-1][:240] if lines else "no details"


def target_of(ctx: Any) -> Target:
    """The BMC of the plugin's resource, from its params, secrets and the step's timeout."""
    from fleetlog.engine.model import MissingSecret

    params = ctx.params
    bmc = str(params.get("bmc") or "")
    verify = params.get("bmc_verify", True)
    if bmc and not bmc.startswith(("http://", "https://")):
        raise BMCError(f"bmc {bmc!r}: expected an http:// or https:// Redfish URL")
    creds: list[str | None] = []
    for name in ("bmc_user", "bmc_password"):
        try:
            creds.append(ctx.secret(name))
        except MissingSecret:
            creds.append(None)
    timeout = getattr(ctx, "timeout", None) or DEFAULT_TIMEOUT
    return Target(ctx.host, bmc, verify is not False, creds[0], creds[1], float(timeout))
