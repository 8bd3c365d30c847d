"""Ganeti's listing formats, read as Ganeti prints them (``man gnt-instance``,
``man gnt-job``, the RAPI documentation) and as the simulated cluster prints them: the
same cluster read through ``gnt-instance list`` and through the RAPI gives the same
resources."""

from __future__ import annotations

import json

import pytest

from fleetlog.engine.backends.sim import SimBackend
from fleetlog.engine.model.listing import FormatOptions, formats
from fleetlog.machines.ganeti_listing import (
    INSTANCES,
    JOBS,
    RAPI_INSTANCES,
    RAPI_JOBS,
    mebibytes,
)
from fleetlog.machines.sim import scenarios as sc

FIELDS = "name,status,oper_state,be/vcpus,be/maxmem,disk.sizes,nic.macs,nic.ips,nic.networks,pnode"
PIPE = FormatOptions(tuple(FIELDS.split(",")), "|")


def test_the_pack_declares_all_four_formats() -> None:
    found = formats()
    for fmt in (INSTANCES, JOBS, RAPI_INSTANCES, RAPI_JOBS):
        assert found[fmt.name] is fmt


def test_separator_output_with_mib_lists_and_missing_ips() -> None:
    text = (
        "snf-1|running|Y|2|2048|10240,2048|aa:00:00:00:00:01,aa:00:00:00:00:02|"
        "10.0.0.5,None|public,private|node1.example.com\n"
        "snf-2|ADMIN_down|N|1|512|10240|||| node2.example.com\n"
    )
    one, two = INSTANCES.resources(text, PIPE)
    assert (one.name, one.status, one.host) == ("snf-1", "running", "node1.example.com")
    assert one.fields["oper_state"] is True and one.fields["be/vcpus"] == 2
    assert one.fields["disk.sizes"] == [10240, 2048]
    assert one.fields["nic.ips"] == ["10.0.0.5", None]
    assert two.fields["oper_state"] is False and two.fields["nic.macs"] == []


def test_a_node_that_does_not_answer_makes_the_row_unknown_not_absent() -> None:
    """Ganeti prints ``?`` (no data), ``*`` (offline), ``??`` (unknown), ``-``
    (unavailable), or their ``--verbose`` words, for values it could not get."""
    text = "snf-1|?|?|1|1024|10240|aa:00:00:00:00:01|None|public|node2\n"
    text += "snf-2|(offline)|*|1|1024|10240|aa:00:00:00:00:02|None|public|node3\n"
    text += "snf-3|ERROR_nodedown|?|1|1024|10240|aa:00:00:00:00:03|None|public|node2\n"
    a, b, c = INSTANCES.resources(text, PIPE)
    assert (a.status, b.status) == (None, None) and a.unknown and b.unknown
    assert (c.status, c.fields["oper_state"]) == ("ERROR_nodedown", None)


