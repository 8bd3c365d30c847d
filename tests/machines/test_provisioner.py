"""engine.provisioner on machines compiled from text: setup.yaml writing, the path to a
stage, and check_idempotent's verdicts (idempotent, changes the world, fails twice,
fails once, cannot be reached)."""

from __future__ import annotations

import json

import pytest

from fleetlog import dsl
from fleetlog.engine.model import Kind, KindRegistry, Resource
from fleetlog.errors import UsageError
from fleetlog.machines.provisioner import (
    IdempotencyReport,
    NotIdempotent,
    check_idempotent,
    path_to,
    setup_yaml,
    stages_of,
    yaml_scalar,
)

STAGED = """
machine staged "stages" {
    param component: str = "demo"
    initial state installed
    state configured
    state started
    transition post_install(config: str) : installed -> installed
    transition config(config: str) : installed, configured -> configured {
        step flag run "touch_flag configured" idempotent check "flag configured"
    }
    transition start(config: str) : configured, started -> started {
        step start run "touch_flag started" idempotent
    }
    transition leak(config: str) : started -> started {
        step leak run "counter leaks"
    }
    transition broken(config: str) : started -> started {
        step broken run "fail boom"
    }
    transition support_bundle : started -> started
}
"""
PLAIN = """
machine plain "no stages" {
    initial state a
    state b
    transition go : a -> b
}
"""


def kinds(*sources: str) -> KindRegistry:
    specs = [dsl.compile_source(s, f"<t{i}>")[0] for i, s in enumerate(sources)]
    return KindRegistry(Kind(s) for s in specs)


def resource(kind: str, name: str, **params: object) -> Resource:
    return Resource(f"{kind}/{name}", kind, name, "installed", dict(params))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fleetlog", "fleetlog"),
        (
            "--journal /j.db provisioner stage c/x init --config $URL",
            "--journal /j.db provisioner stage c/x init --config $URL",
        ),
        ("true", '"true"'),
        ("1.5", '"1.5"'),
        ("a: b", '"a: b"'),
        ("x #comment", '"x #comment"'),
        ("- item", '"- item"'),
        ("", '""'),
        ('say "hi"', '"say \\"hi\\""'),
    ],
)
def test_yaml_scalar(text: str, expected: str) -> None:
    assert yaml_scalar(text) == expected
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(f"k: {yaml_scalar(text)}") == {"k": text}


def test_setup_yaml_lists_the_kinds_stages_and_the_support_bundle() -> None:
    reg = kinds(STAGED)
    rec = resource("staged", "one", component="demo")
    text = setup_yaml(
        rec, reg.get("staged"), "/var/lib/j.db", backend="ssh", fleetlog_cmd="/usr/bin/fleetlog"
    )
    base = "--journal /var/lib/j.db --backend ssh provisioner stage staged/one"
    assert text.splitlines()[2:] == [
        "demo:",
        "  post_install:",
        "    cmd: /usr/bin/fleetlog",
        f"    args: {base} post_install --config $URL",
        "  config:",
        "    cmd: /usr/bin/fleetlog",
        f"    args: {base} config --config $URL",
        "  start:",
        "    cmd: /usr/bin/fleetlog",
        f"    args: {base} start --config $URL",
        "support_bundle:",
        f"  - /usr/bin/fleetlog {base} support_bundle",
    ]
    assert stages_of(reg.get("staged")) == ["post_install", "config", "start"]


def test_setup_yaml_quotes_a_journal_path_with_spaces() -> None:
    reg = kinds(STAGED)
    text = setup_yaml(resource("staged", "one"), reg.get("staged"), "/tmp/my j.db", backend="sim")
    line = next(ln for ln in text.splitlines() if "args:" in ln)
    value = line.split("args: ", 1)[1]
    assert value.startswith('"') and json.loads(value).startswith("--journal '/tmp/my j.db'")


def test_setup_yaml_needs_stages() -> None:
    reg = kinds(PLAIN)
    with pytest.raises(UsageError, match="none of the mini-provisioner's stages"):
        setup_yaml(resource("plain", "p"), reg.get("plain"), "j.db", backend="sim")


def test_path_to_a_stage() -> None:
    k = kinds(STAGED).get("staged")
    assert path_to(k, "config") == []
    assert path_to(k, "post_install") == []
    assert path_to(k, "start") == ["config"]
    assert path_to(k, "leak") == ["config", "start"]
    with pytest.raises(UsageError):
        path_to(k, "nope")


def check(stage: str) -> IdempotencyReport:
    reg = kinds(STAGED)
    return check_idempotent(
        reg, resource("staged", "one"), stage, {"config": "json:///c"}, sleep=lambda s: None
    )


def test_an_idempotent_stage_passes() -> None:
    report = check("start")
    assert report.problem() is None and report.ok
    assert report.prerequisites == ["config"]
    assert report.first.effects == ["one: flag started set"]
    assert report.second.effects == [] and report.second.changed_hosts == []


def test_a_stage_that_changes_the_world_again_fails() -> None:
    report = check("leak")
    assert not report.ok
    problem = report.problem() or ""
    assert "the second run changed the world" in problem and "counter leaks = 2" in problem


def test_a_stage_that_fails_is_reported() -> None:
    report = check("broken")
    assert not report.ok
    assert "the first run failed at step broken" in (report.problem() or "")


def test_an_unreachable_prerequisite_is_an_error() -> None:
    source = STAGED.replace('step flag run "touch_flag configured"', 'step flag run "fail no"')
    reg = kinds(source)
    with pytest.raises(NotIdempotent, match="prerequisite config failed"):
        check_idempotent(reg, resource("staged", "one"), "start", {"config": "x"})


def test_the_scratch_world_starts_from_the_given_snapshot() -> None:
    reg = kinds(STAGED)
    world = {"one": {"flags": {"configured": True}}}
    report = check_idempotent(
        reg, resource("staged", "one"), "config", {"config": "x"}, world_from=world
    )
    assert report.ok and report.first.effects == []  # the check saw the flag
