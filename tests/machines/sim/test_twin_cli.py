"""The simulated datacenter as a twin, driven only through the real ``fleetlog`` console
script: ``sim init|show|fault|log`` and ``rehearse``, from an empty directory.

What is proven: the Exascale clone is rehearsed with the fault an operator fears and
fire then takes the same path; README's first session runs on a twin; each fault type
works from the CLI; the world file is private and holds no secret; every seed of
docs/machines.md is rehearsed end to end."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fleetlog.engine.backends.sim import secret_digest
from fleetlog.engine.ops.rehearse import paths
from fleetlog.journal import open_journal

REPO = Path(__file__).resolve().parents[3]
EXE = Path(sys.executable).with_name("fleetlog")
EXAMPLES = REPO / "examples"
EDV_START = "*startup services edv*"
CHAP = {
    "DISCOVERY_USER": "disco_user",
    "DISCOVERY_PASSWORD": "disco-Pa55-7f3a",
    "NODE_USER": "node_user",
    "NODE_PASSWORD": "node-Pa55-0b7e",
    "DISCOVERY_USER_IN": "disco_mutual_user",
    "DISCOVERY_PASSWORD_IN": "disco-mutual-Pa55-91c2",
    "NODE_USER_IN": "node_mutual_user",
    "NODE_PASSWORD_IN": "node-mutual-Pa55-d4e8",
}


class Cli:
    """``fleetlog`` in ``root``, with no FLEETLOG_* setting inherited but ``env``."""

    def __init__(self, root: Path, **env: str) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETLOG_")}
        self.env["FLEETLOG_SECRET_WALLET_PASSWORD"] = "twin-test-wallet"
        self.env.update(env)

    def __call__(self, *args: str, code: int | None = 0) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [str(EXE), *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert "Traceback" not in done.stderr, done.stderr
        if code is not None:
            assert done.returncode == code, (args, done.returncode, done.stdout, done.stderr)
        return done

    def json(self, *args: str, code: int | None = 0) -> Any:
        return json.loads(self(*args, "--json", code=code).stdout)

    def head(self) -> str:
        return self("verify").stdout.strip().splitlines()[-1]


def transition(report: dict[str, Any], rid: str, trigger: str) -> dict[str, Any]:
    (t,) = [t for t in report["transitions"] if (t["resource"], t["trigger"]) == (rid, trigger)]
    return t


def step(t: dict[str, Any], name: str) -> dict[str, Any]:
    (s,) = [s for s in t["steps"] if s["step"] == name and not s["undo"]]
    return s


def shape(transitions: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The path, without the words that differ between runs (ids, durations)."""
    return [
        (
            t["resource"],
            t["trigger"],
            t["from"],
            t["to"],
            t["caused_by"],
            t["outcome"],
            tuple(
                (s["step"], s["outcome"], s["attempts"], tuple(s["ensured"])) for s in t["steps"]
            ),
        )
        for t in transitions
    ]


# ----------------------------------------------------------------------- acceptance
def test_a_clone_rehearsed_with_a_flaky_edv_then_fired_takes_the_same_path(
    tmp_path: Path,
) -> None:
    f = Cli(tmp_path)
    f("sim", "init", "--from-inventory", str(EXAMPLES / "exascale.toml"))
    f("inventory", "load", str(EXAMPLES / "exascale.toml"))
    f("fire", "exascale_cluster/exa", "deploy")
    f("fire", "vm/exa1_vm1", "create")
    f("fire", "vm/exa1_vm1", "deploy")
    said = f(
        "sim",
        "fault",
        "add",
        "fail",
        "--host",
        "node3",
        "--tool",
        "dbmcli",
        "--command",
        EDV_START,
        "--times",
        "2",
    ).stdout
    assert said.startswith("[sim] fault 1:")
    head = f.head()
    journal_head = open_journal(str(tmp_path / "fleetlog.db")).head()

    params = ("--param", "source=exa1_vm1", "--param", "target=node3")
    clone = ("clone", "vm/exa1_vm3", *params)  # rehearse TRIGGER PATTERN, as the issue has it
    report = f.json("rehearse", *clone)
    assert report["simulated"] is True and report["exit_code"] == 0
    vm = transition(report, "vm/exa1_vm3", "clone")
    assert step(vm, "exascale")["ensured"] == ["kvm_host/node3"]
    host = transition(report, "kvm_host/node3", "configure_exascale")
    assert host["caused_by"] == "vm/exa1_vm3 step exascale"
    edv = step(host, "start_edv")
    assert (edv["outcome"], edv["attempts"], edv["retries"]) == ("ok", 3, 2)
    assert all("injected failure of dbmcli" in e for e in edv["errors"])
    assert report["end_states"] == {"kvm_host/node3": "exascale_ready", "vm/exa1_vm3": "ACTIVE"}
    text = f("rehearse", *clone).stdout
    assert all(line.startswith("[sim]") for line in text.splitlines())
    assert "start_edv        ok after 3 attempts (2 retries)" in text

    # the real journal and world are untouched: same head, node3 not configured
    assert f.head() == head
    assert f.json("sim", "show", "node3")["hosts"]["node3"] == {"role": "kvm_host"}
    assert f.json("sim", "fault", "list")["faults"][0]["hits"] == 0

    f("fire", "vm/exa1_vm3", "clone", *params)
    events = [e for e in open_journal(str(tmp_path / "fleetlog.db")).read_all()]
    fired = [t.as_dict() for t in paths([e for e in events if e.seq > journal_head])]
    assert shape(fired) == shape(report["transitions"])
    assert f.json("status", "vm/exa1_vm3")[0]["state"] == "ACTIVE"


