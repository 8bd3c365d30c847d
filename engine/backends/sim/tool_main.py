"""Run one fake tool as a real process:
``python -m fleetlog.engine.backends.sim.tool_main TOOL ARGS...``.

The SSH lab puts these behind a real sshd, so the ssh backend is tested against exactly
the tools (and the world) the sim backend uses. The world and host come from the
environment: ``FLEETLOG_SIM_WORLD`` (a world file; required, an in-memory world would
vanish with the process), ``FLEETLOG_SIM_HOST`` (default: this machine's hostname) and
``FLEETLOG_SIM_SEED`` (default 0). Exit codes: the tool's own; 127 unknown tool;
124 hang/timeout; 255 an injected unreachable/drop (what ``ssh`` itself returns).
"""

from __future__ import annotations

import os
import shlex
import socket
import stat
import sys
from pathlib import Path

from fleetlog.engine.backends.base import BackendError, CommandTimeout
from fleetlog.engine.backends.sim.backend import SimBackend
from fleetlog.engine.backends.sim.registry import TOOLS_ENV, tool_modules, tool_names

ENV_WORLD = "FLEETLOG_SIM_WORLD"
ENV_HOST = "FLEETLOG_SIM_HOST"
ENV_SEED = "FLEETLOG_SIM_SEED"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args:
        usage = "usage: python -m fleetlog.engine.backends.sim.tool_main TOOL [ARGS...]"
        print(usage, file=sys.stderr)
        return 2
    world = os.environ.get(ENV_WORLD)
    if not world:
        print(f"sim: {ENV_WORLD} must name the world file", file=sys.stderr)
        return 2
    host = os.environ.get(ENV_HOST) or socket.gethostname()
    try:
        seed = int(os.environ.get(ENV_SEED, "0"))
    except ValueError:
        print(f"sim: {ENV_SEED} must be an integer", file=sys.stderr)
        return 2
    backend = SimBackend(world, seed=seed)
    try:
        result = backend.run(host, shlex.join(args), env=dict(os.environ))
    except CommandTimeout as exc:
        print(str(exc), file=sys.stderr)
        return 124
    except BackendError as exc:
        print(str(exc), file=sys.stderr)
        return 255
    finally:
        backend.close()
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.exit_code


def install_shims(
    directory: str | os.PathLike[str],
    world: str,
    host: str,
    *,
    python: str = sys.executable,
    seed: int = 0,
) -> list[Path]:
    """Write one executable ``/bin/sh`` shim per registered tool into ``directory``, with
    the world, host and seed baked in — put it first on a lab user's PATH and
    ``dbmcli -e ...`` over ssh runs the fake ``dbmcli`` against that host's state."""
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    written = []
    modules = shlex.quote(",".join(tool_modules()))
    for tool in tool_names():
        path = target / tool
        path.write_text(
            "#!/bin/sh\n"
            f"{ENV_WORLD}={shlex.quote(world)} {ENV_HOST}={shlex.quote(host)} "
            f"{ENV_SEED}={int(seed)} {TOOLS_ENV}={modules} exec {shlex.quote(python)} "
            f'-m fleetlog.engine.backends.sim.tool_main {shlex.quote(tool)} "$@"\n'
        )
        path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        written.append(path)
    return written


if __name__ == "__main__":
    sys.exit(main())
