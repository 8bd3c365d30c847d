"""Running the real ``fleetlog`` executable in a subprocess, for tests that assert exit
codes and the absence of tracebacks exactly as a shell script would see them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def fleetlog_cmd() -> list[str]:
    script = Path(sys.executable).with_name("fleetlog")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]


def run(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``fleetlog ARGS`` in ``cwd`` with no inherited FLEETLOG_* settings but ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
    full_env.update(env or {})
    return subprocess.run(
        [*fleetlog_cmd(), *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
    )
