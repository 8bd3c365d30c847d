"""component (CORTX Hare's mini-provisioner, specification 20/MINIPROV) on the sim:
every stage end to end and idempotent, the exported setup.yaml driving fleetlog, and
check-idempotent catching a deliberately non-idempotent machine."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fleetlog.machines.provisioner import check_idempotent, stages_of
from tests.machines.twin import Twin, twin_fixture  # noqa: F401

URL = "json:///tmp/exampleV2.json"
REPO = Path(__file__).resolve().parents[2]
ORDER = ["post_install", "prepare", "config", "init", "start", "test", "reset", "upgrade"]


def cli(journal: str, *args: str) -> tuple[int, str, str]:
    """The real ``fleetlog`` CLI in-process (the built-in pack adds ``provisioner``)."""
    import contextlib
    import io

    from fleetlog.engine.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["--journal", journal, *args])
    return code, out.getvalue(), err.getvalue()


def test_every_stage_in_order(twin: Twin) -> None:
    twin.add("component/hare")
    for stage in ORDER:
        params = {"config": URL} if stage != "test" else {"config": URL, "plan": "sanity"}
        out = twin.fire("component/hare", stage, **params)
        assert out.status == "completed", (stage, out)
    assert twin.state("component/hare") == "started"
    hare = twin.host("hare")
    assert hare["hare"]["running"] is True
    assert "/var/log/hare/test-sanity.log" not in hare["fs"]  # reset removed it
    assert twin.fire("component/hare", "support_bundle").state == "started"
    assert "/tmp/hare/hare_hare.tar.gz" in twin.host("hare")["fs"]
    out = twin.fire("component/hare", "cleanup", config=URL)
    assert (out.status, out.state) == ("completed", "installed")
    assert twin.host("hare")["hare"]["running"] is False


@pytest.mark.parametrize("stage", [*ORDER, "cleanup", "support_bundle"])
def test_every_stage_is_idempotent(twin: Twin, stage: str) -> None:
    twin.add("component/hare")
    rec = twin.runner.load("component/hare")
    report = check_idempotent(twin.registry, rec, stage, {"config": URL}, sleep=lambda s: None)
    assert report.problem() is None
    assert report.ok and report.second.effects == []


def test_a_bad_config_url_fails_the_stage_with_a_nonzero_exit(twin: Twin) -> None:
    twin.add("component/hare")
    code, out, err = cli(
        twin.journal_path,
        "provisioner",
        "stage",
        "component/hare",
        "post_install",
        "--config",
        "http://nowhere/x.json",
    )
    assert code == 1, (out, err)
    assert "unsupported ConfStore URL" in out + err


def test_exported_setup_yaml_drives_fleetlog(twin: Twin, tmp_path: Path) -> None:
    twin.add("component/hare")
    path = tmp_path / "setup.yaml"
    code, _out, err = cli(
        twin.journal_path, "provisioner", "export", "component/hare", "-o", str(path)
    )
    assert code == 0, err
    text = path.read_text()
    jpath = str(Path(twin.journal_path).resolve())
    assert text.splitlines()[2:6] == [
        "hare:",
        "  post_install:",
        "    cmd: fleetlog",
        f"    args: --journal {jpath} --backend sim provisioner stage component/hare "
        "post_install --config $URL",
    ]
    assert text.endswith(
        "support_bundle:\n"
        f"  - fleetlog --journal {jpath} --backend sim provisioner stage component/hare "
        "support_bundle\n"
    )
    yaml = pytest.importorskip("yaml")
    data = yaml.safe_load(text)
    assert set(data) == {"hare", "support_bundle"}
    kind = twin.registry.get("component")
    assert list(data["hare"]) == stages_of(kind)
    # the mini-provisioner runs each stage: cmd + args with $URL replaced
    for stage in ["post_install", "prepare", "config", "init", "start", "test"]:
        entry = data["hare"][stage]
        assert entry["cmd"] == "fleetlog"
        argv = shlex.split(entry["args"].replace("$URL", URL))
        code, out, err = cli(*argv[1:2], *argv[2:])
        assert code == 0, (stage, out, err)
        # contract: applied twice in a row, the second run succeeds too
        code, out, err = cli(*argv[1:2], *argv[2:])
        assert code == 0, (stage, out, err)
    assert twin.state("component/hare") == "started"
    bundle = shlex.split(data["support_bundle"][0])
    assert cli(*bundle[2:3], *bundle[3:])[0] == 0


def test_check_idempotent_cli_passes_for_a_hare_stage(twin: Twin) -> None:
    twin.add("component/hare")
    code, out, err = cli(
        twin.journal_path,
        "provisioner",
        "check-idempotent",
        "component/hare",
        "init",
        "--config",
        URL,
    )
    assert code == 0, err
    assert "idempotent" in out
    # the user's journal and world were not touched: only the resource's creation
    assert [e.type for e in twin.events("component/hare")] == ["resource.created"]


def test_check_idempotent_cli_fails_a_non_idempotent_stage(
    twin: Twin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    machines = tmp_path / "machines"
    machines.mkdir()
    (machines / "leaky.fsm").write_text(
        'machine leaky "a stage that adds to a counter every time" {\n'
        "    initial state installed\n"
        "    state configured\n"
        "    transition config(config: str) : installed, configured -> configured {\n"
        '        step count run "counter {name}"\n'
        "    }\n"
        "}\n"
    )
    monkeypatch.setenv("FLEETLOG_MACHINES", str(machines))
    journal = str(tmp_path / "leaky.db")
    assert cli(journal, "add", "leaky/one")[0] == 0
    code, out, err = cli(
        journal, "provisioner", "check-idempotent", "leaky/one", "config", "--config", URL
    )
    assert code == 1, (out, err)
    assert "leaky/one config is not idempotent" in err
    assert "counter one = 2" in err
