"""``fleetlog metrics``: printed, written for node_exporter's textfile collector, and
served over real HTTP; every exposition parsed with prometheus-client's own parsers."""

from __future__ import annotations

import os
import signal
import urllib.error
import urllib.request
from typing import Any

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.parser import text_string_to_metric_families as classic_families

from tests.engine.conftest import Fleet

LAMP = """
machine lamp {
    param host: str = "lh"
    param doomed: bool = false
    initial state off
    state on
    state broken : error
    transition light : off -> on {
        step switch run "touch_flag {name}"
        step check  run "fail dark" when doomed
        on failure -> broken
    }
}
"""


@pytest.fixture
def lamps(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "lamp.fsm").write_text(LAMP)
    fleet.use_machines(d)
    for name, doomed in (("l1", False), ("l2", True), ("l3", False)):
        assert (
            fleet.cli("add", f"lamp/{name}", "--param", f"doomed={str(doomed).lower()}").code == 0
        )
    assert fleet.cli("fire", "lamp/l[1-2]", "light").code == 1
    return fleet


def values(text: str, parse: Any = text_string_to_metric_families) -> dict[tuple[str, str], float]:
    """(sample name, its labels as k=v,...) -> value."""
    out = {}
    for family in parse(text):
        for s in family.samples:
            out[s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))] = s.value
    return out


def check_lamps(found: dict[tuple[str, str], float], off: int = 1) -> None:
    assert found["fleetlog_resources", "kind=lamp,state=on"] == 1
    assert found["fleetlog_resources", "kind=lamp,state=broken"] == 1
    assert found["fleetlog_resources", "kind=lamp,state=off"] == off
    assert found["fleetlog_transitions_total", "kind=lamp,outcome=completed,trigger=light"] == 1
    assert found["fleetlog_transitions_total", "kind=lamp,outcome=failed,trigger=light"] == 1
    assert found["fleetlog_steps_total", "kind=lamp,outcome=succeeded,phase=plan,step=switch"] == 2
    assert found["fleetlog_steps_total", "kind=lamp,outcome=failed,phase=plan,step=check"] == 1
    assert found["fleetlog_step_duration_seconds_count", "kind=lamp,phase=plan,step=switch"] == 2


def test_metrics_prints_openmetrics(lamps: Fleet) -> None:
    res = lamps.cli("metrics")
    assert res.code == 0, res.err
    assert res.out.endswith("# EOF\n")
    check_lamps(values(res.out))


def test_output_writes_the_textfile_collectors_format_atomically(lamps: Fleet) -> None:
    target = lamps.root / "textfile" / "fleetlog.prom"
    target.parent.mkdir()
    target.write_text("stale content\n")
    res = lamps.cli("metrics", "--output", str(target))
    assert res.code == 0, res.err
    assert res.out == ""
    text = target.read_text()
    assert "# EOF" not in text  # the classic format, which node_exporter reads
    check_lamps(values(text, classic_families))
    assert os.listdir(target.parent) == ["fleetlog.prom"]  # no temporary file left
    res = lamps.cli("metrics", "-o", str(target), "--format", "openmetrics")
    assert res.code == 0, res.err
    check_lamps(values(target.read_text()))


@pytest.mark.parametrize(
    "args",
    [
        ["--output", "m.prom", "--listen", "127.0.0.1:0"],
        ["--listen", "localhost"],
        ["--listen", "127.0.0.1:70000"],
        ["--format", "json"],
        ["--format", "prometheus", "--listen", "127.0.0.1:0"],
        ["--output", "no/such/dir/m.prom"],
    ],
)
def test_bad_options_are_usage_errors(lamps: Fleet, args: list[str]) -> None:
    res = lamps.cli("metrics", *args)
    assert res.code == 2, res.err
    assert res.err.startswith("fleetlog: error: ") and "Traceback" not in res.err


def test_no_journal_is_a_usage_error(fleet: Fleet) -> None:
    res = fleet.cli("metrics")
    assert res.code == 2 and "no journal at" in res.err
    assert not os.path.exists(fleet.journal_path)


def fetch(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return answer.headers["Content-Type"], answer.read().decode()


def test_listen_serves_fresh_figures_until_a_signal(lamps: Fleet) -> None:
    proc = lamps.spawn("metrics", "--listen", "127.0.0.1:0")
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert "serving metrics on http://127.0.0.1:" in line, line
        url = line.split(" on ", 1)[1].strip()

        kind, text = fetch(url, "application/openmetrics-text; version=1.0.0")
        assert kind.startswith("application/openmetrics-text")
        check_lamps(values(text))
        kind, text = fetch(url)  # a scraper that asks for nothing gets the classic format
        assert kind.startswith("text/plain")
        check_lamps(values(text, classic_families))

        # Every scrape reads the journal as it is now.
        assert lamps.cli("add", "lamp/l4").code == 0
        _, text = fetch(url, "application/openmetrics-text")
        check_lamps(values(text), off=2)

        with pytest.raises(urllib.error.HTTPError) as missing:
            fetch(url.replace("/metrics", "/other"))
        assert missing.value.code == 404
        missing.value.close()

        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=lamps.child_timeout)
        assert proc.returncode == 0, err
        assert "stopped by signal" in err and "Traceback" not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
