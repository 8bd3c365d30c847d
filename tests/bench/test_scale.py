"""``bench/scale.py`` runs end to end on a tiny size and prints the figures it promises.
The figures themselves are not checked here: they are benchmarks (docs/benchmarks.md),
not tests."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_scale_benchmark_runs_on_a_tiny_size(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "scale.py"), "--sizes", "3", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    for anchor in ("python_startup_s", "fleetlog_startup_s", "sqlite_commit_per_s"):
        assert summary[anchor] > 0
    [size] = summary["sizes"]
    assert size["resources"] == 3 and size["fire_events"] > 0
    for key in (
        "load_s",
        "reload_s",
        "fire_wall_s",
        "fire_cpu_s",
        "fire_peak_rss_mib",
        "us_per_node_step",
        "journal_bytes_per_event",
        "status_s",
        "status_json_s",
        "verify_s",
    ):
        assert size[key] > 0, key
    # The floor appends, for as many fresh resources, the events one transition of the
    # run journaled (seven for a one-step transition), and nothing else.
    assert size["floor_us_per_node_step"] > 0 and size["floor_cpu_us_per_node_step"] > 0
    assert size["floor_events_per_node_step"] == 7
    assert size["floor_events"] == 3 * (1 + 7)
    assert size["fire_events"] >= 3 * 7
    assert list(tmp_path.iterdir()) == []  # its journals are removed
