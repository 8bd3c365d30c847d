"""The Redfish step plugin against a real Redfish service (sushy-tools' emulator, fake
driver, 60 systems, basic auth) and against the simulated BMC: power, one-time boot,
the diskless boot fan-out, the HA pair's fencing, failures that change nothing, and
power state as reconcile's observe source."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import Fault, SimBackend
from fleetlog.engine.model import Scope, load_registry
from fleetlog.engine.runtime import PluginContext, Runner
from fleetlog.journal import open_journal
from fleetlog.machines.sim.bmc import seed_bmc
from fleetlog.machines.sim.tools.diskless import diskless_site
from fleetlog.machines.sim.tools.xcat import ha_site
from fleetlog.machines.steps import redfish
from tests.lab.redfish import PASSWORD, USER, Emulator, SilentBMC
from tests.machines.twin import Twin, twin_fixture  # noqa: F401

pytest_plugins = ["tests.lab.fixtures"]

IMAGE = "diskless_image/compute_img-2020-01-14"
TAG = "2020-01-14"
VIP = "10.0.0.100"
CHAP = {
    "DISCOVERY_USER": "disco_user",
    "DISCOVERY_PASSWORD": "disco-Pa55-7f3a",
    "DISCOVERY_USER_IN": "disco_mutual_user",
    "DISCOVERY_PASSWORD_IN": "disco-mutual-Pa55-91c2",
    "NODE_USER": "node_user",
    "NODE_PASSWORD": "node-Pa55-0b7e",
    "NODE_USER_IN": "node_mutual_user",
    "NODE_PASSWORD_IN": "node-mutual-Pa55-d4e8",
}
BMC_SECRETS = {"BMC_USER": USER, "BMC_PASSWORD": PASSWORD}
FLEETLOG = str(Path(sys.executable).parent / "fleetlog")


def secret_env() -> dict[str, str]:
    return {f"FLEETLOG_SECRET_{k}": v for k, v in {**CHAP, **BMC_SECRETS}.items()}


@pytest.fixture
def secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in secret_env().items():
        monkeypatch.setenv(name, value)


def exported(t: Twin) -> str:
    import io

    buf = io.StringIO()
    t.journal.export(buf)
    return buf.getvalue()


def build_and_export(t: Twin) -> None:
    t.add(IMAGE, tag=TAG)
    assert t.fire(IMAGE, "build").status == "completed"
    assert t.fire(IMAGE, "export").status == "completed"


def ctx_for(t: Twin, rid: str, timeout: float | None) -> PluginContext:
    rec = t.runner.load(rid)
    kind = t.registry.get(rec.kind)
    scope = Scope(rec, rec.params, tuple(s.name for s in kind.spec.secrets), lambda _r: None)
    return PluginContext(rec, dict(rec.params), t.sim, rec.name, scope, timeout)


# ------------------------------------------------------------------ the emulator
def test_diskless_fan_out_power_cycles_and_pxe_boots_50_emulated_nodes(
    redfish_emulator: Emulator, tmp_path: Path
) -> None:
    emu = redfish_emulator
    names = [f"node{i}" for i in range(1, 51)]
    for name in names:  # a known start: on, booting from disk
        emu.request(
            "PATCH",
            f"/redfish/v1/Systems/{emu.systems[name]}",
            {"Boot": {"BootSourceOverrideTarget": "Hdd"}},
        )
    journal_path, world = tmp_path / "j.db", tmp_path / "world.db"
    env = {**os.environ, **secret_env(), "FLEETLOG_JOURNAL": str(journal_path)}
    env["FLEETLOG_SIM_WORLD"] = str(world)
    # the image is built and exported on the simulated datacenter; the nodes' BMCs are
    # the emulator's systems
    os.environ.update(secret_env())
    try:
        registry = load_registry()
        journal = open_journal(str(journal_path))
        sim = SimBackend(str(world), seed=3)
        diskless_site(sim.world, chap=_chap())
        runner = Runner(journal, registry, sim, lock_wait=5.0, sleep=lambda s: None)
        t = Twin(tmp_path, registry, journal, sim, runner)
        build_and_export(t)
        for i, name in enumerate(names, 1):
            t.add(f"diskless_node/ocean{i}", image="compute_img-2020-01-14", bmc=emu.bmc(name))
        sim.close()
        journal.close()
    finally:
        for k in secret_env():
            os.environ.pop(k, None)
    fire = [FLEETLOG, "fire", "diskless_node/ocean[1-50]"]
    fire += ["boot", "--parallel", "10", "--batch", "10", "--rate", "5/s", "--json"]
    proc = subprocess.run(fire, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]

    for name in names:
        assert emu.power(name) == "On"
        assert emu.boot(name)[0] == "Pxe"
    journal = open_journal(str(journal_path))
    try:
        events = list(journal.read_all())
        text = "\n".join(json.dumps(e.payload) for e in events)
        assert PASSWORD not in text and "node-Pa55-0b7e" not in text
        for i in (1, 17, 50):
            rid = f"diskless_node/ocean{i}"
            steps = [
                (e.type, e.payload.get("step"), e.payload.get("output", ""))
                for e in events
                if e.stream == rid and e.type.startswith("step.")
            ]
            done = [s for ty, s, _ in steps if ty == "step.succeeded"]
            assert done[:3] == ["pxe", "power", "trap"] and done[-1] == "up"
            (power_out,) = [o for ty, s, o in steps if ty == "step.succeeded" and s == "power"]
            assert "ForceRestart (power was On, now On, confirmed)" in power_out
            (pxe_out,) = [o for ty, s, o in steps if ty == "step.succeeded" and s == "pxe"]
            assert "next boot from Pxe (asked Once" in pxe_out
            completed = [e for e in events if e.stream == rid and e.type == "transition.completed"]
            assert completed[-1].payload["to"] == "booted"
    finally:
        journal.close()

    # ocean7 is powered off through the emulator's own API: reconcile reports it
    emu.set_power("node7", "ForceOff")
    emu.wait_power("node7", "Off")
    rec = [FLEETLOG, "reconcile", "diskless_node/*", "--json"]
    proc = subprocess.run(rec, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 3, proc.stderr[-2000:]
    report = json.loads(proc.stdout)
    drifted = [f for f in report["findings"] if f["resource"] == "diskless_node/ocean7"]
    assert [(f["class"], f["observed"]) for f in drifted] == [("unsynced", "Off")], report
    assert [f["resource"] for f in report["findings"]] == ["diskless_node/ocean7"]


def _chap() -> dict[str, dict[str, str]]:
    return {
        "discovery.sendtargets": {"username": "disco_user", "password": "disco-Pa55-7f3a"},
        "node.session": {"username": "node_user", "password": "node-Pa55-0b7e"},
    }


def test_ha_failover_fences_the_old_primary_through_its_bmc_first(
    redfish_emulator: Emulator, twin: Twin, secrets: None
) -> None:
    emu = redfish_emulator
    for name in ("node51", "node52"):
        if emu.power(name) != "On":
            emu.set_power(name, "On")
            emu.wait_power(name, "On")
    ha_site(twin.sim.world)
    twin.add("ha_mn/mn1", vip=VIP, vip_hostname="xcatmn", bmc=emu.bmc("node51"))
    twin.add("ha_mn/mn2", vip=VIP, vip_hostname="xcatmn", bmc=emu.bmc("node52"))
    twin.add("ha_pair/pair", primary="mn1", secondary="mn2")
    assert twin.fire("ha_pair/pair", "setup").state == "primary_active"

    out = twin.fire("ha_pair/pair", "failover")
    assert (out.status, out.state) == ("completed", "secondary_active"), out
    assert (emu.power("node51"), emu.power("node52")) == ("Off", "On")
    assert (twin.state("ha_mn/mn1"), twin.state("ha_mn/mn2")) == ("off", "active")
    # the journal's order: mn1 deactivated, then fenced (the BMC confirmed Off), and
    # only then did mn2's activation start (its VIP step)
    events = list(twin.journal.read_all())

    def seq_of(stream: str, type_: str, pred: Any = lambda p: True) -> int:
        return next(
            e.seq for e in events if e.stream == stream and e.type == type_ and pred(e.payload)
        )

    fence_done = seq_of("ha_mn/mn1", "transition.completed", lambda p: p.get("trigger") == "fence")
    deact_done = seq_of(
        "ha_mn/mn1", "transition.completed", lambda p: p.get("trigger") == "deactivate"
    )
    vip_start = max(
        e.seq
        for e in events
        if e.stream == "ha_mn/mn2" and e.type == "step.started" and e.payload["step"] == "vip"
    )
    assert deact_done < fence_done < vip_start
    (fenced,) = [
        e
        for e in events
        if e.stream == "ha_mn/mn1"
        and e.type == "step.succeeded"
        and e.payload["step"] == "power_off"
    ]
    assert "ForceOff (power was On, now Off, confirmed)" in fenced.payload["output"]
    assert PASSWORD not in exported(twin)

    # failback powers mn1 on again (boot from disk) before activating it
    out = twin.fire("ha_pair/pair", "failback")
    assert (out.status, out.state) == ("completed", "primary_active"), out
    assert (emu.power("node51"), emu.power("node52")) == ("On", "Off")
    assert emu.boot("node51")[0] == "Hdd"


def test_wrong_bmc_password_fails_the_step_and_changes_nothing(
    redfish_emulator: Emulator, twin: Twin, secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = redfish_emulator
    if emu.power("node53") != "On":
        emu.set_power("node53", "On")
        emu.wait_power("node53", "On")
    before = emu.system("node53")
    monkeypatch.setenv("FLEETLOG_SECRET_BMC_PASSWORD", "wrong-Pa55-9999")
    twin.add("diskless_node/ocean53", image="compute_img-2020-01-14", bmc=emu.bmc("node53"))
    out = twin.fire("diskless_node/ocean53", "power_off")
    assert (out.status, out.state, out.step) == ("failed", "trapped", "power_off")
    assert out.error is not None and "\n" not in out.error
    assert out.error == f"BMC {emu.bmc('node53')} refused the credentials: HTTP 401"
    after = emu.system("node53")
    assert after["PowerState"] == before["PowerState"] == "On"
    assert after["Boot"] == before["Boot"]
    assert twin.sleeps == [5.0, 5.0]  # retry 2 every 5s
    assert "wrong-Pa55-9999" not in exported(twin)


def test_a_bmc_that_reports_an_error_fails_the_step_in_one_line(
    redfish_emulator: Emulator, twin: Twin, secrets: None
) -> None:
    missing = f"{redfish_emulator.url}/redfish/v1/Systems/no-such-system"
    twin.add("diskless_node/ocean54", image="compute_img-2020-01-14", bmc=missing)
    out = twin.fire("diskless_node/ocean54", "power_off")
    assert (out.status, out.state, out.step) == ("failed", "trapped", "power_off")
    assert out.error is not None and "\n" not in out.error
    assert f"BMC {missing} answered HTTP 404" in out.error


def test_a_bmc_that_never_answers_times_out_within_the_step_timeout(
    twin: Twin, secrets: None
) -> None:
    silent = SilentBMC()
    try:
        twin.add("diskless_node/ocean55", image="compute_img-2020-01-14", bmc=silent.url)
        ctx = ctx_for(twin, "diskless_node/ocean55", timeout=2.0)
        with pytest.raises(Exception) as caught:
            redfish.power(ctx, action="off")
        assert str(caught.value) == f"BMC {silent.url} did not answer within 2s"
    finally:
        silent.close()


def test_reconcile_finds_a_node_powered_off_behind_fleetlogs_back(
    redfish_emulator: Emulator, twin: Twin, secrets: None
) -> None:
    from fleetlog.engine.ops import Reconciler

    emu = redfish_emulator
    for name in ("node56", "node57"):
        if emu.power(name) != "On":
            emu.set_power(name, "On")
            emu.wait_power(name, "On")
    diskless_site(twin.sim.world, chap=_chap())
    build_and_export(twin)
    for i, name in ((56, "node56"), (57, "node57")):
        twin.add(f"diskless_node/ocean{i}", image="compute_img-2020-01-14", bmc=emu.bmc(name))
        assert twin.fire(f"diskless_node/ocean{i}", "boot").state == "booted"
    # someone powers ocean56 off through the BMC's own API, not through fleetlog
    emu.set_power("node56", "ForceOff")
    emu.wait_power("node56", "Off")

    report = Reconciler(twin.journal, twin.registry, twin.sim, pattern="diskless_node/*").run_pass()
    found = {(f.resource, f.cls, f.observed, f.mapped) for f in report.findings}
    assert ("diskless_node/ocean56", "unsynced", "Off", "off") in found
    assert not any(f.resource == "diskless_node/ocean57" for f in report.findings)
    assert twin.state("diskless_node/ocean56") == "booted"  # detect-only


# ------------------------------------------------------------------ the sim BMC
def test_sim_bmc_boots_a_diskless_node_from_the_network(twin: Twin, secrets: None) -> None:
    diskless_site(twin.sim.world, chap=_chap())
    build_and_export(twin)
    seed_bmc(twin.sim.world, "ocean3", power="Off", users={USER: PASSWORD})
    twin.add("diskless_node/ocean3", image="compute_img-2020-01-14")
    out = twin.fire("diskless_node/ocean3", "boot")
    assert (out.status, out.state) == ("completed", "booted"), out
    bmc = twin.host("bmc:ocean3")
    assert bmc["power"] == "On"
    assert (bmc["boot_target"], bmc["boot_enabled"]) == ("None", "Disabled")  # used once
    assert twin.host("ocean3")["booted_from"] == "Pxe"
    assert twin.effects("bmc:ocean3") == ["boot Pxe Once", "power On"]
    assert PASSWORD not in json.dumps(twin.sim.world.snapshot())


def test_sim_bmc_refuses_a_wrong_password_and_changes_nothing(
    twin: Twin, secrets: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed_bmc(twin.sim.world, "ocean4", users={USER: PASSWORD})
    monkeypatch.setenv("FLEETLOG_SECRET_BMC_PASSWORD", "wrong-Pa55-1234")
    twin.add("diskless_node/ocean4", image="compute_img-2020-01-14")
    out = twin.fire("diskless_node/ocean4", "power_off")
    assert (out.status, out.state) == ("failed", "trapped")
    assert out.error is not None and "BMC bmc:ocean4: HTTP 401" in out.error
    assert twin.host("bmc:ocean4")["power"] == "On"
    assert twin.effects("bmc:ocean4") == []


def test_sim_bmc_that_hangs_fails_the_step(twin: Twin, secrets: None) -> None:
    twin.add("diskless_node/ocean5", image="compute_img-2020-01-14")
    twin.sim.world.inject(Fault("bmc", mode="hang", host="bmc:ocean5", ms=60_000))
    ctx = ctx_for(twin, "diskless_node/ocean5", timeout=0.5)
    with pytest.raises(Exception) as caught:
        redfish.power(ctx, action="off")
    assert str(caught.value).startswith("BMC bmc:ocean5: ")
    assert "timed out" in str(caught.value)


def test_sim_reconcile_reports_a_node_its_bmc_says_is_off(twin: Twin, secrets: None) -> None:
    from fleetlog.engine.ops import Reconciler

    diskless_site(twin.sim.world, chap=_chap())
    build_and_export(twin)
    twin.add("diskless_node/ocean6", image="compute_img-2020-01-14")
    assert twin.fire("diskless_node/ocean6", "boot").state == "booted"
    twin.sim.run("bmc:ocean6", "bmc power ForceOff")  # behind fleetlog's back
    report = Reconciler(twin.journal, twin.registry, twin.sim, pattern="diskless_node/*").run_pass()
    (finding,) = report.findings
    assert (finding.cls, finding.observed, finding.mapped) == ("unsynced", "Off", "off")