def test_readme_first_session_runs_on_a_twin_and_reconcile_finds_nothing_stale(
    tmp_path: Path,
) -> None:
    import re

    text = (REPO / "README.md").read_text()
    block = text.split("## A first session", 1)[1]
    lines = re.findall(r"```console\n(.+?)\n```", block, re.S)[0].splitlines()
    assert any(line.startswith("fleetlog sim init") for line in lines)
    f = Cli(tmp_path)
    import shlex

    for line in lines:
        argv = shlex.split(line.split("  #", 1)[0])
        f(*argv[1:])
    report = f.json("reconcile")
    assert not [x for x in report.get("findings", []) if x.get("class") == "stale"], report
    assert f("reconcile").returncode == 0


def test_the_twin_follows_the_journal_and_a_host_it_lacks_is_unreachable(
    tmp_path: Path,
) -> None:
    f = Cli(tmp_path)
    f("add", "kvm_host/node3", "--param", "host=node3")
    f("sim", "init")
    f("add", "kvm_host/node9", "--param", "host=node9")  # after the twin was built
    report = f.json("rehearse", "validate", "kvm_host/node9")
    assert report["end_states"]["kvm_host/node9"] == "ready"
    # a rehearsal only copies the world: the next command on the sim seeds node9 there
    assert "node9" not in f.json("sim", "show")["hosts"]
    f("reconcile")
    assert "node9" in f.json("sim", "show")["hosts"]
    # a host the twin lost (a world file edited by hand) is not made up again
    import sqlite3

    with sqlite3.connect(tmp_path / "fleetlog.db.sim") as db:
        db.execute("DELETE FROM hosts WHERE host = 'node9'")
    report = f.json("rehearse", "validate", "kvm_host/node9", code=1)
    assert (
        "host 'node9' is not in the simulated datacenter"
        in step(transition(report, "kvm_host/node9", "validate"), "dbserver")["errors"][0]
    )
    # sim commands on a world that was never built are refused, not made up
    (tmp_path / "empty").mkdir()
    g = Cli(tmp_path / "empty")
    assert "sim init" in g("sim", "show", code=2).stderr
    assert "nothing to build a twin of" in g("sim", "init", code=2).stderr


# ----------------------------------------------------------------------- fault types
@pytest.fixture
def node3(tmp_path: Path) -> Cli:
    f = Cli(tmp_path)
    f("add", "kvm_host/node3", "--param", "host=node3")
    f("sim", "init")
    return f


def dbserver(f: Cli, code: int = 0) -> dict[str, Any]:
    report = f.json("rehearse", "validate", "kvm_host/node3", code=code)
    return step(transition(report, "kvm_host/node3", "validate"), "dbserver")


def test_fault_unreachable(node3: Cli) -> None:
    node3("sim", "fault", "add", "unreachable", "--host", "node3")
    s = dbserver(node3, code=1)
    assert s["outcome"] == "failed" and "unreachable" in s["errors"][-1]


@pytest.mark.parametrize(
    ("options", "attempts", "outcome", "code"),
    [
        (("--times", "2"), 3, "ok", 0),
        (("--nth", "1"), 2, "ok", 0),
        ((), 3, "failed", 1),
    ],
)
def test_fault_fail(
    node3: Cli, options: tuple[str, ...], attempts: int, outcome: str, code: int
) -> None:
    node3("sim", "fault", "add", "fail", "--tool", "dbmcli", "--message", "boom", *options)
    s = dbserver(node3, code=code)
    assert (s["outcome"], s["attempts"]) == (outcome, attempts)
    assert s["errors"][0].endswith("boom")


