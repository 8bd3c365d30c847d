"""Reconciliation on the simulated datacenter: the Synnefo classes (stale, orphan,
unsynced, build error), detect-only by default, fixes through journaled events with
optimistic concurrency, periodic mode and its clean stop on a signal."""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import Fault, SimBackend
from fleetlog.engine.cli import reconcile as cli_reconcile
from fleetlog.engine.model import load_registry, load_resource, replay_all
from fleetlog.engine.ops.reconcile import Reconciler, map_status, parse_fix
from fleetlog.errors import UsageError
from fleetlog.journal.base import NewEvent
from fleetlog.machines.sim.scenarios import exascale_rack
from tests.engine.conftest import PROJECT_ROOT, Fleet, clone_onto_unconfigured_host, compile_kinds

#: The CLI in a child process.
CLI = "from fleetlog.engine.cli import main; main()"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETLOG_SECRET_WALLET_PASSWORD", "s3cret")


@pytest.fixture
def rack(fleet: Fleet) -> Fleet:
    """The seed's rack: node1/node2 configured, node3 not; 4 hosts in the world, 3 in the
    journal. vm/g9 is cloned onto node3 (ACTIVE); vm/exa1_vm1 is tracked but `defined`."""
    clone_onto_unconfigured_host(fleet, computes=4)
    # node4 is in the world but not in the journal: a kvm_host orphan, which is why the
    # vm tests name their kind.
    return fleet


def reconcile(fleet: Fleet, *args: str) -> tuple[int, dict[str, Any]]:
    res = fleet.cli("reconcile", *args, "--json")
    assert res.code in (0, 3), res.err
    return res.code, res.json()


def types(fleet: Fleet, rid: str) -> list[str]:
    return [e.type for e in fleet.events(rid) if not e.type.startswith("lock.")]


def set_guest(fleet: Fleet, host: str, name: str, status: str | None) -> None:
    """Change a guest behind fleetlog's back (None: it disappears)."""
    state = dict(fleet.sim.world.host_state(host))
    vms = dict(state.get("vms", {}))
    if status is None:
        vms.pop(name, None)
    else:
        vms[name] = {**vms.get(name, {"storage": "exascale", "source": None}), "status": status}
    state["vms"] = vms
    fleet.sim.world.set_host_state(host, state)


