"""Redfish step plugins: out-of-band power and boot through a node's BMC (as Ironic's
``redfish`` power and management interfaces, Metal3 and xCAT's ``rpower`` do).

The BMC is the resource's own, read from its params (``bmc``, ``bmc_verify``) and
secrets (``bmc_user``, ``bmc_password``): see ``redfish_client`` for how the real
Redfish service or the simulated BMC is chosen. The step's ``timeout`` bounds the whole
call, HTTP requests and the wait for the power state included (default 120 s); its
``retry`` re-runs the call. A failure is one line naming the BMC.

- ``power(action)``: ``on``, ``off`` (ForceOff: a fence), ``shutdown``
  (GracefulShutdown) or ``reset`` (ForceRestart; a node that is off is powered on), then
  wait until the BMC reports the power state the action ends in: the step succeeds only
  once it is *confirmed*. ``on`` and ``off`` of a node already there send nothing.
- ``boot_once(device)``: the next boot only from ``pxe`` or ``disk``.
- ``power_state()``: the power state the BMC reports (``On``, ``Off``), as the output.
"""

from __future__ import annotations

import time
from typing import Any

# Every command that loads the kinds imports this module, only to read ``__all__`` (the
# plugin names the machines are checked against): the client is imported by the plugin
# that runs, so start-up does not pay for it.
__all__ = ["boot_once", "power", "power_state"]


def power(ctx: Any, action: str) -> str:
    from fleetlog.machines.steps.redfish_client import ACTIONS, BMC, BMCError, target_of

    if action not in ACTIONS:
        raise BMCError(f"power action must be one of {', '.join(ACTIONS)}, not {action!r}")
    started = time.monotonic()
    target = target_of(ctx)
    bmc = BMC(target, ctx.backend)
    reset_type, want = ACTIONS[action]
    before = bmc.power_state()
    if action in ("on", "off") and before == want:
        return f"{target.node}: power already {want}"
    if action == "reset" and before == "Off":
        reset_type = "On"
    bmc.reset(reset_type)
    after = bmc.wait_power(want, started)
    return f"{target.node}: {reset_type} (power was {before}, now {after}, confirmed)"


def boot_once(ctx: Any, device: str) -> str:
    from fleetlog.machines.steps.redfish_client import BMC, DEVICES, BMCError, target_of

    if device not in DEVICES:
        raise BMCError(f"boot device must be one of {', '.join(DEVICES)}, not {device!r}")
    target = target_of(ctx)
    got, enabled = BMC(target, ctx.backend).boot_once(DEVICES[device])
    if got != DEVICES[device]:
        raise BMCError(
            f"BMC of {target.node} accepted boot {DEVICES[device]} once but reports {got}"
        )
    return f"{target.node}: next boot from {got} (asked Once, BMC reports {enabled})"


def power_state(ctx: Any) -> str:
    from fleetlog.machines.steps.redfish_client import BMC, target_of

    return BMC(target_of(ctx), ctx.backend).power_state()