def test_fault_latency_counts_the_calls_it_slowed(node3: Cli) -> None:
    node3("sim", "fault", "add", "latency", "--host", "node3", "--ms", "5")
    node3("fire", "kvm_host/node3", "validate")
    (fault,) = node3.json("sim", "fault", "list")["faults"]
    assert (fault["mode"], fault["ms"], fault["hits"]) == ("slow", 5.0, 1)


def test_fault_hang_times_the_command_out(node3: Cli) -> None:
    node3("sim", "fault", "add", "hang", "--tool", "dbmcli", "--ms", "10")
    s = dbserver(node3, code=1)
    assert s["outcome"] == "failed" and "timed out" in s["errors"][0]


def test_fault_drop_leaves_an_idempotent_step_to_be_run_again(node3: Cli) -> None:
    node3("sim", "fault", "add", "drop", "--tool", "dbmcli", "--nth", "1")
    s = dbserver(node3)
    assert s["outcome"] == "ok" and s["attempts"] == 2
    assert "connection dropped" in s["errors"][0]


def test_fault_status_makes_observation_lie_and_reconcile_see_drift(node3: Cli) -> None:
    node3("fire", "kvm_host/node3", "validate")
    node3(
        "sim",
        "fault",
        "add",
        "status",
        "--kind",
        "kvm_host",
        "--name",
        "node3",
        "--status",
        "exascale:online",
    )
    assert node3("reconcile", code=3).returncode == 3
    node3("sim", "fault", "clear")
    assert node3.json("sim", "fault", "list")["faults"] == []


def test_fault_flaky_service_and_guest_status_drift(tmp_path: Path) -> None:
    inventory = tmp_path / "inv.toml"
    inventory.write_text(
        '[kvm_host.node1]\nhost = "node1"\n[vm.g1]\nhost = "node1"\nstorage = "asm"\n'
    )
    f = Cli(tmp_path)
    f("sim", "init", "--from-inventory", str(inventory))
    f("inventory", "load", str(inventory))
    f("fire", "vm/g1", "create")
    f("fire", "vm/g1", "deploy")
    f("sim", "fault", "add", "flaky-service", "--host", "node1", "--param", "service=edv")
    shown = f.json("sim", "show", "node1")["hosts"]["node1"]
    assert shown["exascale"]["start_failures"] == {"edv": 1}
    f(
        "sim",
        "fault",
        "add",
        "guest-status",
        "--host",
        "node1",
        "--param",
        "guest=g1",
        "--param",
        "status=stopped",
    )
    assert f("reconcile", "vm/g1", code=3).returncode == 3  # ACTIVE in the journal, stopped there
    log = f.json("sim", "log", "--tool", "(injected)")["effects"]
    assert [e["effect"] for e in log] == [
        "the next 1 start(s) of edv on node1 fail",
        "guest g1 on node1 is now stopped",
    ]
    assert (
        "no host 'node7'"
        in f(
            "sim",
            "fault",
            "add",
            "flaky-service",
            "--host",
            "node7",
            "--param",
            "service=edv",
            code=2,
        ).stderr
    )
    assert "unknown fault mode" in f("sim", "fault", "add", "meteor", code=2).stderr


# ------------------------------------------------------------- private, no secret value
def test_the_world_file_is_0600_and_holds_digests_not_secrets(tmp_path: Path) -> None:
    env = {f"FLEETLOG_SECRET_{k}": v for k, v in CHAP.items()}
    f = Cli(tmp_path, **env)
    f("sim", "init", "--from-inventory", str(EXAMPLES / "diskless.toml"))
    f("inventory", "load", str(EXAMPLES / "diskless.toml"))
    # the boot writes iscsid.conf with the CHAP secrets, then fails: nothing is exported
    f("fire", "diskless_node/ocean1", "boot", code=1)
    world = tmp_path / "fleetlog.db.sim"
    for p in tmp_path.glob("fleetlog.db.sim*"):
        assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    data = b"".join(p.read_bytes() for p in tmp_path.glob("fleetlog.db.sim*"))
    for value in CHAP.values():
        assert value.encode() not in data, value
    assert secret_digest("node-Pa55-0b7e").encode() in data
    assert world.exists()
    srv = f.json("sim", "show", "iscsi_srv1")["hosts"]["iscsi_srv1"]
    assert srv["lio"]["chap"]["node.session"]["password"] == secret_digest("node-Pa55-0b7e")


