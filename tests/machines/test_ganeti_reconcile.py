"""Synnefo's reconciliation rules, one scenario each, on the simulated Ganeti cluster.

Every scenario runs twice (``site``): once over the SSH lab — real sshd, the shipped
``ganeti_vm`` kind's own ``gnt-instance list`` / ``gnt-job list`` on the master, every
action a real ``gnt-instance … --submit`` over ssh — and once through RAPI-shaped JSON:
instances from the sim's RAPI over loopback HTTP, jobs from a file saved from
``/2/jobs?bulk=1`` (``--listing`` / ``--jobs``), actions on the simulated datacenter.
The rules are those of snf-cyclades-app/synnefo/logic/reconciliation.py (stale with the
pending action, orphans, unsynced operstate, build status against the job, flavor /
NICs / disks, pending tasks).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import Fault, SimBackend, World
from fleetlog.engine.model import KindRegistry, load_registry, replay_all
from fleetlog.engine.model.records import Resource
from fleetlog.engine.ops import create_resource
from fleetlog.engine.ops.observe import Override
from fleetlog.engine.ops.reconcile import Finding, PassReport, Reconciler, parse_fix
from fleetlog.engine.runtime import Runner
from fleetlog.journal import open_journal
from fleetlog.journal.base import Journal
from fleetlog.machines.sim import scenarios as sc
from fleetlog.machines.sim.rapi import RapiServer
from fleetlog.machines.sim.tools.gnt_job import rapi_get
from tests.lab.lab import Lab
from tests.machines.conftest import Lab as MachinesLab

pytest_plugins = ["tests.lab.fixtures"]

MASTER = "node1"  # a lab host name, so the same world serves both sites
CLUSTER = "ganeti_cluster/c1"
GROUPS = ("flavor", "disks", "nics")


@dataclass
class Site:
    """A journal, the shipped kinds, a Ganeti cluster on ``MASTER`` and the way the
    reconciler reads it."""

    name: str
    world_path: str
    journal: Journal
    registry: KindRegistry
    backend: Any
    runner: Runner
    tmp: Path
    rapi: RapiServer | None = None
    spawn: dict[str, Any] = field(default_factory=dict)

    @property
    def world(self) -> World:
        return World(self.world_path)

    def inject(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        world = self.world
        try:
            return fn(world, MASTER, *args, **kwargs)
        finally:
            world.close()

    def add(self, name: str, **params: Any) -> str:
        rid = f"ganeti_vm/{name}"
        create_resource(self.journal, self.registry, rid, {"cluster": CLUSTER, **params})
        return rid

    def fire(self, rid: str, trigger: str, **params: Any) -> bool:
        return self.runner.fire(rid, trigger, params).ok

    def vm(self, name: str, **params: Any) -> str:
        """An instance made through fleetlog: created and awaited, ACTIVE."""
        rid = self.add(name, **params)
        assert self.fire(rid, "create") and self.fire(rid, "await")
        assert self.record(rid).state == "ACTIVE"
        return rid

    def record(self, rid: str) -> Resource:
        return replay_all(self.journal, self.registry)[rid]

    def overrides(self) -> dict[str, Any]:
        if self.rapi is None:
            return {}
        jobs_file = self.tmp / "jobs.json"
        world = self.world
        try:
            g = world.host_state(MASTER)["ganeti"]
        finally:
            world.close()
        jobs_file.write_text(json.dumps(rapi_get(g, "/2/jobs?bulk=1")[1]))
        return {
            "listings": {
                "ganeti_vm": Override(
                    "ganeti_vm", "ganeti_rapi_instances", f"{self.rapi.url}/2/instances?bulk=1"
                )
            },
            "jobs": {"ganeti_vm": Override("ganeti_vm", "ganeti_rapi_jobs", str(jobs_file))},
        }

    def reconcile(self, *fix: str, now: datetime | None = None, share: float = 1.0) -> PassReport:
        return Reconciler(
            self.journal,
            self.registry,
            self.backend,
            pattern="ganeti_vm/*",
            fix=parse_fix(fix, GROUPS),
            now=now or datetime.now(UTC) + timedelta(minutes=10),
            max_fix_share=share,
            intake=self.runner,
            **self.overrides(),
        ).run_pass()


def fixed(report: PassReport) -> list[str]:
    return [f.resource for f in report.findings if f.fixed]


def findings(report: PassReport) -> dict[tuple[str, str], Finding]:
    return {(f.resource.split("/", 1)[1], f.cls): f for f in report.findings}


@pytest.fixture(params=["ssh", "rapi"])
def site(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Site]:
    journal = open_journal(str(tmp_path / "j.db"))
    registry = load_registry()
    if request.param == "ssh":
        lab: Lab = request.getfixturevalue("ssh_lab")
        backend = request.getfixturevalue("make_ssh")()
        world_path = lab.world_path
        spawn = {
            "ssh_config": str(lab.ssh_config),
            "known_hosts": str(lab.known_hosts),
        }
        rapi = None
    else:
        world_path = str(tmp_path / "world.db")
        backend = SimBackend(world_path)
        spawn = {"world": world_path}
        rapi = RapiServer(world_path, MASTER).__enter__()
    world = World(world_path)
    sc.ganeti_cluster(world, MASTER, nodes=(MASTER, "node2"))
    # Not fleetlog's (no snf- prefix): ignored, and the listing is never empty (an empty
    # listing proves nothing, so every test would read "unknown").
    sc.ganeti_instance(world, MASTER, "ns1")
    world.close()
    runner = Runner(journal, registry, backend, sleep=lambda s: None)
    create_resource(journal, registry, CLUSTER, {"host": MASTER})
    s = Site(request.param, world_path, journal, registry, backend, runner, tmp_path, rapi, spawn)
    assert s.fire(CLUSTER, "verify")
    try:
        yield s
    finally:
        if rapi is not None:
            rapi.__exit__(None, None, None)
            backend.close()
        journal.close()


# ----------------------------------------------------------------------------- stale
def test_stale_an_instance_removed_behind_our_back_is_deleted_only_when_named(
    site: Site,
) -> None:
    rid = site.vm("snf-1")
    site.vm("snf-2")
    site.inject(sc.ganeti_drift, "snf-1", removed=True)
    report = site.reconcile()
    stale = findings(report)[("snf-1", "stale")]
    assert (stale.journal_state, stale.fix_to) == ("ACTIVE", "DELETED")
    assert stale.evidence["absent"] and set(findings(report)) == {("snf-1", "stale")}
    assert fixed(site.reconcile("all")) == []  # a final fix needs its class named
    assert site.record(rid).state == "ACTIVE"
    assert fixed(site.reconcile("stale")) == [rid]
    assert site.record(rid).state == "DELETED"
    assert site.reconcile().findings == []


@pytest.mark.parametrize(
    ("action", "stale"),
    [(None, False), ("start", False), ("destroy", True)],
)
def test_stale_a_failed_build_is_stale_only_once_the_user_asked_to_destroy_it(
    site: Site, action: str | None, stale: bool
) -> None:
    """Synnefo: a server in ERROR missing from Ganeti is stale only if its action is
    DESTROY (the build failed: there never was an instance)."""
    site.inject(sc.ganeti_fail_next, "OP_INSTANCE_CREATE")
    rid = site.add("snf-1")
    assert site.fire(rid, "create")  # submitted; the job fails in Ganeti
    assert not site.fire(rid, "await")  # gnt-job watch reports the failure
    assert site.record(rid).state == "ERROR"
    if action is not None:
        assert not site.fire(rid, action)  # its job fails too: no instance
    report = site.reconcile()
    if stale:
        f = findings(report)[("snf-1", "stale")]
        assert (f.fix_to, f.evidence["last_action"]) == ("DELETED", "destroy")
        site.reconcile("stale")
        assert site.record(rid).state == "DELETED"
    else:
        assert report.findings == [] and report.in_sync == 1


# ----------------------------------------------------------------------------- orphans
def test_orphan_adopt_takes_the_backends_attributes_and_ignores_foreign_instances(
    site: Site,
) -> None:
    site.vm("snf-1")
    site.inject(
        sc.ganeti_instance,
        "snf-77",
        admin="down",
        running=False,
        vcpus=2,
        maxmem=2048,
        disks=(20480,),
        nics=({"network": "private", "mac": "aa:bb:cc:00:00:77", "ip": None},),
    )
    site.inject(sc.ganeti_instance, "mail-server")  # not ours: no snf- prefix
    report = site.reconcile()
    orphan = findings(report)[("snf-77", "orphan")]
    assert set(findings(report)) == {("snf-77", "orphan")}
    assert (orphan.observed, orphan.fix_to) == ("ADMIN_down", "STOPPED")
    site.reconcile("all")
    adopted = site.record("ganeti_vm/snf-77")
    assert adopted.state == "STOPPED"
    assert {k: adopted.params[k] for k in ("cluster", "vcpus", "ram", "disks", "macs")} == {
        "cluster": CLUSTER,
        "vcpus": "2",
        "ram": "2048",
        "disks": "20480",
        "macs": "aa:bb:cc:00:00:77",
    }
    assert (adopted.params["networks"], adopted.params["ips"]) == ("private", "")
    assert "ganeti_vm/mail-server" not in replay_all(site.journal, site.registry)
    assert site.reconcile().findings == []


def test_orphan_delete_removes_it_in_ganeti_through_the_kinds_transition(site: Site) -> None:
    site.inject(sc.ganeti_instance, "snf-66")
    site.reconcile("orphan_delete")
    assert site.record("ganeti_vm/snf-66").state == "DELETED"
    site.inject(sc.ganeti_instance, "snf-67")
    site.reconcile("all")  # adopts, and never deletes in the backend
    assert site.record("ganeti_vm/snf-67").state == "ACTIVE"
    world = site.world
    try:
        assert set(world.host_state(MASTER)["ganeti"]["instances"]) == {"ns1", "snf-67"}
    finally:
        world.close()


# ----------------------------------------------------------------------------- operstate
def test_unsynced_operstate_both_ways(site: Site) -> None:
    up = site.vm("snf-1")
    down = site.vm("snf-2")
    assert site.fire(down, "stop")
    site.inject(sc.ganeti_drift, "snf-1", admin="down", running=False)  # stopped by hand
    site.inject(sc.ganeti_drift, "snf-2", admin="up", running=True)  # started by hand
    report = findings(site.reconcile())
    assert (report[("snf-1", "unsynced")].fix_to, report[("snf-2", "unsynced")].fix_to) == (
        "STOPPED",
        "ACTIVE",
    )
    site.reconcile("unsynced")
    assert (site.record(up).state, site.record(down).state) == ("STOPPED", "ACTIVE")


def test_a_node_that_does_not_answer_is_unknown_never_fixed(site: Site) -> None:
    rid = site.vm("snf-1", node="node2")
    site.inject(sc.ganeti_node, "node2", "down")
    report = site.reconcile("all", "stale")
    [f] = report.findings
    assert (f.cls, f.observed, fixed(report)) == ("unknown", None, [])
    assert "ERROR_nodedown" in str(f.unfixable)
    assert site.record(rid).state == "ACTIVE"


# ----------------------------------------------------------------------------- builds
def test_build_pending_job_is_left_alone(site: Site) -> None:
    site.inject(sc.ganeti_hold)
    rid = site.add("snf-1")
    assert site.fire(rid, "create")
    assert site.reconcile("all").findings == []
    assert site.record(rid).state == "BUILD"


def test_build_failed_job_is_a_build_error(site: Site) -> None:
    site.inject(sc.ganeti_fail_next, "OP_INSTANCE_CREATE")
    rid = site.add("snf-1")
    assert site.fire(rid, "create")
    [f] = site.reconcile().findings
    assert (f.cls, f.fix_to, f.evidence["build"]["status"]) == ("build_error", "ERROR", "failed")
    site.reconcile("build_error")
    assert site.record(rid).state == "ERROR"


@pytest.mark.parametrize(("after", "error"), [(30, False), (600, True)])
def test_build_lost_job_is_an_error_only_after_the_grace_period(
    site: Site, after: int, error: bool
) -> None:
    site.inject(sc.ganeti_hold)
    rid = site.add("snf-1")
    assert site.fire(rid, "create")
    site.inject(sc.ganeti_lose_job, site.record(rid).params["job"])
    now = datetime.now(UTC) + timedelta(seconds=after)
    report = site.reconcile(now=now)
    if error:
        [f] = report.findings
        assert (f.cls, f.evidence["build"]["status"]) == ("build_error", "lost")
    else:
        assert report.findings == []  # within grace: the job may not be listed yet


def test_build_finished_but_never_processed_is_unsynced(site: Site) -> None:
    rid = site.add("snf-1")
    assert site.fire(rid, "create")  # the job succeeded; nobody moved the server on
    early = datetime.now(UTC) - timedelta(minutes=1)
    assert site.reconcile(now=early).findings == []  # the job ended after "now"
    report = findings(site.reconcile())
    assert report[("snf-1", "unsynced")].fix_to == "ACTIVE"
    assert report[("snf-1", "unsynced")].evidence["build"]["status"] == "finished"
    assert ("snf-1", "unsynced_nics") in report  # the NIC Ganeti made is not recorded
    site.reconcile("all")
    rec = site.record(rid)
    assert rec.state == "ACTIVE" and rec.params["macs"].startswith("aa:00:00:")
    assert site.reconcile().findings == []


# ----------------------------------------------------------------------------- attributes
def test_unsynced_flavor_is_fixed_from_the_catalogue(site: Site) -> None:
    rid = site.vm("snf-1")
    site.inject(sc.ganeti_drift, "snf-1", vcpus=4, maxmem=4096)
    f = findings(site.reconcile())[("snf-1", "unsynced_flavor")]
    assert f.evidence["attributes"]["vcpus"] == {
        "journal": "1",
        "backend": 4,
        "field": "be/vcpus",
    }
    site.reconcile("unsynced_flavor")
    assert {k: site.record(rid).params[k] for k in ("vcpus", "ram")} == {
        "vcpus": "4",
        "ram": "4096",
    }


def test_an_unknown_flavor_is_reported_and_never_fixed(site: Site) -> None:
    rid = site.vm("snf-1")
    site.inject(sc.ganeti_drift, "snf-1", vcpus=3)
    f = findings(site.reconcile("all"))[("snf-1", "unsynced_flavor")]
    assert f.unfixable is not None and "unknown flavor" in f.unfixable
    assert site.record(rid).params["vcpus"] == "1"


def test_unsynced_nics(site: Site) -> None:
    rid = site.vm("snf-1")
    nic = {"network": "private", "mac": "aa:bb:cc:dd:ee:01", "ip": "192.168.1.5"}
    site.inject(sc.ganeti_drift, "snf-1", nics=[nic, {**nic, "mac": "aa:bb:cc:dd:ee:02"}])
    f = findings(site.reconcile())[("snf-1", "unsynced_nics")]
    assert set(f.evidence["attributes"]) == {"macs", "ips", "networks"}
    site.reconcile("unsynced_nics")
    params = site.record(rid).params
    assert params["macs"] == "aa:bb:cc:dd:ee:01,aa:bb:cc:dd:ee:02"
    assert (params["ips"], params["networks"]) == ("192.168.1.5,192.168.1.5", "private,private")


def test_unsynced_disks(site: Site) -> None:
    rid = site.vm("snf-1")
    site.inject(sc.ganeti_drift, "snf-1", disks=[10240, 2048])
    f = findings(site.reconcile())[("snf-1", "unsynced_disks")]
    assert f.evidence["attributes"]["disks"]["backend"] == [10240, 2048]
    site.reconcile("unsynced_disks")
    assert site.record(rid).params["disks"] == "10240,2048"


def test_a_resize_records_the_new_flavor_so_nothing_drifts(site: Site) -> None:
    rid = site.vm("snf-1")
    assert site.fire(rid, "stop")
    assert site.fire(rid, "resize", to_vcpus="2", to_ram="2048")
    assert {k: site.record(rid).params[k] for k in ("vcpus", "ram")} == {
        "vcpus": "2",
        "ram": "2048",
    }
    assert site.reconcile().findings == []


# ----------------------------------------------------------------------------- tasks
SPAWN = """
import json, sys
from fleetlog.engine.model import load_registry
from fleetlog.engine.runtime import Runner
from fleetlog.journal import open_journal
args = json.loads(sys.argv[1])
if "world" in args:
    from fleetlog.engine.backends.sim import SimBackend
    backend = SimBackend(args["world"])