def test_the_default_human_readable_table_from_the_man_page() -> None:
    text = (
        "Instance          Hypervisor OS          Primary_node      Status  Memory\n"
        "instance1.example xen-pvm    debootstrap node1.example     running 128M\n"
        "instance2.example xen-pvm    debootstrap node2.example     ADMIN_down 1.5G\n"
    )
    opts = FormatOptions(("name", "hypervisor", "os", "pnode", "status", "be/maxmem"))
    one, two = INSTANCES.resources(text, opts)  # the header row is skipped
    assert (one.name, one.fields["be/maxmem"], two.fields["be/maxmem"]) == (
        "instance1.example",
        128,
        1536,
    )


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("snf-1|running|Y\n", "line 1: 3 field(s), expected 10"),
        ("snf-1|running|maybe|1|1024|10240|m|None|n|node1\n", "'maybe' is not Y or N"),
        ("snf-1|running|Y|one|1024|10240|m|None|n|node1\n", "line 1"),
        ("snf-1|running|Y|1|lots|10240|m|None|n|node1\n", "'lots' is not a size"),
        ("|running|Y|1|1024|10240|m|None|n|node1\n", "no instance name"),
    ],
)
def test_unreadable_rows_refuse_the_whole_listing(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        INSTANCES.resources(text, PIPE)


def test_sizes_in_every_unit_ganeti_prints() -> None:
    assert [mebibytes(t) for t in ("10240", "512M", "1.0G", "1.5T")] == [
        10240,
        512,
        1024,
        1572864,
    ]


def test_gnt_job_list_with_timestamps_and_summaries() -> None:
    text = (
        "17|success|INSTANCE_CREATE(snf-1)|2026-01-02 03:04:05.123456|"
        "2026-01-02 03:04:06.000001|2026-01-02 03:05:00.5\n"
        "18|running|INSTANCE_REBOOT(snf-1)|2026-01-02 03:06:00.000000|"
        "2026-01-02 03:06:01.000000|-\n"
        "19|error|INSTANCE_CREATE(snf-2),TAGS_SET(snf-2)|2026-01-02 03:07:00|-|-\n"
    )
    cols = ("id", "status", "summary", "received_ts", "start_ts", "end_ts")
    done, running, failed = JOBS.jobs(text, FormatOptions(cols, "|"))
    assert (done.id, done.outcome, done.ops) == ("17", "success", ("INSTANCE_CREATE(snf-1)",))
    assert done.ended == "2026-01-02T03:05:00.500000Z"
    assert (running.outcome, running.ended, running.final) == ("pending", None, False)
    assert failed.ops == ("INSTANCE_CREATE(snf-2)", "TAGS_SET(snf-2)")
    with pytest.raises(ValueError, match="unknown status 'lost'"):
        JOBS.jobs("20|lost|X\n", FormatOptions(("id", "status", "summary"), "|"))


#: The RAPI documentation's ``GET /2/instances?bulk=1`` item (older clusters report
#: ``admin_state`` as a boolean).
RAPI_DOC_INSTANCE = {
    "status": "running",
    "disk_usage": 20480,
    "nic.bridges": ["xen-br0"],
    "name": "web.example.com",
    "tags": ["debian"],
    "beparams": {"vcpus": 2, "memory": 512},
    "disk.sizes": [20480],
    "pnode": "node1.example.com",
    "nic.macs": ["01:23:45:67:89:01"],
    "snodes": ["node2.example.com"],
    "disk_template": "drbd",
    "admin_state": True,
    "os": "debian-etch",
    "oper_state": True,
}


def test_rapi_bulk_instances_as_documented() -> None:
    [web] = RAPI_INSTANCES.resources(json.dumps([RAPI_DOC_INSTANCE]), FormatOptions())
    assert (web.name, web.status, web.host) == ("web.example.com", "running", "node1.example.com")
    assert web.fields["be/vcpus"] == 2 and web.fields["disk.sizes"] == [20480]
    [down] = RAPI_INSTANCES.resources(
        json.dumps([{**RAPI_DOC_INSTANCE, "status": None}]), FormatOptions()
    )
    assert down.status is None and down.unknown


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ('[{"id": "web", "uri": "/2/instances/web"}]', "bulk=1"),
        ('{"name": "web"}', "expected a JSON list"),
        ('[{"name": "web", "status": 3}]', "not a string"),
        ("[{", "not JSON"),
    ],
)
def test_rapi_listings_that_say_nothing_are_refused(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        RAPI_INSTANCES.resources(text, FormatOptions())


def test_rapi_bulk_jobs_as_documented() -> None:
    job = {
        "id": "2",
        "status": "success",
        "ops": [{"OP_ID": "OP_INSTANCE_CREATE", "instance_name": "snf-1"}],
        "summary": ["INSTANCE_CREATE(snf-1)"],
        "opstatus": ["success"],
        "received_ts": [1767323045, 123456],
        "start_ts": [1767323046, 0],
        "end_ts": [1767323100, 500000],
    }
    [parsed] = RAPI_JOBS.jobs(json.dumps([job]), FormatOptions())
    assert (parsed.id, parsed.outcome, parsed.ops) == ("2", "success", ("OP_INSTANCE_CREATE",))
    assert parsed.ended == "2026-01-02T03:05:00.500000Z"
    with pytest.raises(ValueError, match="bulk=1"):
        RAPI_JOBS.jobs('[{"id": 2, "uri": "/2/jobs/2"}]', FormatOptions())


def test_the_sims_command_and_rapi_listings_agree(tmp_path: object) -> None:
    sim = SimBackend(None)
    sc.ganeti_cluster(sim.world, "gnt1", nodes=("gnt1", "gnt2"))
    sc.ganeti_instance(sim.world, "gnt1", "snf-1", vcpus=2, maxmem=2048, disks=(10240, 512))
    sc.ganeti_instance(sim.world, "gnt1", "snf-2", admin="down", running=False, pnode="gnt2")
    sc.ganeti_instance(sim.world, "gnt1", "snf-3", nics=({"network": "lan", "ip": None},))
    sc.ganeti_node(sim.world, "gnt1", "gnt2", "down")
    listed = sim.run("gnt1", f"gnt-instance list --no-headers --separator='|' -o {FIELDS}")
    rapi = sim.run("gnt1", "curl -s 'https://localhost:5080/2/instances?bulk=1'")
    assert listed.exit_code == rapi.exit_code == 0
    from_cli = {r.name: r for r in INSTANCES.resources(listed.stdout, PIPE)}
    from_rapi = {r.name: r for r in RAPI_INSTANCES.resources(rapi.stdout, FormatOptions())}
    assert set(from_cli) == set(from_rapi) == {"snf-1", "snf-2", "snf-3"}
    for name, row in from_cli.items():
        other = from_rapi[name]
        assert (row.status, row.host) == (other.status, other.host)
        for f in PIPE.columns:
            assert row.fields[f] == other.fields[f], (name, f)
    assert from_cli["snf-2"].status == "ERROR_nodedown"
    assert from_cli["snf-3"].fields["nic.ips"] == [None]
    human = sim.run("gnt1", "gnt-instance list -o name,status,be/maxmem")
    assert human.stdout.splitlines()[0].split() == ["Instance", "Status", "ConfigMaxMem"]
    assert "2.0G" in human.stdout
    jobs_cli = sim.run("gnt1", "gnt-job list --no-headers --separator='|' -o id,status")
    assert jobs_cli.stdout == ""  # no job ran: instances made behind fleetlog's back