def sha(data: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


# ---------------------------------------------------------------------------- baseline
def test_a_fleet_in_step_with_its_backend_has_no_drift(rack: Fleet) -> None:
    code, out = reconcile(rack, "vm")
    assert code == 0
    assert out["findings"] == [] and not out["drift_remaining"]
    assert out["in_sync"] == 1  # vm/g9, ACTIVE and running
    # `defined` is no state a backend status can contradict: counted, not compared.
    assert out["skipped"]["not_comparable"] == ["vm/exa1_vm1"]
    assert [e for e in rack.events() if e.type == "drift.detected"] == []


def test_the_observe_map_prefers_exact_rules_and_reads_globs() -> None:
    registry = load_registry()
    kvm = registry.get("kvm_host").spec
    vm = registry.get("vm").spec
    assert map_status(vm, "stopped") == "STOPPED"
    assert map_status(vm, "ERROR_wrongnode") == "ERROR"
    assert map_status(vm, "what") is None
    assert map_status(kvm, "exascale:error-cellsrv") == "failed"


def test_fix_classes_are_validated() -> None:
    every = parse_fix(["all"], groups=["flavor"])
    # `all` never ends a resource: stale and orphan deletion must be named.
    assert not every.wants("stale") and not every.wants("orphan_delete")
    assert all(every.wants(c) for c in ("orphan", "unsynced", "build_error", "pending_task"))
    assert every.wants("unsynced_flavor") and not every.named_explicitly("unsynced")
    named = parse_fix(["stale,orphans"])
    assert named.classes == named.named == {"stale", "orphan"}
    assert parse_fix(["unsynced_flavor"], groups=["flavor"]).wants("unsynced_flavor")
    with pytest.raises(UsageError, match="--fix 'unsynced_nics'"):
        parse_fix(["unsynced_nics"], groups=["flavor"])
    with pytest.raises(UsageError, match="--fix 'everything'"):
        parse_fix(["everything"])


# ---------------------------------------------------------------------------- unsynced
def test_a_guest_stopped_behind_fleetlogs_back_is_unsynced_until_fixed(rack: Fleet) -> None:
    # Stopped directly through the backend, not through the engine.
    assert rack.sim.run("node3", "vm_maker --stop g9").ok
    before = len(rack.events("vm/g9"))

    code, out = reconcile(rack, "vm")
    assert code == 3
    [f] = out["findings"]
    assert (f["resource"], f["class"], f["journal_state"], f["mapped_state"]) == (
        "vm/g9",
        "unsynced",
        "ACTIVE",
        "STOPPED",
    )
    assert not f["fixed"] and f["fix_to"] == "STOPPED"
    drift = rack.events("vm/g9")[-1]
    assert drift.type == "drift.detected" and len(rack.events("vm/g9")) == before + 1
    ev = drift.payload["evidence"]
    assert ev["observed"] == "stopped" and ev["mapped_state"] == "STOPPED"
    assert ev["journal_state"] == "ACTIVE" and ev["host"] == "node3"
    assert ev["raw_sha256"] == sha(
        {"host": "node3", "kind": "vm", "name": "g9", "status": "stopped"}
    )
    assert rack.status()["vm/g9"]["state"] == "ACTIVE"  # detect-only changed nothing

    # A second pass finds the same drift and does not journal it twice.
    code, out = reconcile(rack, "vm")
    assert code == 3 and out["findings"][0]["new"] is False
    assert types(rack, "vm/g9").count("drift.detected") == 1

    # Another class's fix leaves it alone.
    code, out = reconcile(rack, "vm", "--fix", "stale", "--fix", "orphan")
    assert code == 3 and rack.status()["vm/g9"]["state"] == "ACTIVE"

    code, out = reconcile(rack, "vm", "--fix", "unsynced")
    assert code == 0 and out["findings"][0]["fixed"]
    fix = rack.events("vm/g9")[-1]
    assert fix.type == "state.reconciled"
    assert fix.payload["from"] == "ACTIVE" and fix.payload["to"] == "STOPPED"
    assert fix.payload["finding"]["id"] == drift.event_id
    assert fix.causation_id == drift.event_id
    assert rack.status()["vm/g9"]["state"] == "STOPPED"

    code, out = reconcile(rack, "vm")
    assert code == 0 and out["findings"] == []
    assert rack.cli("verify").code == 0
    # Point in time: as of the finding, the journal still said ACTIVE.
    res = rack.cli("status", "vm/g9", "--at", str(drift.seq), "--json")
    assert res.code == 0 and res.json()[0]["state"] == "ACTIVE"
    # The repaired record drives the machine as usual: start is allowed from STOPPED.
    assert rack.cli("fire", "vm/g9", "start").code == 0
    assert rack.sim.observe("node3", "vm", "g9") == "running"


def test_a_wrong_status_from_the_backend_is_drift_too(rack: Fleet) -> None:
    rack.sim.world.inject(Fault(mode="wrong_status", kind="vm", name="g9", status="ERROR_nodedown"))
    code, out = reconcile(rack, "vm/g9")
    assert code == 3
    assert out["findings"][0]["mapped_state"] == "ERROR"


def test_a_status_outside_the_observe_map_is_unsynced_and_unfixable(rack: Fleet) -> None:
    set_guest(rack, "node3", "g9", "migrating")
    code, out = reconcile(rack, "vm", "--fix", "all")
    assert code == 3
    [f] = out["findings"]
    assert f["class"] == "unsynced" and f["mapped_state"] is None and not f["fixed"]
    assert "not in the observe map" in f["unfixable"]
    assert rack.status()["vm/g9"]["state"] == "ACTIVE"


# ---------------------------------------------------------------------------- stale
def test_a_guest_gone_from_the_backend_is_stale(rack: Fleet) -> None:
    assert rack.sim.run("node3", "vm_maker --delete g9").ok
    set_guest(rack, "node1", "exa1_vm1", None)  # `defined`: absent is expected, not stale
    code, out = reconcile(rack, "vm")
    assert code == 3
    [f] = out["findings"]
    assert (f["resource"], f["class"], f["observed"], f["fix_to"]) == (
        "vm/g9",
        "stale",
        None,
        "DELETED",
    )
    assert out["in_sync"] == 1
    code, out = reconcile(rack, "vm", "--fix", "stale")
    assert code == 0
    assert rack.status()["vm/g9"]["state"] == "DELETED"
    # DELETED and absent agree: nothing more to say.
    assert reconcile(rack, "vm")[0] == 0


def test_a_resource_on_an_unreachable_host_is_unknown_never_stale(rack: Fleet) -> None:
    rack.sim.world.inject(Fault(mode="unreachable", host="node3"))
    code, out = reconcile(rack, "vm", "--fix", "all", "--fix", "stale")
    [f] = out["findings"]
    assert (f["resource"], f["class"], f["fixed"]) == ("vm/g9", "unknown", False)
    assert "unreachable" in f["unfixable"]
    assert code == 3  # it needs looking at
    assert rack.status()["vm/g9"]["state"] == "ACTIVE"
    # Journaled as evidence, and only once however many passes see it.
    assert reconcile(rack, "vm")[1]["findings"][0]["new"] is False
    assert types(rack, "vm/g9").count("drift.detected") == 1


# ---------------------------------------------------------------------------- orphans
def test_a_guest_unknown_to_the_journal_is_an_orphan(rack: Fleet) -> None:
    set_guest(rack, "node2", "ghost1", "running")  # node2 is in the journal
    set_guest(rack, "node4", "stray", "stopped")  # node4 is not
    code, out = reconcile(rack, "vm")
    assert code == 3
    found = {f["resource"]: f for f in out["findings"]}
    assert set(found) == {"vm/ghost1", "vm/stray"}
    assert found["vm/ghost1"]["class"] == "orphan" and found["vm/ghost1"]["fix_to"] == "ACTIVE"
    assert found["vm/ghost1"]["unfixable"] is None
    assert "host" in found["vm/stray"]["unfixable"]  # a required param nobody can supply

    # The orphan's finding is on its own stream, without resource.created: replay yields
    # no record for it, and status/verify are unaffected.
    assert types(rack, "vm/ghost1") == ["drift.detected"]
    assert "vm/ghost1" not in replay_all(rack.journal, load_registry())
    assert load_resource(rack.journal, load_registry(), "vm/ghost1") is None
    assert "vm/ghost1" not in rack.status()
    assert rack.cli("verify").code == 0

    code, out = reconcile(rack, "vm", "--fix", "orphan")
    assert code == 3  # vm/stray cannot be adopted
    st = rack.status()
    assert st["vm/ghost1"]["state"] == "ACTIVE"
    assert st["vm/ghost1"]["params"] == {
        "host": "kvm_host/node2",
        "storage": "exascale",
        "image": "gold_image",
    }
    created = rack.events("vm/ghost1")[-1]
    assert created.type == "resource.created"
    assert created.causation_id == rack.events("vm/ghost1")[0].event_id
    assert "vm/stray" not in st


def test_an_orphan_host_is_adopted_with_its_address(rack: Fleet) -> None:
    code, _ = reconcile(rack, "kvm_host/node4", "--fix", "orphan")
    assert code == 0
    st = rack.status()["kvm_host/node4"]
    assert st["state"] == "ready" and st["params"]["host"] == "node4"


# ---------------------------------------------------------------------------- in progress
def test_a_resource_mid_transition_is_skipped_not_fixed(rack: Fleet) -> None:
    # A `stop` killed right after transition.started: vm/g9 is in progress.
    crashed = rack.sub("fire", "vm/g9", "stop", FLEETLOG_TEST_CRASH_AFTER_EVENTS="2")
    assert crashed.code == -signal.SIGKILL
    assert rack.status()["vm/g9"]["in_progress"] is not None
    set_guest(rack, "node3", "g9", "ERROR_down")
    before = rack.events("vm/g9")

    code, out = reconcile(rack, "vm", "--fix", "all")
    assert code == 0 and out["findings"] == []
    assert out["skipped"]["in_progress"] == ["vm/g9"]
    assert rack.events("vm/g9") == before


# ---------------------------------------------------------------------------- build error
def test_a_build_the_backend_reports_failed_is_a_build_error(rack: Fleet) -> None:
    assert rack.cli("add", "vm/b1", "--param", "host=node1", "--param", "storage=asm").code == 0
    res = rack.cli("fire", "vm/b1", "create")
    assert res.code == 0, res.err
    assert rack.status()["vm/b1"]["state"] == "BUILD"
    assert reconcile(rack, "vm/b1")[1]["skipped"]["not_comparable"] == ["vm/b1"]

    set_guest(rack, "node1", "b1", "ERROR_down")
    code, out = reconcile(rack, "vm/b1")
    assert code == 3
    [f] = out["findings"]
    assert (f["class"], f["journal_state"], f["fix_to"]) == ("build_error", "BUILD", "ERROR")
    assert reconcile(rack, "vm/b1", "--fix", "unsynced")[0] == 3
    code, out = reconcile(rack, "vm/b1", "--fix", "build_error")
    assert code == 0 and rack.status()["vm/b1"]["state"] == "ERROR"


# ---------------------------------------------------------------------------- concurrency
class MovingBackend:
    """The sim, plus a concurrent writer: while the reconciler reads the backend, someone
    else appends to the resource's stream (as an operator or a second reconciler would)."""

    def __init__(self, sim: SimBackend, write: Any) -> None:
        self.sim, self.write, self.calls = sim, write, 0
        self.name = "sim"

    def inventory_by_host(self, kind: str) -> Any:
        self.calls += 1
        if self.calls == 1:
            self.write()
        return self.sim.inventory_by_host(kind)

    def close(self) -> None:
        pass


def test_a_resource_that_moved_meanwhile_is_rechecked_not_overwritten(rack: Fleet) -> None:
    registry = load_registry()
    rack.sim.run("node3", "vm_maker --stop g9")

    def someone_else_fixes_it() -> None:
        rack.journal.append(
            "vm/g9",
            [NewEvent("state.reconciled", {"from": "ACTIVE", "to": "STOPPED", "finding": {}})],
        )

    backend = MovingBackend(rack.sim, someone_else_fixes_it)
    rec = Reconciler(rack.journal, registry, backend, pattern="vm/g9", fix=frozenset({"unsynced"}))
    report = rec.run_pass()
    assert backend.calls == 1  # the backend is read once; the journal again
    assert report.findings == [] and report.in_sync == 1
    assert types(rack, "vm/g9").count("state.reconciled") == 1
    assert "drift.detected" not in types(rack, "vm/g9")


def test_a_fix_that_loses_the_race_leaves_the_finding_and_rechecks(rack: Fleet) -> None:
    registry = load_registry()
    rack.sim.run("node3", "vm_maker --stop g9")

    def an_observation_arrives() -> None:
        rack.journal.append(
            "vm/g9", [NewEvent("backend.observed", {"status": "stopped", "event_time": "x"})]
        )

    backend = MovingBackend(rack.sim, an_observation_arrives)
    rec = Reconciler(rack.journal, registry, backend, pattern="vm", fix=frozenset({"unsynced"}))
    report = rec.run_pass()
    [f] = report.findings
    assert f.fixed  # re-checked against the new version, then fixed once
    assert types(rack, "vm/g9")[-3:] == ["backend.observed", "drift.detected", "state.reconciled"]


# ---------------------------------------------------------------------------- commands
class CommandOnly:
    """A backend that can only run commands (like ssh): the sim's fake tools behind it."""

    name = "ssh"

    def __init__(self, sim: SimBackend) -> None:
        self.sim = sim

    def run(self, host: str, command: str, **kw: Any) -> Any:
        return self.sim.run(host, command, **kw)

    def close(self) -> None:
        pass


GUEST = """
machine guest "A guest observed with a command" {
    param host: str
    initial state defined
    state running
    state stopped
    state gone : final
    observe "vm_maker --status {name}" {
        absent if exit 1 contains "not found"
        "running" -> running
        "stopped" -> stopped
    }
    transition adopt : defined -> running
    transition drop : running, stopped -> gone
}
"""


def test_a_command_backend_runs_the_kinds_observe_command(fleet: Fleet) -> None:
    from fleetlog.engine.ops import create_resource
    from fleetlog.engine.runtime import Runner

    exascale_rack(fleet.sim.world, computes=2, guests={"node1": {"a": "asm", "b": "asm"}})
    registry = compile_kinds(GUEST)
    j = fleet.journal
    runner = Runner(j, registry, fleet.sim)
    for name in ("a", "b", "c"):
        create_resource(j, registry, f"guest/{name}", {"host": "node1" if name != "c" else "node2"})
        assert runner.fire(f"guest/{name}", "adopt").ok
    fleet.sim.run("node1", "vm_maker --stop b")
    fleet.sim.world.inject(Fault(mode="unreachable", host="node2"))

    rec = Reconciler(j, registry, CommandOnly(fleet.sim), fix=frozenset({"unsynced"}))
    report = rec.run_pass()
    assert report.in_sync == 1  # a
    [f] = [x for x in report.findings if x.resource == "guest/b"]
    assert (f.resource, f.cls, f.fixed) == ("guest/b", "unsynced", True)
    assert f.evidence["command"] == "vm_maker --status b"
    assert f.evidence["raw_sha256"] == hashlib.sha256(b"stopped\n").hexdigest()
    [c] = [x for x in report.findings if x.resource == "guest/c"]
    assert c.cls == "unknown" and "unreachable" in (c.unfixable or "") and not c.fixed
    assert any("orphans not checked" in n for n in report.notes)

    fleet.sim.run("node1", "vm_maker --delete a")  # exits 1: "not found"
    report = Reconciler(j, registry, CommandOnly(fleet.sim), pattern="guest/a").run_pass()
    assert [(f.resource, f.cls, f.fix_to) for f in report.findings] == [
        ("guest/a", "stale", "gone")
    ]
    assert "declared absent outcome" in report.findings[0].evidence["absent"]


def test_a_failing_observe_command_is_unknown_not_absent(fleet: Fleet) -> None:
    """Any exit but the declared one proves nothing: vm_maker missing (127) or a
    kind that declares no absence at all."""
    from fleetlog.engine.ops import create_resource
    from fleetlog.engine.runtime import Runner

    exascale_rack(fleet.sim.world, computes=1, guests={"node1": {"a": "asm"}})
    registry = compile_kinds(GUEST.replace("vm_maker --status", "vm_makr --status"))
    runner = Runner(fleet.journal, registry, fleet.sim)
    create_resource(fleet.journal, registry, "guest/a", {"host": "node1"})
    assert runner.fire("guest/a", "adopt").ok
    report = Reconciler(
        fleet.journal, registry, CommandOnly(fleet.sim), fix=parse_fix(["all", "stale"])
    ).run_pass()
    [f] = report.findings
    assert (f.cls, f.fixed) == ("unknown", False)
    assert "vm_makr --status a" in (f.unfixable or "")
    assert replay_all(fleet.journal, registry)["guest/a"].state == "running"

    undeclared = compile_kinds(GUEST.replace('absent if exit 1 contains "not found"', ""))
    fleet.sim.run("node1", "vm_maker --delete a")
    report = Reconciler(
        fleet.journal, undeclared, CommandOnly(fleet.sim), fix=parse_fix(["stale"])
    ).run_pass()
    [f] = report.findings
    assert f.cls == "unknown" and "declares no 'absent if'" in (f.unfixable or "")
    assert replay_all(fleet.journal, undeclared)["guest/a"].state == "running"


# ---------------------------------------------------------------------------- periodic
def test_periodic_passes_are_bounded_and_rotate(rack: Fleet) -> None:
    set_guest(rack, "node2", "ghost1", "running")
    res = rack.cli("reconcile", "vm", "--every", "0s", "--passes", "3", "--limit", "2", "--json")
    passes = [json.loads(line) for line in res.out.splitlines()]
    assert [p["pass"] for p in passes] == [1, 2, 3]
    assert all(p["checked"] <= 2 for p in passes)
    seen = {rid for p in passes for rid in p["resources"]}
    assert seen == {"vm/exa1_vm1", "vm/g9", "vm/ghost1"}
    assert res.code == (3 if passes[-1]["drift_remaining"] else 0)
    # The orphan was recorded once however many passes saw it.
    assert types(rack, "vm/ghost1") == ["drift.detected"]


def test_bad_durations_are_usage_errors(rack: Fleet) -> None:
    res = rack.cli("reconcile", "--every", "soon")
    assert res.code == 2 and "--every 'soon'" in res.err
    assert rack.cli("reconcile", "--passes", "2").code == 2


def _first_line(proc: subprocess.Popen[str]) -> str:
    """The child's first line of output; a child that never prints fails the test
    instead of hanging it (the bound is a safety net, not a timing assertion)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 120)
    if not ready:
        proc.kill()
        proc.wait()
        pytest.fail("reconcile --every printed nothing")
    return proc.stdout.readline()


def _finish(proc: subprocess.Popen[str], err_path: Path) -> tuple[str, str]:
    """The rest of stdout, through the buffered reader ``readline`` used (communicate
    would bypass it and lose what it already buffered), and stderr from its file."""
    assert proc.stdout is not None
    with proc.stdout:
        out = proc.stdout.read()
    proc.wait(timeout=120)
    return out, err_path.read_text()


def _spawn(fleet: Fleet, *args: str) -> tuple[subprocess.Popen[str], Path]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(PROJECT_ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("FLEETLOG_TEST_CRASH_AFTER_EVENTS", None)
    err_path = fleet.root / "reconcile.err"
    # stderr to a file: a pipe nobody reads could fill and block the child.
    with err_path.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "--journal", fleet.journal_path, *args],
            env=env,
            cwd=fleet.root,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    return proc, err_path


@pytest.fixture
def drifting(rack: Fleet) -> Iterator[Fleet]:
    rack.sim.run("node3", "vm_maker --stop g9")
    for i in range(5):
        set_guest(rack, "node2", f"ghost{i}", "running")
    yield rack


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_periodic_mode_stops_cleanly_on_a_signal(drifting: Fleet, sig: int) -> None:
    proc, err_path = _spawn(
        drifting, "reconcile", "--every", "3600s", "--json", "--fix", "unsynced"
    )
    first = json.loads(_first_line(proc))  # pass 1 is done; now it waits
    assert first["pass"] == 1
    proc.send_signal(sig)
    out, err = _finish(proc, err_path)
    assert proc.returncode == cli_reconcile.CLEAN_STOP == 0, err
    assert "stopped by signal after 1 pass" in err
    assert out == ""  # no second pass began
    assert drifting.cli("verify").code == 0
    # Every finding is whole: each drift.detected has its evidence, each fix its finding.
    for ev in drifting.events():
        if ev.type == "drift.detected":
            assert ev.payload["evidence"]["raw_sha256"]
        if ev.type == "state.reconciled":
            assert ev.causation_id and ev.payload["finding"]["id"] == ev.causation_id


def test_a_signal_mid_pass_abandons_the_rest_of_the_pass(drifting: Fleet) -> None:
    """Passes back to back (--every 0s): the signal lands wherever it lands — between
    passes or inside one — and the journal is whole either way."""
    proc, err_path = _spawn(drifting, "reconcile", "--every", "0s", "--json")
    _first_line(proc)
    proc.send_signal(signal.SIGTERM)
    out, err = _finish(proc, err_path)
    assert proc.returncode == 0, err
    for line in out.splitlines():
        json.loads(line)  # every pass printed was printed whole
    assert drifting.cli("verify").code == 0
    # Deduplicated: however many passes ran, each finding was journaled once.
    assert types(drifting, "vm/g9").count("drift.detected") == 1
