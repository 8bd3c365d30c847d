"""Before the first side effect: every secret a transition (and the transitions its
``ensure`` steps would start) reads, and every host the local backend would be asked to
reach, is checked by ``fire``, ``fire --dry-run`` and ``fire --submit`` alike. A command
refused here journals nothing and runs nothing, and its message names the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetlog.machines.sim.scenarios import exascale_rack
from tests.engine.conftest import Fleet

WALLET = "FLEETLOG_SECRET_WALLET_PASSWORD"

CHILD = """
machine vault {
    param host: str = "h1"
    secret token
    initial state sealed
    state open
    transition unseal : sealed -> open {
        step key run "counter {token}"
    }
}
"""

PARENT = """
machine app {
    param host: str = "h1"
    param vault: ref vault
    param cloud: bool = false
    secret pw
    initial state new
    state ready
    transition deploy : new -> ready {
        step first  run "counter first"
        step unseal ensure vault is open via unseal
        step login  run "counter {pw}" when cloud
        step last   run "counter last"
    }
}
"""


@pytest.fixture
def apps(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "vault.fsm").write_text(CHILD)
    (d / "app.fsm").write_text(PARENT)
    fleet.use_machines(d)
    assert fleet.cli("add", "vault/v1").code == 0
    assert fleet.cli("add", "app/a1", "--param", "vault=v1").code == 0
    return fleet


def nothing_happened(fleet: Fleet, *rids: str) -> None:
    for rid in rids:
        assert [e.type for e in fleet.events(rid)] == ["resource.created"], rid
    assert fleet.effects() == {}


def test_configure_exascale_without_its_secret_runs_no_step(fleet: Fleet) -> None:
    """The issue's case: eight steps ran before `wallet` failed on the missing secret."""
    fleet.monkeypatch.delenv(WALLET, raising=False)
    exascale_rack(fleet.sim.world)
    assert fleet.cli("add", "kvm_host/node3", "--param", "host=node3").code == 0
    for extra in ((), ("--dry-run",), ("--submit",)):
        res = fleet.cli("fire", "kvm_host/node3", "configure_exascale", *extra)
        assert res.code == 2, (extra, res.out, res.err)
        assert res.err.strip() == (
            "fleetlog: error: kvm_host/node3 configure_exascale: nothing was run: secret "
            "'wallet_password' (step wallet) is not set: export "
            "FLEETLOG_SECRET_WALLET_PASSWORD (secrets are read from the environment, never "
            "stored in the journal)"
        )
    assert [e.type for e in fleet.events("kvm_host/node3")] == ["resource.created"]
    assert fleet.sim.world.log_entries(host="node3") == []
    assert fleet.cli("backend", "show").out.startswith("not bound yet")  # nothing ran
    # With the secret, the same command runs to the end.
    fleet.monkeypatch.setenv(WALLET, "s3cret")
    res = fleet.cli("fire", "kvm_host/node3", "configure_exascale")
    assert res.code == 0, res.err
    assert fleet.status()["kvm_host/node3"]["state"] == "exascale_ready"


def test_secrets_of_an_ensured_transition_are_checked_too(apps: Fleet) -> None:
    apps.monkeypatch.setenv("FLEETLOG_SECRET_PW", "app-pa55")
    apps.monkeypatch.delenv("FLEETLOG_SECRET_TOKEN", raising=False)
    res = apps.cli("fire", "app/a1", "deploy")
    assert res.code == 2, res.err
    assert "secret 'token' (step key of vault/v1 unseal) is not set" in res.err
    assert "export FLEETLOG_SECRET_TOKEN" in res.err
    nothing_happened(apps, "app/a1", "vault/v1")


def test_a_secret_read_only_by_a_step_whose_guard_is_false_is_not_needed(apps: Fleet) -> None:
    apps.monkeypatch.delenv("FLEETLOG_SECRET_PW", raising=False)
    apps.monkeypatch.setenv("FLEETLOG_SECRET_TOKEN", "vault-tok3n")
    res = apps.cli("fire", "app/a1", "deploy")  # `login` runs only when cloud
    assert res.code == 0, res.err
    assert apps.status()["app/a1"]["state"] == "ready"
    # In the cloud it would run: then the secret is needed, and both are named at once.
    apps.monkeypatch.delenv("FLEETLOG_SECRET_TOKEN")
    assert apps.cli("add", "vault/v2").code == 0
    assert apps.cli("add", "app/a2", "--param", "vault=v2", "--param", "cloud=true").code == 0
    res = apps.cli("fire", "app/a2", "deploy", "--dry-run")
    assert res.code == 2
    assert (
        "secrets 'token' (step key of vault/v2 unseal), 'pw' (step login) are not set: "
        "export FLEETLOG_SECRET_TOKEN, FLEETLOG_SECRET_PW"
    ) in res.err
    assert [e.type for e in apps.events("app/a2")] == ["resource.created"]


