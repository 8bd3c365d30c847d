"""A journal remembers the backend it runs steps on: forgetting ``--backend`` never moves
real work to the simulator, and a transition resumes only where it started.

On the real ``local`` backend: its effects are files, so "it ran here" and "it ran
nowhere" can be told apart from outside fleetlog."""

from __future__ import annotations

from pathlib import Path

from tests.engine.conftest import CRASH_ENV, Fleet
from tests.faults.conftest import machines

JOB = """
machine ljob {
    param host: str = "localhost"
    param dir: str
    initial state new
    state done
    transition go : new -> done {
        step touch run "touch {dir}/{name}"
        step tail  run "touch {dir}/{name}.tail" idempotent
    }
}
"""


def test_a_forgotten_backend_flag_uses_the_journals_backend(
    sqlite_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = sqlite_fleet
    machines(fleet, ljob=JOB)
    out = tmp_path / "effects"
    out.mkdir()
    for name in "abcd":
        assert fleet.cli("add", f"ljob/{name}", "--param", f"dir={out}").code == 0
    first = fleet.cli("--backend", "local", "fire", "ljob/a", "go")
    assert first.code == 0, first.err
    assert (out / "a").exists() and "simulated" not in first.err

    forgot = fleet.cli("fire", "ljob/b", "go")  # no --backend: the journal's, not sim
    assert forgot.code == 0, forgot.err
    assert (out / "b").exists() and "simulated" not in forgot.err
    assert not Path(fleet.journal_path + ".sim").exists()  # the simulator never ran
    assert fleet.cli("backend", "show", "--json").json()["backend"] == "local"

    head = fleet.journal.head()
    elsewhere = fleet.cli("--backend", "sim", "fire", "ljob/c", "go")
    assert elsewhere.code == 2
    assert "bound to the local backend" in elsewhere.err
    assert "fleetlog backend set sim" in elsewhere.err
    assert fleet.journal.head() == head and not (out / "c").exists()


def test_a_transition_resumes_only_on_the_backend_it_started_on(
    sqlite_fleet: Fleet, tmp_path: Path
) -> None:
    fleet = sqlite_fleet
    machines(fleet, ljob=JOB)
    out = tmp_path / "effects"
    out.mkdir()
    assert fleet.cli("add", "ljob/d", "--param", f"dir={out}").code == 0
    # killed right after `touch` succeeded was held with tail's step.started
    killed = fleet.sub("--backend", "local", "fire", "ljob/d", "go", **{CRASH_ENV: "5"})
    assert killed.code == -9
    [started] = [e for e in fleet.events("ljob/d") if e.type == "transition.started"]
    assert (started.payload["backend"], started.payload["host"]) == ("local", "localhost")

    moved = fleet.cli("backend", "set", "sim", "--reason", "rehearsing on the twin")
    assert moved.code == 0 and "bound to sim (was local)" in moved.out
    refused = fleet.cli("resume", "ljob/d")
    assert refused.code == 2
    assert "started on the local backend (localhost)" in refused.err
    assert fleet.status()["ljob/d"]["in_progress"] is not None

    assert fleet.cli("backend", "set", "local", "--reason", "back to the rack").code == 0
    resumed = fleet.cli("resume", "ljob/d")
    assert resumed.code == 0, resumed.err
    assert (out / "d").exists() and (out / "d.tail").exists()
    history = fleet.cli("backend", "show", "--json").json()["history"]
    assert [h["backend"] for h in history] == ["local", "sim", "local"]
    assert [h["reason"] for h in history][1:] == ["rehearsing on the twin", "back to the rack"]


def test_steps_the_simulator_ran_say_so(sqlite_fleet: Fleet) -> None:
    fleet = sqlite_fleet
    assert fleet.cli("add", "kvm_host/node3", "--param", "host=node3").code == 0
    ran = fleet.cli("fire", "kvm_host/node3", "validate")
    assert "simulated datacenter" in ran.err and "no real host was contacted" in ran.err
    assert fleet.cli("backend", "show", "--json").json()["backend"] == "sim"
