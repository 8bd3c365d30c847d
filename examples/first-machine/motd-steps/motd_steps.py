# motd-steps/motd_steps.py
"""Step plugins for the motd machine, found through the ``fleetlog.steps`` entry points."""

from __future__ import annotations

import shlex
from typing import Any


def render(ctx: Any, path: str, text: str) -> str:
    """Write ``text`` and a footer to ``path`` on the resource's host.

    ``ctx`` is fleetlog's ``PluginContext``: ``ctx.run`` sends a shell command to the
    backend in use, so this works unchanged on sim, local and ssh. What it returns is
    journaled as the step's output; an exception fails the step.
    """
    body = f"{text}\n-- {ctx.resource.id}, managed by fleetlog\n"
    done = ctx.run(f"printf '%s' {shlex.quote(body)} > {shlex.quote(path)}")
    if not done.ok:
        raise RuntimeError(f"cannot write {path}: {done.stderr.strip()}")
    return f"wrote {len(body)} bytes to {path}"
