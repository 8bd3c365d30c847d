"""What names mean while a transition runs: params, refs, builtins and secrets.

One ``Scope`` answers both ``{name}`` interpolation and ``when`` guards, so a command and
its guard can never disagree about a value. Secrets are resolved from the environment
(``FLEETLOG_SECRET_<NAME>``) at run time, never stored: the journal only ever sees the
command rendered with ``<secret:NAME>`` in their place, and any secret value that shows up
in a command's output is replaced by ``***`` before it is journaled or printed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetlog.engine.model.records import Resource
from fleetlog.errors import FleetlogError

OUTPUT_CAP = 4096


class ValueError_(FleetlogError):
    exit_code = 2


class MissingSecret(FleetlogError):
    msg_fmt = (
        "secret %(secret)r of %(resource)s is not set: export FLEETLOG_SECRET_%(env)s "
        "(secrets are never stored in the journal)"
    )
    exit_code = 2


def secret_env(name: str) -> str:
    return "FLEETLOG_SECRET_" + "".join(c if c.isalnum() else "_" for c in name).upper()


@dataclass
class Scope:
    """Values visible to one transition of one resource."""

    record: Resource
    params: Mapping[str, Any]
    secret_names: tuple[str, ...]
    load_ref: Callable[[str], Resource | None]
    trigger: str = ""
    _refs: dict[str, Resource | None] = field(default_factory=dict)
    _secrets: dict[str, str] = field(default_factory=dict)

    def ref(self, name: str) -> Resource | None:
        rid = self.params.get(name)
        if not isinstance(rid, str):
            return None
        if rid not in self._refs:
            self._refs[rid] = self.load_ref(rid)
        return self._refs[rid]

    def secret(self, name: str) -> str:
        if name not in self._secrets:
            env = secret_env(name)
            value = os.environ.get(env)
            if value is None:
                raise MissingSecret(secret=name, resource=self.record.id, env=env[16:])
            self._secrets[name] = value
        return self._secrets[name]

    def lookup(self, name: str, attr: str | None = None) -> Any:
        if attr is None:
            if name in self.params:
                return self.params[name]
            if name in self.secret_names:
                return self.secret(name)
            return _builtin(self.record, name, self.trigger)
        ref = self.ref(name)
        if ref is None:
            rid = self.params.get(name)
            if attr in ("id", "name") and isinstance(rid, str):
                return rid if attr == "id" else rid.split("/", 1)[1]
            raise ValueError_(f"{self.record.id}: {name} refers to {rid!r}, which does not exist")
        if attr in ref.params:
            return ref.params[attr]
        return _builtin(ref, attr, "")

    def redact(self, text: str) -> str:
        """Replace every resolved secret value in ``text`` with ``***``."""
        for value in self._secrets.values():
            if value:
                text = text.replace(value, "***")
        return text


def _builtin(rec: Resource, name: str, trigger: str) -> Any:
    if name == "name":
        return rec.name
    if name == "kind":
        return rec.kind
    if name == "id":
        return rec.id
    if name == "state":
        return rec.state
    if name == "trigger":
        return trigger
    if name == "host":
        return host_of(rec)
    raise ValueError_(f"{rec.id}: no value named {name!r}")


def host_of(rec: Resource) -> str:
    """Where a resource's commands run: its ``host`` param, else its name."""
    host = rec.params.get("host")
    return str(host) if host else rec.name


def cap(text: str, limit: int = OUTPUT_CAP) -> str:
    """Keep the tail (errors are usually at the end) and say what was dropped."""
    if len(text) <= limit:
        return text
    return f"[{len(text) - limit} bytes truncated]\n" + text[-limit:]
