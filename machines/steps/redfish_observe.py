"""Power state as an observe source (Ironic's power-state sync): reconcile asks each
node's BMC, through the same client as the Redfish steps (a ``bmc`` URL: Redfish over
HTTP; none, on the sim: the simulated BMC), and maps ``On``/``Off`` with the kind's
observe rules. Detect-only unless reconcile is given ``--fix``.

Declared in the pack as ``observe_sources``; the kinds it reads are ``KINDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fleetlog.machines.steps.redfish_client import BMC, target_of

#: Kinds whose observed status is their BMC's power state.
KINDS = ("diskless_node",)
#: Per BMC: a reconcile pass must not hang on one that does not answer.
TIMEOUT = 20.0


@dataclass
class _Ctx:
    """What ``target_of`` reads of a step's context, for a resource outside any step."""

    params: Any
    host: str
    scope: Any
    timeout: float = TIMEOUT

    def secret(self, name: str) -> str:
        return str(self.scope.secret(name))


class PowerStateSource:
    name = "redfish:power"
    kinds = KINDS

    def status(self, record: Any, scope: Any, backend: Any) -> str:
        from fleetlog.engine.model import host_of

        ctx = _Ctx(record.params, host_of(record), scope)
        return BMC(target_of(ctx), backend).power_state()


SOURCE = PowerStateSource()
