"""snf-ganeti-eventd's messages as an ingest source: the shapes Synnefo's eventd publishes
(``snf-cyclades-gtools/synnefo/ganeti/eventd.py``) become messages about ``ganeti_vm``
resources, and a stream of them, redelivered and reordered as a message queue does,
moves the journal exactly as Cyclades' dispatcher moves its database
(``logic/callbacks.py``, ``logic/backend.py``) — once, whatever is delivered twice."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetlog import packs
from fleetlog.engine.model import load_registry
from fleetlog.engine.ops.ingest import read_messages
from fleetlog.machines.ganeti_eventd import SOURCE, eventd_messages
from fleetlog.machines.pack import PACK
from tests.engine.conftest import CRASH_ENV, Fleet

KIND = "ganeti_vm"
T0 = 1733565600  # 2024-12-07T10:00:00Z


# ---------------------------------------------------------------------------- messages
def op_status(
    instance: str,
    operation: str,
    job_id: int,
    status: str,
    at: int,
    usec: int = 0,
    **extra: Any,
) -> dict[str, Any]:
    """A ``ganeti-op-status`` as eventd builds it: its handler's ``type``, ``instance``,
    ``operation`` and ``job_fields``, then the shared attributes of every op."""
    msg: dict[str, Any] = {
        "type": "ganeti-op-status",
        "instance": instance,
        "operation": operation,
        "job_fields": {},
        "event_time": [at, usec],
        "status": status,
        "cluster": "gnt.example.org",
        "logmsg": None,
        "result": None,
        "jobId": job_id,
    }
    msg.update(extra)
    return msg


def create_fields(vcpus: int = 1, maxmem: int = 1024) -> dict[str, Any]:
    """``OP_INSTANCE_CREATE``'s input as eventd copies it into ``job_fields``."""
    return {
        "nics": [{"network": "public", "name": "nic-0"}],
        "disks": [{"size": 10240, "name": "disk-0"}],
        "beparams": {"vcpus": vcpus, "maxmem": maxmem, "minmem": maxmem},
    }


def nics(mac: str, ip: str, network: str = "public") -> list[dict[str, Any]]:
    """``instance_nics``: what ``get_instance_attachments`` reads back from Ganeti."""
    return [
        {
            "name": "nic-0",
            "network": network,
            "ip": ip,
            "mac": mac,
            "mode": "routed",
            "link": "rt100",
            "uuid": "0b3e9a1c",
        }
    ]


DISKS = [{"name": "disk-0", "size": 10240, "uuid": "5c1d"}]


def progress(instance: str, at: int, **value: float) -> dict[str, Any]:
    return {"type": "ganeti-create-progress", "instance": instance, "event_time": [at, 0], **value}


def line(msg: dict[str, Any]) -> str:
    return json.dumps(msg) + "\n"


# ---------------------------------------------------------------------------- parsing
def test_a_successful_create_gives_its_job_outcome_and_the_instances_nics() -> None:
    msg = op_status(
        "snf-1",
        "OP_INSTANCE_CREATE",
        101,
        "success",
        T0 + 4,
        250000,
        job_fields=create_fields(),
        instance_nics=nics("aa:00:00:10:00:01", "192.0.2.11"),
        instance_disks=DISKS,
        logmsg="* starting instance...",
        result="snf-1",
    )
    assert SOURCE.name == "eventd" and SOURCE.accepts(msg)
    [m], ignored = SOURCE.messages(msg, 7, KIND)
    assert ignored == 0
    assert (m.line, m.resource, m.message_id) == (
        7,
        "ganeti_vm/snf-1",
        "101/OP_INSTANCE_CREATE/success",
    )
    assert (m.operation, m.job_status, m.status) == ("OP_INSTANCE_CREATE", "success", None)
    assert m.event_time == "2024-12-07T10:00:04.250000Z"  # [seconds, microseconds]
    assert m.source == "eventd" and m.logmsg == "* starting instance..." and m.progress is None
    assert m.fields == {
        "nic.macs": ["aa:00:00:10:00:01"],
        "nic.ips": ["192.0.2.11"],
        "nic.networks": ["public"],
        "nic.names": ["nic-0"],
        "nic.modes": ["routed"],
        "nic.links": ["rt100"],
        "nic.uuids": ["0b3e9a1c"],
        "disk.sizes": [10240],
        "disk.names": ["disk-0"],
        "disk.uuids": ["5c1d"],
        "be/vcpus": 1,
        "be/maxmem": 1024,
        "be/minmem": 1024,
    }
    assert m.job == {
        "id": "101",
        "type": "ganeti-op-status",
        "cluster": "gnt.example.org",
        "fields": m.fields,
    }