def test_an_ensure_whose_target_is_already_there_needs_nothing_of_it(apps: Fleet) -> None:
    apps.monkeypatch.setenv("FLEETLOG_SECRET_TOKEN", "vault-tok3n")
    assert apps.cli("fire", "vault/v1", "unseal").code == 0
    apps.monkeypatch.delenv("FLEETLOG_SECRET_TOKEN")
    apps.monkeypatch.setenv("FLEETLOG_SECRET_PW", "app-pa55")
    res = apps.cli("fire", "app/a1", "deploy")
    assert res.code == 0, res.err


def test_a_fan_out_missing_a_secret_journals_no_plan(apps: Fleet) -> None:
    apps.monkeypatch.delenv("FLEETLOG_SECRET_TOKEN", raising=False)
    for rid in ("vault/v2", "vault/v3"):
        assert apps.cli("add", rid).code == 0
    res = apps.cli("fire", "vault/v[1-3]", "unseal")
    assert res.code == 2, (res.out, res.err)
    assert "secret 'token' (step key) is not set" in res.err
    assert not [e for e in apps.events() if e.stream.startswith("plan/")]
    nothing_happened(apps, "vault/v1", "vault/v2", "vault/v3")


# ------------------------------------------------------------------ the local backend
NOHOST = """
machine job {
    initial state new
    state done
    transition run : new -> done {
        step hello run "true"
    }
}
"""

ON_REF = """
machine probe {
    param host: str = "localhost"
    param peer: ref job
    initial state new
    state done
    transition ping : new -> done {
        step here  run "true"
        step there run "true" on peer
    }
}
"""


@pytest.fixture
def local(fleet: Fleet) -> Fleet:
    d = fleet.root / "machines"
    d.mkdir()
    (d / "job.fsm").write_text(NOHOST)
    (d / "probe.fsm").write_text(ON_REF)
    fleet.use_machines(d)
    return fleet


def test_local_without_a_host_param_says_to_declare_one(local: Fleet) -> None:
    assert local.cli("add", "job/build1").code == 0
    res = local.cli("--backend", "local", "fire", "job/build1", "run")
    assert res.code == 2
    fsm = Path(local.machines[0]) / "job.fsm"
    assert res.err.strip() == (
        "fleetlog: error: job/build1 run: nothing was run: the local backend runs commands "
        "only on this machine (localhost), but step hello would run on 'build1' (a step "
        "without `on` runs on the resource's `host` param, else on its name): declare "
        f'`param host: str = "localhost"` in machine job ({fsm}) and add the resource '
        "again, or use --backend ssh to reach 'build1'"
    )
    assert [e.type for e in local.events("job/build1")] == ["resource.created"]
    # Refused before the first start: the journal is not bound to local by it.
    assert local.cli("backend", "show").out.startswith("not bound yet")
    # A resource named for this machine runs here (the rule's "else on its name").
    assert local.cli("add", "job/localhost").code == 0
    assert local.cli("--backend", "local", "fire", "job/localhost", "run").code == 0


def test_local_with_a_remote_host_param_says_to_give_localhost(local: Fleet) -> None:
    assert local.cli("add", "job/localhost").code == 0
    added = local.cli("add", "probe/p1", "--param", "host=web1", "--param", "peer=localhost")
    assert added.code == 0
    res = local.cli("--backend", "local", "fire", "probe/p1", "ping", "--dry-run")
    assert res.code == 2
    assert "but step here would run on 'web1'" in res.err
    assert "create the resource with --param host=localhost (`fleetlog add probe/NAME" in res.err


def test_local_with_on_names_the_referenced_host(local: Fleet) -> None:
    assert local.cli("add", "job/n7").code == 0
    assert local.cli("add", "probe/p2", "--param", "peer=n7").code == 0
    res = local.cli("--backend", "local", "fire", "probe/p2", "ping")
    assert res.code == 2
    assert (
        "but step there would run on 'n7': it runs `on peer`, the host of the resource "
        "peer names; use --backend ssh to reach 'n7'"
    ) in res.err
