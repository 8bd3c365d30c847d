"""diskless_image and diskless_node on the simulated datacenter (Ocean Stack's diskless
image generation):
the image from reference VM to iSCSI export, the node boot out of the DisklessTrap, the
failure modes (CHAP refused, LUKS failure removes the key) and a 1,000-node fan-out
whose exported journal holds no CHAP secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog.engine.backends.sim import Fault, secret_digest
from fleetlog.engine.ops import created_event, run_many
from fleetlog.journal.ids import uuid7
from fleetlog.machines.sim.tools.diskless import CLOUD_INIT_ERRORS, diskless_site
from tests.machines.twin import Twin, twin_fixture  # noqa: F401

IMAGE = "diskless_image/compute_img-2020-01-14"
TAG = "2020-01-14"
KEY = f"/volspoms1/diskless/keys/stacker-image-{TAG}.key"
ENC = f"/volspoms1/diskless/images/encrypted/stacker-image-{TAG}.img"
REPO = Path(__file__).resolve().parents[2]

SECRETS = {
    "DISCOVERY_USER": "disco_user",
    "DISCOVERY_PASSWORD": "disco-Pa55-7f3a",
    "DISCOVERY_USER_IN": "disco_mutual_user",
    "DISCOVERY_PASSWORD_IN": "disco-mutual-Pa55-91c2",
    "NODE_USER": "node_user",
    "NODE_PASSWORD": "node-Pa55-0b7e",
    "NODE_USER_IN": "node_mutual_user",
    "NODE_PASSWORD_IN": "node-mutual-Pa55-d4e8",
}
CHAP = {
    "discovery.sendtargets": {"username": "disco_user", "password": "disco-Pa55-7f3a"},
    "node.session": {"username": "node_user", "password": "node-Pa55-0b7e"},
}


@pytest.fixture
def site(twin: Twin, monkeypatch: pytest.MonkeyPatch) -> Twin:
    for name, value in SECRETS.items():
        monkeypatch.setenv(f"FLEETLOG_SECRET_{name}", value)
    diskless_site(twin.sim.world, chap=CHAP)
    return twin


def build_and_export(t: Twin) -> None:
    t.add(IMAGE, tag=TAG)
    out = t.fire(IMAGE, "build")
    assert out.status == "completed", out
    out = t.fire(IMAGE, "export")
    assert out.status == "completed", out


def secret_values_in(text: str) -> list[str]:
    return [v for v in SECRETS.values() if "Pa55" in v and v in text]


# ------------------------------------------------------------------------------- image
def test_image_is_built_encrypted_and_exported_from_both_servers(site: Twin) -> None:
    build_and_export(site)
    assert site.state(IMAGE) == "exported"

    gluster = site.host("gluster:volspoms1")["fs"]
    assert gluster[ENC]["c"]["format"] == "luks"
    assert gluster[ENC]["c"]["puppet"] == 1 and gluster[ENC]["c"]["initramfs"]
    assert gluster[KEY]["t"] == "f"
    boot = "/volspoms1/pub/boot/diskless"
    assert {
        f"{boot}/vmlinuz-3.10.0-957.35.2.el7.x86_64.new",
        f"{boot}/initramfs-3.10.0-957.35.2.el7.x86_64.img.new",
    } <= set(gluster)
    assert "compute" not in site.host("top1")["pcocc"]["jobs"]  # VM released

    for srv in ("iscsi_srv1", "iscsi_srv2"):
        lio = site.host(srv)["lio"]
        export = lio["exports"]["compute_img-2020-01-14"]
        assert export["nodes"] == "ocean[1-1000]" and export["image"] == ENC
        assert lio["saved"] == lio["exports"]  # stacker lio config --save

    # the DisklessTrap was escaped after both reboots, in order
    top1 = site.effects("top1")
    assert top1.count("compute left the DisklessTrap") == 2
    assert top1.index("compute puppet-apply") < top1.index("compute dracut")


def test_cloud_init_errors_are_recorded_but_not_fatal(site: Twin) -> None:
    site.add(IMAGE, tag=TAG)
    assert site.fire(IMAGE, "build").status == "completed"
    # sshd answered only after some polls: the wait slept (injected) between them
    assert site.sleeps and set(site.sleeps) == {10.0}
    (done,) = [e for e in site.steps(IMAGE, "cloud_init_result") if e.type == "step.succeeded"]
    assert "2 non-fatal error(s)" in done.payload["output"]
    for error in CLOUD_INIT_ERRORS:
        assert error.split(",")[0] in done.payload["output"]


def test_old_drive_is_backed_up_before_a_rebuild(site: Twin) -> None:
    site.add(IMAGE, tag=TAG)
    site.sim.world.inject(Fault("qemu-img", mode="fail_always", message="gluster down"))
    out = site.fire(IMAGE, "build")
    assert (out.status, out.state, out.step) == ("failed", "failed", "convert")
    # undo [alloc]: the VM is not left allocated
    assert "compute" not in site.host("top1")["pcocc"]["jobs"]
    site.sim.world.clear_faults()
    assert site.fire(IMAGE, "build").status == "completed"
    drives = site.host("gluster:volspoms1")["fs"]
    assert f"/volspoms1/pcocc/persistent_drives/compute.qcow2.{TAG}" in drives
    assert "/volspoms1/pcocc/persistent_drives/compute.qcow2" in drives


def test_convert_refuses_a_drive_still_in_use(site: Twin) -> None:
    res = site.sim.run("top1", "prepare-ocean-image.sh compute")
    assert res.ok
    assert site.sim.run("top1", "pcocc alloc compute").ok
    res = site.sim.run(
        "top1",
        "qemu-img convert -f qcow2 -O raw /volspoms1/pcocc/persistent_drives/compute.qcow2 "
        "/volspoms1/x.raw",
    )
    assert res.exit_code == 1 and 'shared "write" lock' in res.stderr


# ------------------------------------------------------------------------------- nodes
def test_node_boots_from_the_exported_image(site: Twin) -> None:
    build_and_export(site)
    site.add("diskless_node/ocean7", image="compute_img-2020-01-14")
    out = site.fire("diskless_node/ocean7", "boot")
    assert (out.status, out.state) == ("completed", "booted"), out

    node = site.host("ocean7")
    assert set(node["iscsi"]["sessions"]) == {"iscsi_srv1", "iscsi_srv2"}
    assert "/dev/mapper/luks_root" in node["devices"]
    assert all(
        node["devices"][d]["ro"] for d in ("/dev/mapper/luks_root1", "/dev/mapper/system-var")
    )
    assert {
        "/overlay",
        "/overlay/lower/root",
        "/overlay/lower/var",
        "/sysroot",
        "/sysroot/var",
    } <= set(node["mounts"])
    assert "/dev/shm/luksKey" not in node["fs"]  # the key was removed
    assert node["units"]["dracut-emergency"]["active"] is False
    assert node["units"]["multipathd"]["active"] is True
    assert node["root_units"]["/sysroot"] == {"iscsid": True, "multipathd": True}
    assert node["fs"]["/sysroot/etc/hostname"]["c"] == "ocean7\n"
    # the CHAP credentials reached the node as digests (the world never stores a
    # secret's value), and the journal not at all
    conf = node["fs"]["/etc/iscsi/iscsid.conf"]["c"]
    assert secret_digest("node-Pa55-0b7e") in conf and "node-Pa55-0b7e" not in conf
    assert secret_values_in(site.exported()) == []
    (started,) = [
        e for e in site.steps("diskless_node/ocean7", "iscsid_conf") if e.type == "step.succeeded"
    ]
    assert "<secret:node_password>" in started.payload["command"]


def test_node_without_multipath_opens_the_plain_device(site: Twin) -> None:
    build_and_export(site)
    site.add("diskless_node/ocean8", image="compute_img-2020-01-14", multipath=False)
    assert site.fire("diskless_node/ocean8", "boot").state == "booted"
    node = site.host("ocean8")
    assert not node["units"]["multipathd"]["active"]
    assert "replacement_timeout = 600" in node["fs"]["/etc/iscsi/iscsid.conf"]["c"]
    assert "luksOpen /dev/sda luks_root" in site.effects("ocean8")
    assert "/etc/multipath.conf" not in node["fs"]


def test_wrong_chap_password_is_refused_and_never_journaled(
    site: Twin, monkeypatch: pytest.MonkeyPatch
) -> None:
    build_and_export(site)
    monkeypatch.setenv("FLEETLOG_SECRET_NODE_PASSWORD", "wrong-Pa55-5555")
    site.add("diskless_node/ocean9", image="compute_img-2020-01-14")
    out = site.fire("diskless_node/ocean9", "boot")
    assert (out.status, out.state, out.step) == ("failed", "failed", "login")
    assert "authorization failure" in (out.error or "")
    assert site.sleeps[-2:] == [5.0, 5.0]  # retry 2 every 5s, then give up
    assert "/dev/shm/luksKey" not in site.host("ocean9")["fs"]
    text = site.exported()
    assert "wrong-Pa55-5555" not in text and secret_values_in(text) == []


def test_a_failed_luks_open_still_removes_the_key(site: Twin) -> None:
    build_and_export(site)
    site.add("diskless_node/ocean10", image="compute_img-2020-01-14")
    site.sim.world.inject(Fault("cryptsetup", mode="fail_always", host="ocean10"))
    out = site.fire("diskless_node/ocean10", "boot")
    assert (out.state, out.step) == ("failed", "luks_open")
    effects = site.effects("ocean10")
    assert "scp top1:" + KEY + " /dev/shm/luksKey" in effects
    assert effects[-1] == "rm /dev/shm/luksKey"  # undo [copy_key]
    assert "/dev/shm/luksKey" not in site.host("ocean10")["fs"]
    # repaired, the node boots from `failed`; the finished steps are skipped by checks
    site.sim.world.clear_faults()
    assert site.fire("diskless_node/ocean10", "boot").state == "booted"


def test_a_node_outside_the_exported_set_sees_no_target(site: Twin) -> None:
    build_and_export(site)
    site.add("diskless_node/gpu1", image="compute_img-2020-01-14")
    out = site.fire("diskless_node/gpu1", "boot")
    assert (out.state, out.step) == ("failed", "login")
    assert "No portals found" in (out.error or "")


def test_reboot_returns_to_the_trap_and_boots_again(site: Twin) -> None:
    build_and_export(site)
    site.add("diskless_node/ocean11", image="compute_img-2020-01-14")
    assert site.fire("diskless_node/ocean11", "boot").state == "booted"
    assert site.fire("diskless_node/ocean11", "reboot").state == "trapped"
    assert "mounts" not in site.host("ocean11")
    assert site.fire("diskless_node/ocean11", "boot").state == "booted"


def test_a_thousand_nodes_boot_in_parallel_without_leaking_a_secret(site: Twin) -> None:
    build_and_export(site)
    ids = [f"diskless_node/ocean{i}" for i in range(1, 1001)]
    for rid in ids:
        event = created_event(site.registry, rid, {"image": "compute_img-2020-01-14"})
        site.journal.append(rid, [event], expected_version=0)
    run_id = uuid7()
    result = run_many(
        ids,
        lambda rid: site.runner.fire(rid, "boot", {}, correlation_id=run_id),
        parallel=64,
        progress=False,
        label="boot",
    )
    assert result.exit_code() == 0, result.groups()[:3]
    assert {o.state for o in result.outcomes} == {"booted"}
    assert len(result.outcomes) == 1000
    states = {r: site.state(r) for r in ids[::97]}
    assert set(states.values()) == {"booted"}
    text = site.exported()
    assert text.count('"type":"transition.completed"') >= 1002
    assert secret_values_in(text) == []
    for user in ("disco_user", "node_user"):  # CHAP user names are secrets too
        assert f"auth {user}" not in text and f" {user} " not in text


# ------------------------------------------------------------------------------- docs