else:
    from fleetlog.engine.backends.ssh import SSHBackend
    backend = SSHBackend(ssh_config=args["ssh_config"], known_hosts=args["known_hosts"],
                         allow_agent=False, look_for_keys=False)
runner = Runner(open_journal(args["journal"]), load_registry(), backend, lease_ttl=1.0)
runner.fire(args["rid"], args["trigger"], {})
"""


def kill_during_watch(site: Site, rid: str, trigger: str, journal_path: str) -> None:
    """Run ``trigger`` in another process and SIGKILL it while it follows its job."""
    site.world.inject(Fault(mode="hang", tool="gnt-job", ms=120_000))
    args = {**site.spawn, "journal": journal_path, "rid": rid, "trigger": trigger}
    proc = subprocess.Popen([sys.executable, "-c", SPAWN, json.dumps(args)])
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            steps = [
                e.payload.get("step")
                for e in site.journal.read_stream(rid)
                if e.type == "step.started"
            ]
            if "job" in steps and site.record(rid).params["job"] != "1":
                break
            time.sleep(0.05)
        else:
            pytest.fail("the transition never reached its job step")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    site.world.clear_faults()
    time.sleep(1.2)  # its lease expires: nobody holds the task any more


@pytest.mark.parametrize("job_end", ["success", "lost"])
def test_a_pending_task_whose_job_ended_is_resumed(site: Site, job_end: str) -> None:
    rid = site.vm("snf-1")
    site.inject(sc.ganeti_hold)
    kill_during_watch(site, rid, "reboot", str(site.tmp / "j.db"))
    rec = site.record(rid)
    assert rec.in_progress is not None and rec.in_progress.trigger == "reboot"
    assert site.reconcile("all").findings == []  # its job is still queued: in progress
    if job_end == "success":
        site.inject(sc.ganeti_hold, False)
    else:
        site.inject(sc.ganeti_lose_job, rec.params["job"])
    [f] = site.reconcile().findings
    assert (f.cls, f.evidence["task"], f.evidence["job"]) == ("pending_task", "reboot", "2")
    site.reconcile("pending_task")
    after = site.record(rid)
    if job_end == "success":
        assert (after.state, after.in_progress) == ("ACTIVE", None)
    else:
        assert (after.state, after.in_progress) == ("ERROR", None)  # its job is gone


# ----------------------------------------------------------------------------- failures
def test_a_listing_that_fails_yields_only_unknown_and_no_fix(site: Site) -> None:
    for i in range(3):
        site.vm(f"snf-{i}")
    if site.rapi is not None:
        site.rapi.fail_with = 503
    else:
        site.world.inject(Fault(mode="fail_always", tool="gnt-instance"))
    report = site.reconcile("all", "stale")
    assert {f.cls for f in report.findings} == {"unknown"} and fixed(report) == []
    assert {r.state for r in replay_all(site.journal, site.registry).values()} == {
        "ready",
        "ACTIVE",
    }


# ----------------------------------------------------------------------------- the CLI
def test_the_cli_reads_rapi_json_from_a_url_and_a_file(
    lab: MachinesLab, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--listing``/``--jobs KIND=FORMAT:LOCATION``: the operator points reconcile at a
    cluster's RAPI (HTTP) and at a saved job list (a file)."""
    from fleetlog.engine.cli import main

    world = lab.sim.world
    sc.ganeti_cluster(world, "gnt1")
    sc.ganeti_instance(world, "gnt1", "ns1")
    lab.add(CLUSTER, host="gnt1")
    assert lab.fire(CLUSTER, "verify").ok
    lab.add("ganeti_vm/snf-1", cluster=CLUSTER)
    assert lab.fire("ganeti_vm/snf-1", "create").ok and lab.fire("ganeti_vm/snf-1", "await").ok
    sc.ganeti_drift(world, "gnt1", "snf-1", admin="down", running=False)
    jobs = lab.root / "jobs.json"
    jobs.write_text(json.dumps(rapi_get(world.host_state("gnt1")["ganeti"], "/2/jobs?bulk=1")[1]))
    journal = str(lab.root / "j.db")
    with RapiServer(str(lab.root / "j.db.sim"), "gnt1") as rapi:
        listing = f"ganeti_vm=ganeti_rapi_instances:{rapi.url}/2/instances?bulk=1"
        args = ["--journal", journal, "reconcile", "--listing", listing]
        args += ["--jobs", f"ganeti_vm=ganeti_rapi_jobs:{jobs}", "--json"]
        capsys.readouterr()
        code = main([*args, "--fix", "unsynced"])
        out = json.loads(capsys.readouterr().out)
        [f] = out["findings"]
        assert (code, f["class"], f["fixed"], f["evidence"]["source"]) == (
            0,
            "unsynced",
            True,
            "listing:ganeti_rapi_instances",
        )
        assert lab.state("ganeti_vm/snf-1") == "STOPPED"
        bad = main([*args[:4], f"ganeti_vm=ganeti_rapi_instances:{rapi.url}/2/nothing"])
        assert bad == 3  # the URL answers 404: unknown, reported (drift remains), no fix
    assert "unknown" in capsys.readouterr().out
    assert lab.state("ganeti_vm/snf-1") == "STOPPED"
