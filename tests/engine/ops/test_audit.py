"""The audit timeline: who asked, which steps ran (attempts, durations), what the backend
said, what drift was found and fixed, and why each transition ran — the causation chain
of the Exascale clone-guest scenario. Also ``--at``, ``--since`` and the HTML page, which
headless Chromium renders."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.ops.audit_html import render_html
from tests.engine.conftest import Fleet, clone_onto_unconfigured_host

KVM_STEPS = [
    "cellinit",
    "restart_rs",
    "start_ms",
    "node_user",
    "mkwallet",
    "wallet_user",
    "rest_point",
    "root_url",
    "wallet",
    "start_bsw",
    "start_edv",
    "settle",
]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLOG_SECRET_WALLET_PASSWORD", "s3cret")
    monkeypatch.setenv("USER", "alice")  # the journal's actor


@pytest.fixture
def cloned(fleet: Fleet) -> Fleet:
    """The seed's scenario: vm/g9 cloned onto node3, where Exascale was never set up."""
    clone_onto_unconfigured_host(fleet, computes=3)
    return fleet


def audit_json(fleet: Fleet, *args: str) -> list[dict[str, Any]]:
    res = fleet.cli("audit", *args, "--json")
    assert res.code == 0, res.err
    data: list[dict[str, Any]] = res.json()
    return data


def transitions(resource: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in resource["entries"] if e["kind"] == "transition"]


def test_why_was_node3_configured(cloned: Fleet) -> None:
    [node3] = audit_json(cloned, "kvm_host/node3")
    assert node3["state"] == "exascale_ready"
    [t] = transitions(node3)
    assert (t["trigger"], t["from"], t["to"], t["outcome"]) == (
        "configure_exascale",
        "discovered",
        "exascale_ready",
        "completed",
    )
    assert [s["step"] for s in t["steps"]] == KVM_STEPS
    for s in t["steps"]:
        [attempt] = s["attempts"]
        assert attempt["outcome"] == "succeeded" and attempt["duration"] >= 0
    assert t["duration"] is not None and t["duration"] >= 0

    # The chain: node3's transition was caused by step `exascale` of vm/g9's clone...
    [link] = t["cause"]
    g9_events = cloned.events("vm/g9")
    step = next(
        e for e in g9_events if e.type == "step.started" and e.payload["step"] == "exascale"
    )
    clone = next(e for e in g9_events if e.type == "transition.started")
    command = next(e for e in g9_events if e.type == "command.accepted")
    assert link["resource"] == "vm/g9" and link["step"] == "exascale"
    assert link["step_seq"] == step.seq and link["attempt"] == 1
    assert link["transition_id"] == clone.correlation_id
    assert (link["trigger"], link["from"], link["to"]) == ("clone", "defined", "ACTIVE")
    # ... and that clone was asked by alice, on this host.
    assert link["command"]["actor"] == command.actor == "alice"
    assert link["command"]["command_id"] == command.command_id

    text = cloned.cli("audit", "kvm_host/node3")
    assert text.code == 0
    assert (
        "because step `exascale` (attempt 1) of vm/g9's clone (defined -> ACTIVE) ensured it"
        in text.out
    )
    assert f"that was asked by alice@{command.host}" in text.out
    assert "- settle" in text.out


def test_an_operators_own_command_has_no_cause_but_an_actor(cloned: Fleet) -> None:
    [g9] = audit_json(cloned, "vm/g9")
    [t] = transitions(g9)
    assert t["cause"] == [] and t["command"]["actor"] == "alice"
    assert t["command"]["params"] == {"source": "exa1_vm1", "target": "node3"}
    assert g9["entries"][0]["kind"] == "created"
    exascale = next(s for s in t["steps"] if s["step"] == "exascale")
    assert exascale["status"] == "succeeded"


def test_failed_attempts_and_undo_are_shown(cloned: Fleet) -> None:
    from fleetlog.engine.backends.sim import Fault

    cloned.sim.world.inject(Fault("vm_maker", mode="fail_always", message="disk full"))
    assert cloned.cli("add", "vm/g10", "--param", "host=node3").code == 0
    res = cloned.cli(
        "fire", "vm/g10", "clone", "--param", "source=exa1_vm1", "--param", "target=node3"
    )
    assert res.code == 1
    [g10] = audit_json(cloned, "vm/g10")
    [t] = transitions(g10)
    assert t["outcome"] == "failed" and t["state_after"] == "ERROR"
    assert t["failed_step"] == "create" and "disk full" in t["error"]
    create = next(s for s in t["steps"] if s["step"] == "create" and not s["undo"])
    assert create["status"] == "failed"
    assert create["attempts"][-1]["error"] and "disk full" in create["attempts"][-1]["error"]
    # node3 was already exascale_ready: the ensure found it so, nothing fired.
    [node3] = audit_json(cloned, "kvm_host/node3")
    assert len(transitions(node3)) == 1