# ----------------------------------------------------------------- every seed rehearsed
def test_seed_exascale_cluster_deploy_validates_every_cell_service(tmp_path: Path) -> None:
    f = Cli(tmp_path)
    f("sim", "init", "--from-inventory", str(EXAMPLES / "exascale.toml"))
    report = f.json("rehearse", "deploy", "exascale_cluster/exa")
    assert report["end_states"]["exascale_cluster/exa"] == "configured"
    for cell in ("cell1", "cell2", "cell3"):
        serving = step(transition(report, f"cell/{cell}", "deploy"), "serving")
        assert serving["outcome"] == "ok" and "services online" in (serving["detail"] or "")
    assert {t["resource"] for t in report["transitions"]} >= {"kvm_host/node1", "kvm_host/node2"}
    # a cell service that never starts keeps the cluster from being validated
    f("sim", "fault", "add", "fail", "--host", "cell2", "--command", "*name=usreds_cell --start")
    failed = f.json("rehearse", "deploy", "exascale_cluster/exa", code=1)
    assert failed["end_states"]["exascale_cluster/exa"] == "failed"
    assert failed["end_states"]["cell/cell2"] == "failed"


def test_seed_diskless_image_build_records_cloud_init_errors(tmp_path: Path) -> None:
    f = Cli(tmp_path)
    f("sim", "init", "--from-inventory", str(EXAMPLES / "diskless.toml"))
    f("sim", "fault", "add", "cloud-init", "--param", "errors=disk full;no route")
    report = f.json("rehearse", "build", "diskless_image/compute_img-2020-01-14")
    assert report["end_states"] == {"diskless_image/compute_img-2020-01-14": "built"}
    t = transition(report, "diskless_image/compute_img-2020-01-14", "build")
    assert step(t, "cloud_init_result")["detail"] == "  - no route"
    f("sim", "fault", "add", "cloud-init", "--param", "malformed=true")
    broken = f.json("rehearse", "build", "diskless_image/compute_img-2020-01-14", code=1)
    t = transition(broken, "diskless_image/compute_img-2020-01-14", "build")
    assert "malformed" in step(t, "cloud_init_result")["errors"][0]
    assert step(t, "alloc")["undo"] is False  # and the compensation ran:
    assert any(s["undo"] and s["step"] == "alloc" for s in t["steps"])


def test_seed_xcat_ha_setup_and_the_vip_already_answering(tmp_path: Path) -> None:
    f = Cli(tmp_path)
    f("sim", "init", "--from-inventory", str(EXAMPLES / "xcat_ha.toml"))
    ok = f.json("rehearse", "setup", "ha_pair/pair")
    assert ok["end_states"] == {
        "ha_mn/mn1": "active",
        "ha_mn/mn2": "standby",
        "ha_pair/pair": "primary_active",
    }
    f("sim", "fault", "add", "vip-answering", "--param", "address=10.0.0.100")
    refused = f.json("rehearse", "setup", "ha_pair/pair", code=1)
    mn1 = transition(refused, "ha_mn/mn1", "setup")
    assert step(mn1, "vip_free")["outcome"] == "failed"
    assert [s["step"] for s in mn1["steps"]] == ["shared_dir", "vip_free"]  # nothing touched
    assert refused["end_states"]["ha_pair/pair"] == "degraded"


def test_seed_hare_component_stage(tmp_path: Path) -> None:
    f = Cli(tmp_path)
    f("sim", "init", "--from-inventory", str(EXAMPLES / "hare.toml"))
    report = f.json(
        "rehearse", "prepare", "component/hare", "--param", "config=json:///tmp/exampleV2.json"
    )
    assert report["end_states"] == {"component/hare": "prepared"}


def test_seed_ganeti_servers_created_then_drifted(tmp_path: Path) -> None:
    f = Cli(tmp_path)
    f("sim", "init", "--from-inventory", str(EXAMPLES / "ganeti.toml"))
    report = f.json("rehearse", "create", "ganeti_vm/snf-[1-3]")
    assert set(report["end_states"].values()) == {"BUILD"}
    f("inventory", "load", str(EXAMPLES / "ganeti.toml"))
    f("fire", "ganeti_vm/snf-1", "create")
    f("fire", "ganeti_vm/snf-1", "await")
    assert f("reconcile", "ganeti_vm/snf-1").returncode == 0
    f(
        "sim",
        "fault",
        "add",
        "ganeti-drift",
        "--host",
        "gnt1",
        "--param",
        "instance=snf-1",
        "--param",
        "admin=down",
        "--param",
        "running=false",
    )
    assert f("reconcile", "ganeti_vm/snf-1", code=3).returncode == 3
    f("reconcile", "ganeti_vm/snf-1", "--fix", "unsynced", code=None)
    assert f.json("status", "ganeti_vm/snf-1")[0]["state"] == "STOPPED"
    restarted = f.json("rehearse", "start", "ganeti_vm/snf-1")
    assert restarted["end_states"] == {"ganeti_vm/snf-1": "ACTIVE"}