def test_the_message_id_is_job_opcode_and_status() -> None:
    running = op_status("snf-1", "OP_INSTANCE_SHUTDOWN", 7, "running", T0)
    success = op_status("snf-1", "OP_INSTANCE_SHUTDOWN", 7, "success", T0 + 1)
    ids = [eventd_messages(m, 1, KIND)[0][0].message_id for m in (running, success, success)]
    # running then success: two messages; success redelivered: the same one again
    assert ids == [
        "7/OP_INSTANCE_SHUTDOWN/running",
        "7/OP_INSTANCE_SHUTDOWN/success",
        "7/OP_INSTANCE_SHUTDOWN/success",
    ]


def test_a_resize_gives_the_new_flavor_only_once_the_job_succeeded() -> None:
    asked = {"beparams": {"vcpus": 2, "maxmem": 2048}}
    for status, expected in (("running", None), ("error", None), ("success", (2, 2048))):
        msg = op_status("snf-1", "OP_INSTANCE_SET_PARAMS", 9, status, T0, job_fields=asked)
        [m], _ = eventd_messages(msg, 1, KIND)
        got = None if m.fields is None else (m.fields["be/vcpus"], m.fields["be/maxmem"])
        assert got == expected, status
        assert m.job_status == status


def test_an_older_eventds_top_level_nics_and_beparams_are_read() -> None:
    # Synnefo 0.12-0.14: ``msg["nics"]`` and ``msg["beparams"]``; Ganeti < 2.6: ``memory``.
    msg = op_status(
        "snf-1",
        "OP_INSTANCE_SET_PARAMS",
        9,
        "success",
        T0,
        beparams={"vcpus": 4, "memory": 4096},
        nics=[{"network": "net-3", "ip": None, "mac": "aa:00:00:aa:bb:cc", "link": "br0"}],
    )
    del msg["job_fields"]
    [m], _ = eventd_messages(msg, 1, KIND)
    assert m.fields == {
        "nic.macs": ["aa:00:00:aa:bb:cc"],
        "nic.ips": [None],  # no IPv4 on that NIC: recorded as empty
        "nic.networks": ["net-3"],
        "nic.links": ["br0"],
        "be/vcpus": 4,
        "be/memory": 4096,
        "be/maxmem": 4096,
    }


def test_a_failed_create_keeps_ganetis_error_as_evidence() -> None:
    error = ["OpPrereqError", ["Not enough memory on node1", "insufficient_resources"]]
    msg = op_status(
        "snf-2",
        "OP_INSTANCE_CREATE",
        102,
        "error",
        T0,
        job_fields=create_fields(),
        logmsg="Failure: prerequisites not met",
        result=error,
    )
    [m], _ = eventd_messages(msg, 1, KIND)
    assert (m.operation, m.job_status, m.fields) == ("OP_INSTANCE_CREATE", "error", None)
    assert m.job is not None and m.job["result"] == error
    assert m.logmsg == "Failure: prerequisites not met"


@pytest.mark.parametrize(
    ("value", "expected"),
    [({"rprogress": 20.5}, 20.5), ({"wprogress": 100.0}, 100.0), ({"rprogress": 104.2}, 100.0)],
)
def test_create_progress_is_a_message_with_its_percentage(
    value: dict[str, float], expected: float
) -> None:
    [m], ignored = eventd_messages(progress("snf-1", T0 + 2, **value), 3, KIND)
    assert ignored == 0
    assert (m.resource, m.progress, m.operation, m.job_status) == (
        "ganeti_vm/snf-1",
        expected,
        "OP_INSTANCE_CREATE",
        None,
    )
    assert m.message_id == "progress/2024-12-07T10:00:02.000000Z"


def test_snf_images_copy_progress_is_read_too() -> None:
    msg = {
        "type": "image-copy-progress",
        "instance": "snf-1",
        "event_time": [T0, 0],
        "progress": 42,
    }
    [m], _ = eventd_messages(msg, 1, KIND)
    assert m.progress == 42.0 and m.job == {"type": "image-copy-progress"}


