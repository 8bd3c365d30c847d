"""The built-in pack's Ganeti ingest source: job results map per Synnefo."""

from __future__ import annotations

import pytest

from fleetlog.machines.ganeti import ganeti_instance_status, ganeti_messages


@pytest.mark.parametrize(
    ("config", "run", "status"),
    [
        ("up", "up", "running"),
        ("up", "down", "ERROR_down"),
        ("down", "up", "ERROR_up"),
        ("down", "down", "ADMIN_down"),
        ("offline", "down", "ADMIN_offline"),
    ],
)
def test_ganeti_instance_status_is_admin_state_times_run_state(
    config: str, run: str, status: str
) -> None:
    assert ganeti_instance_status({"config_state": config, "run_state": run}) == status


def _job(op: str, opstatus: str, status: str = "success") -> dict[str, object]:
    return {
        "id": "7",
        "status": status,
        "ops": [{"OP_ID": op, "instance_name": "g1"}],
        "opstatus": [opstatus],
        "opresult": [None],
        "end_ts": [1700000000, 5],
    }


@pytest.mark.parametrize(
    ("op", "opstatus", "status"),
    [
        ("OP_INSTANCE_CREATE", "success", "running"),  # CREATE -> STARTED (ACTIVE)
        ("OP_INSTANCE_STARTUP", "success", "running"),
        ("OP_INSTANCE_REBOOT", "success", "running"),
        ("OP_INSTANCE_SHUTDOWN", "success", "ADMIN_down"),  # SHUTDOWN -> STOPPED
        ("OP_INSTANCE_REMOVE", "success", "removed"),  # REMOVE -> DESTROYED
        ("OP_INSTANCE_CREATE", "error", "ERROR_down"),  # CREATE error -> ERROR
        ("OP_INSTANCE_CREATE", "canceled", "ERROR_down"),
    ],
)
def test_ganeti_job_results_map_per_synnefo(op: str, opstatus: str, status: str) -> None:
    [m], ignored = ganeti_messages(_job(op, opstatus), 1, "vm")
    assert (m.resource, m.status, ignored) == ("vm/g1", status, 0)
    assert m.event_time == "2023-11-14T22:13:20.000005Z"


def test_unfinished_or_failed_non_create_jobs_say_nothing() -> None:
    assert ganeti_messages(_job("OP_INSTANCE_STARTUP", "running", "running"), 1, "vm") == ([], 1)
    assert ganeti_messages(_job("OP_INSTANCE_SHUTDOWN", "error", "error"), 1, "vm") == ([], 1)