def test_drift_findings_and_fixes_are_on_the_timeline(cloned: Fleet) -> None:
    cloned.sim.run("node3", "vm_maker --stop g9")
    assert cloned.cli("reconcile", "vm/g9", "--fix", "unsynced").code == 0
    [g9] = audit_json(cloned, "vm/g9")
    drift = next(e for e in g9["entries"] if e["kind"] == "drift")
    fix = next(e for e in g9["entries"] if e["kind"] == "reconciled")
    assert drift["class"] == "unsynced"
    assert drift["evidence"]["observed"] == "stopped"
    assert len(drift["evidence"]["raw_sha256"]) == 64
    assert drift["fixed_by"]["seq"] == fix["seq"]
    assert (fix["from"], fix["to"], fix["finding"]["id"]) == (
        "ACTIVE",
        "STOPPED",
        drift["event_id"],
    )
    text = cloned.cli("audit", "vm/g9").out
    assert "drift unsynced: journal ACTIVE, backend 'stopped' -> STOPPED" in text
    assert "reconciled ACTIVE -> STOPPED by alice@" in text


def test_observations_and_orphan_findings_are_on_the_timeline(cloned: Fleet) -> None:
    state = dict(cloned.sim.world.host_state("node2"))
    state["vms"] = {"ghost": {"status": "running", "storage": "asm", "source": None}}
    cloned.sim.world.set_host_state("node2", state)
    assert cloned.cli("reconcile", "vm").code == 3
    path = cloned.root / "m.jsonl"
    path.write_text(
        '{"id": "m1", "resource": "vm/g9", "status": "running", '
        '"event_time": "2026-01-01T00:00:00Z", "source": "ganeti"}\n'
    )
    assert cloned.cli("ingest", str(path)).code == 0
    res = audit_json(cloned, "vm")
    by_id = {r["resource"]: r for r in res}
    assert by_id["vm/ghost"]["known"] is False and by_id["vm/ghost"]["state"] is None
    assert [e["kind"] for e in by_id["vm/ghost"]["entries"]] == ["drift"]
    obs = [e for e in by_id["vm/g9"]["entries"] if e["kind"] == "observation"]
    assert [(o["status"], o["message_id"]) for o in obs] == [("running", "m1")]


def test_audit_at_answers_from_replay_as_of_that_point(cloned: Fleet) -> None:
    events = cloned.events("vm/g9")
    started = next(e for e in events if e.type == "transition.started")
    [g9] = audit_json(cloned, "vm/g9", "--at", str(started.seq))
    assert g9["state"] == "defined" and g9["as_of_seq"] == started.seq
    assert g9["in_progress"]["trigger"] == "clone"
    [t] = transitions(g9)
    assert t["outcome"] == "in_progress" and t["steps"] == []
    assert all(e["last_seq"] <= started.seq for e in g9["entries"])
    # node3 had not been touched yet at that point.
    [node3] = audit_json(cloned, "kvm_host/node3", "--at", str(started.seq))
    assert node3["state"] == "discovered" and transitions(node3) == []
    # An ISO time works too: the time of that very event.
    [again] = audit_json(cloned, "vm/g9", "--at", started.recorded_at)
    assert again["as_of_seq"] == started.seq and again["state"] == "defined"


def test_audit_since_keeps_later_entries(cloned: Fleet) -> None:
    events = cloned.events("vm/g9")
    created = events[0]
    [g9] = audit_json(cloned, "vm/g9", "--since", str(created.seq + 1))
    assert [e["kind"] for e in g9["entries"]] == ["transition"]
    last = events[-1]
    [g9] = audit_json(cloned, "vm/g9", "--since", last.recorded_at)
    assert [e["kind"] for e in g9["entries"]] == ["transition"]  # it ends at or after
    res = cloned.cli("audit", "--since", "yesterday-ish")
    assert res.code == 2


def test_auditing_a_missing_resource_is_a_usage_error(cloned: Fleet) -> None:
    res = cloned.cli("audit", "vm/nope")
    assert res.code == 2 and "vm/nope" in res.err


# ---------------------------------------------------------------------------- html
def _chromium() -> str | None:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed")
    return found


def dump_dom(page: Path, tmp: Path) -> str:
    chromium = _chromium()
    assert chromium is not None
    proc = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp / 'profile'}",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_the_html_page_is_self_contained() -> None:
    page = render_html([])
    assert "<script src" not in page and "<link" not in page
    assert "http://" not in page and "https://" not in page
    assert "default-src 'none'" in page  # and the browser is told to fetch nothing


def test_the_html_page_renders_the_timeline_in_a_browser(cloned: Fleet) -> None:
    hostile = '<img id=pwned src=x onerror="document.title=1">'
    path = cloned.root / "m.jsonl"
    message = {"id": "m1", "resource": "vm/g9", "status": hostile, "event_time": "2026-01-01"}
    path.write_text(json.dumps(message) + "\n")
    assert cloned.cli("ingest", str(path)).code == 0
    page = cloned.root / "audit.html"
    res = cloned.cli("audit", "--html", str(page))
    assert res.code == 0, res.err
    static = page.read_text()
    assert '<li class="entry' not in static  # the page's script builds the timeline

    dom = dump_dom(page, cloned.root)
    assert 'data-rendered="' in dom
    assert 'data-resource="kvm_host/node3"' in dom
    assert '<li class="entry entry-transition"' in dom
    assert "because step `exascale` (attempt 1) of vm/g9's clone" in dom
    assert "settle" in dom and "asked by alice@" in dom
    # Output is text, never markup: the hostile status did not become an element.
    assert 'id="pwned"' not in dom and "&lt;img id=pwned" in dom