def test_a_net_status_gives_the_nics() -> None:
    msg = {
        "type": "ganeti-net-status",
        "instance": "snf-1",
        "event_time": [T0, 0],
        "nics": [{"ip": "192.0.2.5", "mac": "aa:00:00:00:00:05", "network": "public"}],
    }
    [m], _ = eventd_messages(msg, 1, KIND)
    assert (m.operation, m.job_status) == (None, None)
    assert m.fields == {
        "nic.macs": ["aa:00:00:00:00:05"],
        "nic.ips": ["192.0.2.5"],
        "nic.networks": ["public"],
    }


@pytest.mark.parametrize(
    "msg",
    [
        {"type": "ganeti-network-status", "operation": "OP_NETWORK_ADD", "network": "snf-net-1",
         "event_time": [T0, 0], "status": "success", "jobId": 5, "job_fields": {}},
        {"type": "ganeti-cluster-status", "operation": "OP_CLUSTER_SET_PARAMS",
         "event_time": [T0, 0], "status": "success", "jobId": 6},
        {"type": "eventd-heartbeat", "cluster": "gnt.example.org"},
        {"type": "image-info", "instance": "snf-1", "messages": ["Copying"], "event_time": [T0, 0]},
        {"type": "ganeti-something-newer", "instance": "snf-1"},
    ],
    ids=["network", "cluster", "heartbeat", "diagnostic", "unknown"],
)  # fmt: skip
def test_messages_about_no_instance_state_are_ignored_and_counted(msg: dict[str, Any]) -> None:
    assert SOURCE.accepts(msg)
    assert SOURCE.messages(msg, 1, KIND) == ([], 1)


def test_only_eventd_messages_are_accepted() -> None:
    fleetlog_own = {"id": "m1", "resource": "vm/g1", "status": "running", "event_time": T0}
    ganeti_job = {"id": "7", "status": "success", "ops": [], "opstatus": []}
    assert not SOURCE.accepts(fleetlog_own)
    assert not SOURCE.accepts({**fleetlog_own, "type": "ganeti-op-status"})  # names a resource
    assert not SOURCE.accepts(ganeti_job)
    assert not SOURCE.accepts({"type": "toaster"})


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"event_time": None}, "without 'event_time'"),  # its absence: the CLI test below
        ({"jobId": None}, "without a 'jobId'"),
        ({"operation": ""}, "without an 'operation'"),
        ({"status": "done"}, "not a Ganeti job status"),
        ({"instance": None}, "without an 'instance'"),
        ({"event_time": "noon"}, "not an ISO time"),
        ({"instance_nics": {"mac": "x"}}, "'instance_nics' must be a list"),
        ({"job_fields": [1]}, "'job_fields' must be an object"),
    ],
)
def test_a_malformed_op_status_is_refused(change: dict[str, Any], problem: str) -> None:
    msg = op_status("snf-1", "OP_INSTANCE_STARTUP", 3, "success", T0)
    msg.update(change)
    with pytest.raises(ValueError, match=problem):
        eventd_messages(msg, 1, KIND)


def test_progress_without_a_time_or_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match="without 'event_time'"):
        eventd_messages(
            {"type": "ganeti-create-progress", "instance": "snf-1", "rprogress": 5}, 1, KIND
        )
    with pytest.raises(ValueError, match="numeric progress"):
        eventd_messages(progress("snf-1", T0), 1, KIND)
    with pytest.raises(ValueError, match="negative"):
        eventd_messages(progress("snf-1", T0, rprogress=-1), 1, KIND)


def test_the_builtin_pack_declares_the_source_and_ingest_reads_through_it() -> None:
    sources = [packs.resolve(ref) for ref in PACK.ingest_sources]
    assert [s.name for s in sources] == ["ganeti", "eventd"]
    text = [
        "# eventd, one JSON message a line\n",
        line(op_status("snf-1", "OP_INSTANCE_REBOOT", 11, "success", T0)),
        line({"type": "eventd-heartbeat", "cluster": "gnt.example.org"}),
    ]
    messages, report = read_messages(text, load_registry(), source="q", source_kind=KIND)
    assert (report.read, report.ignored, report.bad) == (2, 1, [])
    [m] = messages
    assert (m.source, m.line, m.resource) == ("eventd", 2, "ganeti_vm/snf-1")


# ---------------------------------------------------------------------------- the fleet
#: ``gnt-instance add … --submit NAME`` as Ganeti answers it: the job is queued and its id
#: printed; ``snf-N`` gets job 10N, so the eventd messages below name the right jobs.
FAKE_GNT_INSTANCE = """#!/bin/sh
for last; do :; done
echo "JobID: 10${last#snf-}"
"""


