"""Machine packs are the one seam: the built-in pack and a third-party pack installed
beside it contribute kinds, step plugins, inventory hooks, fake tools, CLI commands and
ingest sources the same way; a broken pack is named and the others keep working.

A pack is installed the way pip would leave it: a package and a ``*.dist-info`` with its
entry point on the import path of a real ``fleetlog`` process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from fleetlog import packs
from fleetlog.engine.backends.sim import SimBackend
from fleetlog.machines.pack import PACK

CLI = [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]

RACK_FSM = """
machine rack "A rack of servers" {
    param label: str = "unlabelled"
    initial state planned
    state powered
    observe "rackctl status {name}" {
        "on" -> powered
        "off" -> planned
    }
    transition power_on : planned -> powered {
        step power run "rackctl power-on {name}"
        step tag call rackops.tag(text=label)
    }
}
"""

MODULES = {
    "__init__.py": """
        from pathlib import Path

        from fleetlog.packs import Pack

        PACK = Pack(
            name="racks",
            machines=(Path(__file__).parent / "fsm",),
            steps=("rackpack.rackops",),
            inventory_hooks=("rackpack.inventory:HOOKS",),
            sim_tools=("rackpack.tools",),
            commands=("rackpack.cli:register",),
            ingest_sources=("rackpack.source:SOURCE",),
        )
    """,
    "rackops.py": """
        __all__ = ["tag"]


        def tag(ctx, text):
            return ctx.run(f"rackctl tag {ctx.resource.name} {text}")
    """,
    "inventory.py": """
        def expand_rack(name, table, lookup):
            own = {k: v for k, v in table.items() if k != "row"}
            return {**own, "label": f"{table.get('row', '?')}-{name}"}, {}


        HOOKS = {"rack": expand_rack}
    """,
    "tools.py": """
        from fleetlog.engine.backends.sim import ToolResult, sim_observer, sim_tool


        @sim_tool("rackctl")
        def rackctl(ctx):
            verb, name, *rest = ctx.args
            racks = ctx.state.setdefault("racks", {})
            if verb == "power-on":
                racks[name] = "on"
                ctx.log(f"power-on {name}")
            elif verb == "tag":
                ctx.log(f"tag {name} {' '.join(rest)}")
            elif verb == "status":
                return ToolResult(0, racks.get(name, "off") + "\\n")
            return ToolResult(0, "ok\\n")


        @sim_observer("rack")
        def racks(host, state):
            return dict(state.get("racks", {}))
    """,
    "cli.py": """
        import typer

        from fleetlog.engine.cli import Session, add_commands, output


        def rack_count(ctx: typer.Context) -> None:
            \"\"\"How many racks the journal holds.\"\"\"
            session: Session = ctx.obj
            output.say(f"racks: {len(session.journal.streams('rack/'))}")


        def register(app):
            add_commands(app, {"rack-count": rack_count})
    """,
    "source.py": """
        from fleetlog.engine.ops import Message


        class RackEvents:
            name = "racks"

            def accepts(self, data):
                return "rack_event" in data

            def messages(self, data, line, kind):
                rid = f"rack/{data['rack_event']}"
                msg = Message(line, str(data["n"]), rid, data["power"], data["at"], "racks")
                return [msg], 0


        SOURCE = RackEvents()
    """,
}


def install(site: Path, name: str, entry: str, files: dict[str, str]) -> None:
    """A package and its dist-info with ``fleetlog.machines`` entry point ``entry``."""
    pkg = site / name
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    dist = site / f"{name}-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[fleetlog.machines]\n{entry}\n")


Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    path = tmp_path / "site"
    path.mkdir()
    return path


@pytest.fixture
def fleetlog(tmp_path: Path, site: Path) -> Run:
    """``fleetlog`` in a child process that sees the packs installed in ``site``."""
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    for var in ("FLEETLOG_JOURNAL", "FLEETLOG_MACHINES", "FLEETLOG_BACKEND"):
        env.pop(var, None)

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*CLI, *args],
            cwd=work,
            env=env,
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )

    run.work = work  # type: ignore[attr-defined]
    return run


def test_the_builtin_pack_declares_what_it_ships() -> None:
    for directory in PACK.machines:
        assert sorted(p.name for p in directory.glob("*.fsm"))
    for reference in (*PACK.steps, *PACK.sim_tools, *PACK.commands, *PACK.inventory_hooks):
        assert packs.resolve(reference) is not None
    sources = [packs.resolve(r) for r in PACK.ingest_sources]
    assert [s.name for s in sources] == ["ganeti", "eventd"]
    formats = [packs.resolve(r) for r in PACK.listing_formats]
    assert [f.name for f in formats] == [
        "ganeti_instances",
        "ganeti_jobs",
        "ganeti_rapi_instances",
        "ganeti_rapi_jobs",
    ]
    assert any(p.name == "builtin" for p in packs.discover().loaded)


def test_a_third_party_pack_contributes_through_every_seam(fleetlog: Run, site: Path) -> None:
    files = {**MODULES, "fsm/rack.fsm": RACK_FSM}
    install(site, "rackpack", "racks = rackpack:PACK", files)
    work: Path = fleetlog.work  # type: ignore[attr-defined]

    listed = fleetlog("machines", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    kinds = {row["kind"] for row in json.loads(listed.stdout)}
    assert {"rack", "kvm_host", "vm"} <= kinds  # the built-in pack is still there

    # ``row`` is not a param of the kind: the pack's inventory hook turns it into a label
    (work / "racks.toml").write_text('[rack."r[1-2]"]\nrow = "A"\n')
    loaded = fleetlog("inventory", "load", "racks.toml")
    assert loaded.returncode == 0, loaded.stderr

    fired = fleetlog("fire", "rack/r1", "power_on", "--json")
    assert fired.returncode == 0, fired.stderr
    assert json.loads(fired.stdout)["outcomes"][0]["state"] == "powered"
    world = SimBackend(str(work / "fleetlog.db.sim"))
    try:
        effects = [e.effect for e in world.world.log_entries()]
    finally:
        world.close()
    assert effects == ["power-on r1", "tag r1 A-r1"]  # the pack's tool, plugin and hook

    counted = fleetlog("rack-count")
    assert (counted.returncode, counted.stdout.strip()) == (0, "racks: 2")

    # r2 was never powered on: the pack's message says so, and the state stays
    message = '{"rack_event": "r2", "power": "off", "at": "2026-01-01T00:00:00Z", "n": 7}\n'
    ingested = fleetlog("ingest", "-", "--json", stdin=message)
    assert ingested.returncode == 0, ingested.stderr
    assert (json.loads(ingested.stdout)["applied"], json.loads(ingested.stdout)["moved"]) == (1, 0)
    history = fleetlog("history", "rack/r2", "--json")
    observed = [e for e in json.loads(history.stdout) if e["type"] == "backend.observed"]
    assert [e["payload"]["source"] for e in observed] == ["racks"]

    # the pack's observer reports r1 on, which its observe map reads as powered
    reconciled = fleetlog("reconcile", "rack", "--json")
    assert reconciled.returncode == 0, reconciled.stderr
    report = json.loads(reconciled.stdout)
    assert (report["checked"], report["in_sync"]) == (2, 2)


def test_a_pack_that_cannot_load_is_named_and_the_others_work(fleetlog: Run, site: Path) -> None:
    install(site, "brokenpack", "broken = brokenpack.nowhere:PACK", {"__init__.py": ""})

    listed = fleetlog("machines", "list", "--json")
    assert listed.returncode == 0
    assert "machine pack 'broken'" in listed.stderr and "ModuleNotFoundError" in listed.stderr
    assert "vm" in {row["kind"] for row in json.loads(listed.stdout)}

    added = fleetlog("add", "kvm_host/node1", "--param", "host=node1")
    assert added.returncode == 0, added.stderr
    unknown = fleetlog("add", "rack/r1")
    assert unknown.returncode == 2
    assert "unknown kind 'rack'" in unknown.stderr and "'broken'" in unknown.stderr


def test_a_pack_whose_machines_do_not_compile_is_left_out_whole(fleetlog: Run, site: Path) -> None:
    bad = RACK_FSM.replace("initial state planned", "initial state planed")
    files = {
        "__init__.py": MODULES["__init__.py"].replace('steps=("rackpack.rackops",),', "steps=(),"),
        "fsm/rack.fsm": bad,
        "fsm/shelf.fsm": "machine shelf { initial state empty }\n",
    }
    for name in ("inventory.py", "tools.py", "cli.py", "source.py"):
        files[name] = MODULES[name]
    install(site, "rackpack", "racks = rackpack:PACK", files)

    listed = fleetlog("machines", "list", "--json")
    assert listed.returncode == 0
    kinds = {row["kind"] for row in json.loads(listed.stdout)}
    assert "vm" in kinds and "rack" not in kinds and "shelf" not in kinds
    assert "machine pack 'racks' is broken" in listed.stderr
    assert "rack.fsm" in listed.stderr

    checked = fleetlog("machines", "check", str(site / "rackpack" / "fsm" / "rack.fsm"))
    assert checked.returncode == 2 and "rack.fsm:7:18: unknown state 'planned'" in checked.stderr
