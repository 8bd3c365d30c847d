"""ha_mn and ha_pair on the simulated datacenter (xCAT's shared-data MN HA design):
setup, activate, deactivate and failover; services retried 3 times 3 s apart and judged
by probing, not exit codes; VIP and hostname cleaned up on failure; the VIP never
answers on both nodes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog.machines.sim.tools.xcat import ha_site
from tests.machines.twin import Twin, twin_fixture  # noqa: F401

VIP = "10.0.0.100"
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def pair(twin: Twin) -> Twin:
    ha_site(twin.sim.world)
    for mn in ("mn1", "mn2"):
        twin.add(f"ha_mn/{mn}", vip=VIP, vip_hostname="xcatmn")
    twin.add("ha_pair/pair", primary="mn1", secondary="mn2")
    return twin


def vip_holders(t: Twin) -> set[str]:
    return {
        h
        for h in ("mn1", "mn2", "intruder")
        for addrs in t.host(h).get("ifaces", {}).values()
        if any(a.startswith(VIP + "/") for a in addrs)
    }


def active(t: Twin, host: str) -> set[str]:
    return {u for u, s in t.host(host).get("units", {}).items() if s.get("active")}


def test_setup_failover_failback(pair: Twin) -> None:
    out = pair.fire("ha_pair/pair", "setup")
    assert (out.status, out.state) == ("completed", "primary_active"), out
    assert (pair.state("ha_mn/mn1"), pair.state("ha_mn/mn2")) == ("active", "standby")
    assert vip_holders(pair) == {"mn1"}
    assert pair.host("mn1")["hostname"] == "xcatmn" and pair.host("mn2")["hostname"] == "mn2"
    assert {"postgresql", "xcatd", "named", "dhcpd", "goconserver"} <= active(pair, "mn1")
    assert active(pair, "mn2") == set()
    # xCAT's data lives in the shared directory; the active node links to it
    shared = pair.host("nfs:HA-data")["fs"]
    assert shared["/HA-data/etc/xcat/cfgloc"]["c"].startswith("Pg:")
    assert pair.host("mn1")["fs"]["/etc/xcat"] == {"t": "l", "to": "/HA-data/etc/xcat"}
    assert "/etc/xcat" not in pair.host("mn2")["fs"]

    out = pair.fire("ha_pair/pair", "failover")
    assert (out.status, out.state) == ("completed", "secondary_active"), out
    assert vip_holders(pair) == {"mn2"}
    assert (pair.state("ha_mn/mn1"), pair.state("ha_mn/mn2")) == ("off", "active")
    assert active(pair, "mn1") == set() and "xcatd" in active(pair, "mn2")
    assert pair.host("bmc:mn1")["power"] == "Off"
    # deactivate mn1, fence it (power off through its BMC), only then activate mn2: the
    # VIP left mn1, and mn1 was off, before the VIP reached mn2
    log = [(e.host, e.effect) for e in pair.sim.world.log_entries()]
    removed = max(i for i, he in enumerate(log) if he == ("mn1", f"ip del {VIP}/24 dev eth0"))
    fenced = max(i for i, he in enumerate(log) if he == ("bmc:mn1", "power ForceOff"))
    added = max(i for i, he in enumerate(log) if he == ("mn2", f"ip add {VIP}/24 dev eth0"))
    assert removed < fenced < added

    out = pair.fire("ha_pair/pair", "failback")
    assert (out.status, out.state) == ("completed", "primary_active")
    assert vip_holders(pair) == {"mn1"}
    # mn2 was fenced in turn; mn1 came back from its disk before it was activated
    assert (pair.state("ha_mn/mn1"), pair.state("ha_mn/mn2")) == ("active", "off")
    assert pair.host("bmc:mn1")["power"] == "On" and pair.host("mn1")["booted_from"] == "Hdd"
    assert pair.sleeps == []  # nothing needed a retry


def test_setup_refuses_when_the_vip_already_answers(pair: Twin) -> None:
    pair.sim.world.set_host_state("intruder", {"ifaces": {"eth0": [f"{VIP}/24"]}})
    out = pair.fire("ha_mn/mn1", "setup")
    assert (out.status, out.state, out.step) == ("failed", "failed", "vip_free")
    assert pair.effects("mn1") == []  # nothing was touched
    assert pair.host("mn1")["hostname"] == "mn1"
    undo = [e for e in pair.events("ha_mn/mn1") if e.payload.get("undo")]
    assert undo == []  # no compensation: nothing had taken effect


def test_a_service_that_needs_two_tries_is_retried_3s_apart(pair: Twin) -> None:
    assert pair.fire("ha_pair/pair", "setup").status == "completed"
    # the first `systemctl start xcatd` on mn2 exits 0 but xcatd stays down
    pair.quirk("mn2", silent_start={"xcatd": 1})
    out = pair.fire("ha_pair/pair", "failover")
    assert (out.status, out.state) == ("completed", "secondary_active"), out
    events = pair.steps("ha_mn/mn2", "start_xcatd")
    failed = [e for e in events if e.type == "step.failed"]
    assert len(failed) == 1 and failed[0].payload["will_retry"] is True
    assert "exited 0 but xcatd is inactive" in failed[0].payload["error"]
    assert [e.payload["attempt"] for e in events if e.type == "step.succeeded"][-1] == 2
    assert pair.sleeps == [3.0]
    assert vip_holders(pair) == {"mn2"}


def test_a_service_that_never_starts_cleans_up_vip_and_hostname(pair: Twin) -> None:
    assert pair.fire("ha_pair/pair", "setup").status == "completed"
    pair.quirk("mn2", silent_start={"xcatd": 5})
    out = pair.fire("ha_pair/pair", "failover")
    assert (out.status, out.state) == ("failed", "degraded")
    assert pair.sleeps == [3.0, 3.0]  # 3 tries, 3 s apart
    # clean_env on mn2: hostname restored, VIP removed — never on both nodes
    assert pair.state("ha_mn/mn2") == "failed"
    assert pair.host("mn2")["hostname"] == "mn2"
    undone = [
        e.payload["step"]
        for e in pair.events("ha_mn/mn2")
        if e.type == "step.succeeded" and e.payload.get("undo")
    ]
    assert undone[-2:] == ["hostname", "vip"]
    # the compensation brought the fenced old primary back: powered on, active again,
    # so a node serves (the pair says `degraded`: the failover did not happen)
    assert pair.state("ha_mn/mn1") == "active" and vip_holders(pair) == {"mn1"}
    pair_undo = [
        (e.type, e.payload["step"])
        for e in pair.events("ha_pair/pair")
        if e.type.startswith("step.") and e.payload.get("undo")
    ]
    assert pair_undo == [
        ("step.started", "fence"),
        ("step.succeeded", "fence"),
        ("step.started", "deactivate"),
        ("step.succeeded", "deactivate"),
    ]
    assert "xcatd" in active(pair, "mn1")
    # repaired, the pair fails over from `degraded`
    pair.quirk("mn2", silent_start={})
    out = pair.fire("ha_pair/pair", "failover")
    assert (out.status, out.state) == ("completed", "secondary_active"), out
    assert vip_holders(pair) == {"mn2"}


def test_a_vip_that_does_not_leave_blocks_the_other_activation(pair: Twin) -> None:
    assert pair.fire("ha_pair/pair", "setup").status == "completed"
    # `ip addr del` exits 0 and removes nothing (more times than the probe's retries)
    pair.quirk("mn1", silent_ip_del=10)
    out = pair.fire("ha_pair/pair", "failover")
    assert (out.status, out.state, out.step) == ("failed", "degraded", "deactivate")
    assert pair.state("ha_mn/mn1") == "failed"
    assert pair.state("ha_mn/mn2") == "standby"  # never activated
    assert vip_holders(pair) == {"mn1"}
    assert not any(e.startswith("ip add") for e in pair.effects("mn2")[-20:])
    assert pair.sleeps == [2.0, 2.0, 2.0, 2.0]  # the VIP probe's retries


def test_activation_refuses_while_another_node_holds_the_vip(pair: Twin) -> None:
    assert pair.fire("ha_pair/pair", "setup").status == "completed"
    # an operator activates mn2 by hand behind the pair's back
    out = pair.fire("ha_mn/mn2", "activate")
    assert (out.status, out.step) == ("failed", "vip_free")
    assert vip_holders(pair) == {"mn1"}
    assert pair.host("mn2")["hostname"] == "mn2"


def test_setup_refuses_a_shared_dir_of_another_db_type(pair: Twin) -> None:
    assert pair.fire("ha_mn/mn1", "setup").state == "standby"
    pair.add("ha_mn/mn3", vip=VIP, vip_hostname="xcatmn", dbtype="mysql")
    pair.sim.world.set_host_state("mn3", {"ifaces": {"eth0": ["10.0.0.3/24"]}})
    out = pair.fire("ha_mn/mn3", "setup")
    assert (out.state, out.step) == ("failed", "shared_db")
    assert "uses postgresql, not mysql" in (out.error or "")
    assert pair.effects("mn3") == []