@pytest.fixture
def cloud(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Iterator[Fleet]:
    """A journal with a Ganeti cluster (its master is this machine: the local backend runs
    a fake ``gnt-instance``) and ``snf-1``..``snf-3`` created on it: each in BUILD, its
    create job's id recorded."""
    for var in (CRASH_ENV, "FLEETLOG_SIM_WORLD", "FLEETLOG_JOURNAL", "FLEETLOG_MACHINES"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    tool = bin_dir / "gnt-instance"
    tool.write_text(FAKE_GNT_INSTANCE)
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    f = Fleet(tmp_path, monkeypatch, capsys)
    assert f.cli("add", "ganeti_cluster/gc1", "--param", "host=localhost").code == 0
    for i in (1, 2, 3):
        assert f.cli("add", f"{KIND}/snf-{i}", "--param", "cluster=gc1").code == 0
    res = f.cli("--backend", "local", "fire", f"{KIND}/snf-[1-3]", "create")
    assert res.code == 0, res.err
    yield f
    f.close()


def write(fleet: Fleet, name: str, lines: list[str]) -> str:
    path = fleet.root / name
    path.write_text("".join(lines))
    return str(path)


def observed(fleet: Fleet, rid: str) -> list[dict[str, Any]]:
    return [e.payload for e in fleet.events(rid) if e.type == "backend.observed"]


def journal_head(fleet: Fleet) -> tuple[int, str]:
    last = list(fleet.journal.read_all())[-1]
    return last.seq, last.hash


def stream() -> list[str]:
    """What the dispatcher's queue delivered, in delivery order: redeliveries, a late
    message, an instance this journal never created, a build that failed, a server
    deleted and then still talked about."""
    create_ok_1 = op_status(
        "snf-1",
        "OP_INSTANCE_CREATE",
        101,
        "success",
        T0 + 4,
        job_fields=create_fields(),
        result="snf-1",
        instance_nics=nics("aa:00:00:10:00:01", "192.0.2.11"),
        instance_disks=DISKS,
    )
    remove_3 = op_status("snf-3", "OP_INSTANCE_REMOVE", 107, "success", T0 + 30)
    resize = {"beparams": {"vcpus": 2, "maxmem": 2048}}
    return [
        "# snf-ganeti-eventd, as the dispatcher's queue delivered it\n",
        line(op_status("snf-1", "OP_INSTANCE_CREATE", 101, "running", T0 + 1,
                       job_fields=create_fields())),  # 2
        line(progress("snf-1", T0 + 2, rprogress=20.5)),  # 3
        line(progress("snf-1", T0 + 3, rprogress=100.0)),  # 4
        line(create_ok_1),  # 5: BUILD -> ACTIVE, NICs recorded
        line(create_ok_1),  # 6: redelivered
        line(op_status("snf-2", "OP_INSTANCE_CREATE", 102, "running", T0 + 2,
                       job_fields=create_fields())),  # 7
        line(op_status("snf-2", "OP_INSTANCE_CREATE", 102, "error", T0 + 5,
                       job_fields=create_fields(), logmsg="Failure: prerequisites not met",
                       result=["OpPrereqError", ["Not enough memory", "insufficient_resources"]])),
        line(op_status("snf-1", "OP_INSTANCE_SHUTDOWN", 104, "success", T0 + 10)),  # 9
        line(op_status("snf-1", "OP_INSTANCE_STARTUP", 105, "success", T0 + 8)),  # 10: late
        line(op_status("snf-1", "OP_INSTANCE_SET_PARAMS", 106, "running", T0 + 20,
                       job_fields=resize)),  # 11
        line(op_status("snf-1", "OP_INSTANCE_SET_PARAMS", 106, "success", T0 + 21,
                       job_fields=resize, instance_nics=nics("aa:00:00:10:00:01", "192.0.2.11"),
                       instance_disks=DISKS)),  # 12: the resize
        line(op_status("snf-3", "OP_INSTANCE_CREATE", 103, "success", T0 + 6,
                       job_fields=create_fields(),
                       instance_nics=nics("aa:00:00:10:00:03", "192.0.2.13"))),  # 13
        line(remove_3),  # 14: ACTIVE -> DELETED
        line(remove_3),  # 15: redelivered
        line(op_status("snf-3", "OP_INSTANCE_STARTUP", 109, "error", T0 + 40,
                       logmsg="Instance 'snf-3' not known")),  # 16: after the delete
        line(op_status("snf-99", "OP_INSTANCE_CREATE", 110, "success", T0 + 7)),  # 17
        line({"type": "ganeti-network-status", "operation": "OP_NETWORK_CONNECT",
              "network": "snf-net-1", "job_fields": {}, "event_time": [T0 + 9, 0],
              "status": "success", "cluster": "gnt.example.org", "logmsg": None,
              "jobId": 111}),  # 18
        line({"type": "eventd-heartbeat", "cluster": "gnt.example.org"}),  # 19
    ]  # fmt: skip


def test_an_eventd_stream_moves_the_fleet_once(cloud: Fleet) -> None:
    before = cloud.status()
    assert {rid: row["state"] for rid, row in before.items() if rid.startswith(KIND)} == {
        "ganeti_vm/snf-1": "BUILD",
        "ganeti_vm/snf-2": "BUILD",
        "ganeti_vm/snf-3": "BUILD",
    }
    assert [before[f"{KIND}/snf-{i}"]["params"]["job"] for i in (1, 2, 3)] == ["101", "102", "103"]
    path = write(cloud, "eventd.jsonl", stream())

    res = cloud.cli("ingest", path, "--ganeti-kind", KIND, "--json")
    assert res.code == 0, res.err
    report = res.json()
    assert report == {
        "read": 18,
        "applied": 11,
        "duplicates": 2,  # lines 6 and 15
        "out_of_order": 1,  # line 10: the startup before the shutdown, delivered after it
        "unknown": 1,
        "unknown_resources": ["ganeti_vm/snf-99"],
        "ignored": 2,  # a network's job, a heartbeat
        "moved": 5,  # snf-1 BUILD->ACTIVE->STOPPED, snf-2 ->ERROR, snf-3 ->ACTIVE->DELETED
        "attributes": 3,  # snf-1's NICs, snf-1's resize, snf-3's NICs
        "after_delete": 1,  # line 16
        "in_progress": 0,
        "bad": 0,
        "errors": [],
    }

    after = cloud.status()
    vm1, vm2, vm3 = (after[f"{KIND}/snf-{i}"] for i in (1, 2, 3))
    assert (vm1["state"], vm2["state"], vm3["state"]) == ("STOPPED", "ERROR", "DELETED")
    assert {k: vm1["params"][k] for k in ("vcpus", "ram", "macs", "ips", "networks", "disks")} == {
        "vcpus": "2",
        "ram": "2048",
        "macs": "aa:00:00:10:00:01",
        "ips": "192.0.2.11",
        "networks": "public",
        "disks": "10240",
    }
    assert (vm2["params"]["vcpus"], vm2["params"]["ram"], vm2["params"]["macs"]) == (
        "1",
        "1024",
        "",
    )
    assert vm3["params"]["macs"] == "aa:00:00:10:00:03"
    assert "ganeti_vm/snf-99" not in after and cloud.events("ganeti_vm/snf-99") == []

    # Each state change names the message that caused it; the progress is journaled.
    moves = [
        (e.payload["from"], e.payload["to"], e.payload["message"]["id"])
        for e in cloud.events(f"{KIND}/snf-1")
        if e.type == "state.reconciled"
    ]
    assert moves == [
        ("BUILD", "ACTIVE", "101/OP_INSTANCE_CREATE/success"),
        ("ACTIVE", "STOPPED", "104/OP_INSTANCE_SHUTDOWN/success"),
    ]
    resize = [e.payload for e in cloud.events(f"{KIND}/snf-1") if e.type == "attributes.set"][-1]
    assert resize["values"] == {"vcpus": "2", "ram": "2048"}
    assert resize["previous"] == {"vcpus": "1", "ram": "1024"}
    seen = observed(cloud, f"{KIND}/snf-1")
    assert [p["message_id"] for p in seen] == [
        "101/OP_INSTANCE_CREATE/running",
        "progress/2024-12-07T10:00:02.000000Z",
        "progress/2024-12-07T10:00:03.000000Z",
        "101/OP_INSTANCE_CREATE/success",
        "104/OP_INSTANCE_SHUTDOWN/success",
        "106/OP_INSTANCE_SET_PARAMS/running",
        "106/OP_INSTANCE_SET_PARAMS/success",
    ]
    assert [p["job"].get("progress") for p in seen[1:3]] == [20.5, 100.0]
    assert seen[1]["job"]["operation"] == "OP_INSTANCE_CREATE" and seen[1]["status"] is None
    [failed] = [p for p in observed(cloud, f"{KIND}/snf-2") if p["job"]["status"] == "error"]
    assert failed["job"]["logmsg"] == "Failure: prerequisites not met"
    assert failed["job"]["result"][0] == "OpPrereqError"
    assert cloud.cli("verify").code == 0

    # The same file again — in a process of its own, as a cron job would: nothing changes.
    head = journal_head(cloud)
    again = cloud.sub("ingest", path, "--ganeti-kind", KIND, "--json")
    assert again.code == 0, again.err
    second = json.loads(again.out)
    assert (second["applied"], second["moved"], second["attributes"]) == (0, 0, 0)
    assert (second["duplicates"], second["out_of_order"], second["after_delete"]) == (13, 1, 1)
    assert (second["unknown"], second["ignored"], second["read"]) == (1, 2, 18)
    assert journal_head(cloud) == head
    assert cloud.status() == after


GOOD = [
    line(op_status("snf-1", "OP_INSTANCE_CREATE", 101, "success", T0 + 1,
                   instance_nics=nics("aa:00:00:10:00:01", "192.0.2.11"))),
    line(op_status("snf-2", "OP_INSTANCE_CREATE", 102, "error", T0 + 2)),
]  # fmt: skip
_CREATE_3 = line(op_status("snf-3", "OP_INSTANCE_CREATE", 103, "success", T0 + 3))
#: A message cut short by a crashed writer: inside a string, or between two fields (its
#: brackets never close, so the lines after it cannot end it either).
CUTS = {
    "in a string": (_CREATE_3[: _CREATE_3.index("INSTANCE_CREATE")] + "\n", "unterminated string"),
    "between fields": (_CREATE_3[: _CREATE_3.index('"jobId"')] + "\n", "truncated message"),
}
AFTER = [
    line(op_status("snf-1", "OP_INSTANCE_SHUTDOWN", 104, "success", T0 + 4)),
    line(progress("snf-3", T0 + 5, rprogress=50.0)),
]


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_a_truncated_line_refuses_the_whole_file(cloud: Fleet, cut: str) -> None:
    truncated, problem = CUTS[cut]
    path = write(cloud, "cut.jsonl", [*GOOD, truncated, *AFTER])
    head = journal_head(cloud)
    res = cloud.cli("ingest", path, "--ganeti-kind", KIND)
    assert res.code == 2
    [err] = res.err.strip().splitlines()
    assert err.startswith(f"fleetlog: error: {path}:3: {problem}"), err
    assert journal_head(cloud) == head  # the good lines before it journaled nothing either


@pytest.mark.parametrize("cut", sorted(CUTS))
def test_skip_bad_reports_the_truncated_line_and_applies_every_other(
    cloud: Fleet, cut: str
) -> None:
    truncated, problem = CUTS[cut]
    path = write(cloud, "cut.jsonl", [*GOOD, truncated, *AFTER])
    res = cloud.cli("ingest", path, "--ganeti-kind", KIND, "--skip-bad", "--json")
    assert res.code == 1
    report = res.json()
    assert (report["read"], report["applied"], report["bad"]) == (4, 4, 1)
    [error] = report["errors"]
    assert error.startswith(f"{path}:3: {problem}")
    assert f"fleetlog: error: {error}" in res.err.splitlines()
    states = {rid: row["state"] for rid, row in cloud.status().items()}
    assert states[f"{KIND}/snf-1"] == "STOPPED"  # line 4, after the bad one
    assert states[f"{KIND}/snf-2"] == "ERROR"
    assert states[f"{KIND}/snf-3"] == "BUILD"  # its create success was the truncated line
    assert [p["job"]["progress"] for p in observed(cloud, f"{KIND}/snf-3")] == [50.0]


def test_a_message_without_event_time_is_refused_with_its_line(cloud: Fleet) -> None:
    untimed = op_status("snf-1", "OP_INSTANCE_SHUTDOWN", 104, "success", T0)
    del untimed["event_time"]
    path = write(cloud, "untimed.jsonl", [*GOOD, line(untimed)])
    head = journal_head(cloud)
    res = cloud.cli("ingest", path, "--ganeti-kind", KIND)
    assert res.code == 2
    [err] = res.err.strip().splitlines()
    assert err == (
        f"fleetlog: error: {path}:3: ganeti-op-status message for 'snf-1' without 'event_time'"
    )
    assert journal_head(cloud) == head
