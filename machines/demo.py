"""``fleetlog demo``: the Exascale seed end to end on the simulated datacenter.

In a fresh directory (SQLite journal, sim world beside it) it runs the real CLI, one
subprocess per command, and shows each command and what it printed:

1. load ``examples/exascale.toml`` (8 KVM hosts, 3 cells, 8 VM clusters);
2. deploy the Exascale cluster (cells, the five EGS instances, node1 and node2) and the
   VM clusters' guests on node1 and node2;
3. clone an Exascale guest from node1 to node3 — where Exascale was never set up, the
   seed's failure — and node3 is configured on the way (its EDV needs two tries);
4. clone a second guest to node3: no reconfiguration (the world log proves it);
5. clone onto node4 in a process that is SIGKILLed mid-flow, then ``resume --all``;
6. the audit trail: ``history`` of kvm_host/node3 and the clone that caused it.

Secrets: the wallet password is set for the demo's own subprocesses only (a demo value
when you have not exported one); it is never printed and never journaled.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fleetlog.engine.model import events as ev
from fleetlog.errors import UsageError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "exascale.toml"
#: The real CLI in a child process.
CLI = [sys.executable, "-c", "from fleetlog.engine.cli import main; main()"]
SECRET_ENV = "FLEETLOG_SECRET_WALLET_PASSWORD"
CRASH_ENV = "FLEETLOG_TEST_CRASH_AFTER_EVENTS"
#: The node4 clone is killed after this many journal events of its process: inside
#: node4's configure_exascale, after a few of its steps.
CRASH_AFTER = 12
DEPLOYED = "vm/exa[1-4]_vm[1-2],asm[1-4]_vm[1-2]"


class DemoFailed(Exception):
    pass


class Demo:
    def __init__(self, root: Path, console: Any) -> None:
        self.root = root
        self.journal = root / "fleetlog.db"
        self.world = root / "fleetlog.db.sim"
        self.console = console
        self.env = dict(os.environ)
        for var in ("FLEETLOG_JOURNAL", CRASH_ENV):
            self.env.pop(var, None)
        self.env.update(
            FLEETLOG_BACKEND="sim",
            FLEETLOG_SIM_WORLD=str(self.world),
            COLUMNS=str(max(100, console.width)),
            PYTHONUNBUFFERED="1",
        )
        self.own_secret = SECRET_ENV not in os.environ
        if self.own_secret:
            self.env[SECRET_ENV] = "demo-" + os.urandom(6).hex()

    # -- running the CLI ---------------------------------------------------------------
    def fleetlog(
        self,
        *args: str,
        expect: Sequence[int] = (0,),
        env: dict[str, str] | None = None,
        show: bool = True,
        note: str = "",
    ) -> subprocess.CompletedProcess[str]:
        shown = "fleetlog " + " ".join(shlex.quote(a) for a in args)
        if note:
            shown = f"{note} {shown}"
        t0 = time.monotonic()
        with self.console.status(f"[bold]{shown}", spinner="dots"):
            proc = subprocess.run(
                [*CLI, "--journal", str(self.journal), *args],
                env={**self.env, **(env or {})},
                capture_output=True,
                text=True,
                cwd=self.root,
                timeout=120,
            )
        self.console.print(
            f"[bold cyan]$ {shown}[/] [dim]({time.monotonic() - t0:.1f}s)[/]", highlight=False
        )
        if show:
            text = (proc.stdout + proc.stderr).rstrip()
            if text:
                self.console.print(text, markup=False, highlight=False, soft_wrap=True)
        if proc.returncode not in expect:
            raise DemoFailed(
                f"`{shown}` exited {proc.returncode}, expected {' or '.join(map(str, expect))}"
            )
        return proc

    def stage(self, title: str, why: str = "") -> None:
        self.console.rule(f"[bold]{title}")
        if why:
            self.console.print(why, highlight=False)

    # -- the scenario ------------------------------------------------------------------
    def seed_world(self) -> None:
        from fleetlog.engine.backends.sim import SimBackend
        from fleetlog.machines.sim.scenarios import exascale_rack, flaky_service

        with SimBackend(str(self.world)) as sim:
            exascale_rack(sim.world, computes=8, configured=(), guests={}, cells=3)
            flaky_service(sim.world, "node3", "edv", failures=1)

    def exascale_effects(self, host: str) -> int:
        """How many Exascale side effects (dbmcli, escli) the world log holds for host."""
        from fleetlog.engine.backends.sim import World

        world = World(str(self.world))
        try:
            return sum(1 for e in world.log_entries(host=host) if e.tool in ("dbmcli", "escli"))
        finally:
            world.close()

    def run(self) -> None:
        c = self.console
        if not EXAMPLE.is_file():
            raise DemoFailed(f"the example inventory is missing: {EXAMPLE}")
        c.print(
            f"[bold]fleetlog demo[/] in [green]{self.root}[/] — journal {self.journal.name}, "
            "simulated datacenter (sim backend).",
            highlight=False,
        )
        if self.own_secret:
            c.print(
                f"{SECRET_ENV} is not set: the demo sets a demo value for its own "
                "commands only (never printed, never journaled).",
                highlight=False,
            )
        self.seed_world()

        self.stage(
            "1. The seed's environment",
            "8 KVM hosts, 3 storage cells, one Exascale cluster, 8 VM clusters "
            "(4 Exascale, 4 ASM) on node1 and node2 only.",
        )
        self.fleetlog("inventory", "load", str(EXAMPLE))

        self.stage(
            "2. Deploy: Configure Exascale Storage on Cell Servers, then the guests",
            "Cells first (EGS on cell1-3), then node1 and node2 (the other two EGS "
            "instances), then the DB wallet and vaults.",
        )
        self.fleetlog("fire", "exascale_cluster/exa", "deploy")
        self.fleetlog("fire", DEPLOYED, "create")
        self.fleetlog("fire", DEPLOYED, "deploy")

        self.stage(
            "3. Clone exa1_vm1 from node1 to node3 (the seed's bug, fixed)",
            "node3 never had Exascale: the clone's first step ensures it, under "
            "node3's lock. EDV on node3 needs two tries to start.",
        )
        self.fleetlog(
            "fire", "vm/exa1_vm3", "clone", "--param", "source=exa1_vm1", "--param", "target=node3"
        )
        before = self.exascale_effects("node3")

        self.stage("4. Clone a second guest to node3: no reconfiguration")
        self.fleetlog(
            "fire", "vm/exa2_vm3", "clone", "--param", "source=exa2_vm1", "--param", "target=node3"
        )
        ensure_out = self.step_output("vm/exa2_vm3", "exascale")
        after = self.exascale_effects("node3")
        c.print(
            f"  step exascale said: [green]{ensure_out}[/]. Exascale effects on node3 in "
            f"the world log: {before} before this clone, {after} after.",
            highlight=False,
        )
        if after != before:
            raise DemoFailed("node3 was configured again by the second clone")
        self.fleetlog(
            "fire",
            "vm/asm1_vm3",
            "clone",
            "--param",
            "source=asm1_vm1",
            "--param",
            "target=node3",
            note="(ASM guest: no Exascale step)",
        )

        self.stage(
            "5. Crash mid-flow and resume",
            f"Clone exa3_vm1 onto node4 in a process SIGKILLed after {CRASH_AFTER} "
            "journal events (inside node4's configuration), then resume.",
        )
        self.fleetlog(
            "fire",
            "vm/exa3_vm4",
            "clone",
            "--param",
            "source=exa3_vm1",
            "--param",
            "target=node4",
            expect=(-9, 137),
            env={CRASH_ENV: str(CRASH_AFTER)},
            note=f"{CRASH_ENV}={CRASH_AFTER}",
        )
        c.print("  killed (SIGKILL). What the journal says now:", highlight=False)
        self.fleetlog("status", "vm/exa3_vm4")
        self.fleetlog("resume", "--all")

        self.stage("6. The audit trail: who configured node3?")
        self.fleetlog("history", "kvm_host/node3")
        c.print(self.causation("kvm_host/node3"), highlight=False)
        self.fleetlog("verify")

        self.stage("Explore the journal it left")
        j = shlex.quote(str(self.journal))
        env = f"{SECRET_ENV}=... " if self.own_secret else ""
        for line in (
            f"fleetlog --journal {j} status",
            f"fleetlog --journal {j} history kvm_host/node3",
            f"fleetlog --journal {j} history vm/exa1_vm3",
            f"fleetlog --journal {j} history exascale_cluster/exa",
            f"fleetlog --journal {j} graph vm --highlight vm/exa1_vm3",
            f"fleetlog --journal {j} verify",
            f"{env}fleetlog --journal {j} fire vm/exa2_vm3 stop",
        ):
            c.print(f"  {line}", highlight=False, markup=False, soft_wrap=True)

    def step_output(self, rid: str, step: str) -> str:
        from fleetlog.journal import open_journal

        journal = open_journal(str(self.journal))
        try:
            for e in journal.read_stream(rid):
                p = ev.read(e)
                if isinstance(p, ev.StepSucceeded) and p.step == step:
                    return str(p.output or "").strip()
            return "?"
        finally:
            journal.close()

    def causation(self, rid: str) -> str:
        """Follow node3's configure command back to the step that caused it."""
        from fleetlog.journal import open_journal

        journal = open_journal(str(self.journal))
        try:
            events = journal.read_stream(rid)
            cmd = next(
                (
                    e
                    for e in events
                    if e.type == ev.COMMAND_ACCEPTED
                    and ev.CommandAccepted.from_payload(e.payload).trigger == "configure_exascale"
                ),
                None,
            )
            if cmd is None or not cmd.causation_id:
                return f"  {rid}: no caused configure_exascale found"
            for stream in journal.streams("vm/"):
                for e in journal.read_stream(stream):
                    if e.event_id == cmd.causation_id:
                        return (
                            f"  {rid} configure_exascale (seq {cmd.seq}) was caused by "
                            f"{stream} step {e.payload.get('step')!r} (seq {e.seq}, event "
                            f"{e.event_id}), run by {cmd.actor}: its causation_id."
                        )
            return f"  {rid}: caused by event {cmd.causation_id}"
        finally:
            journal.close()


def run_demo(directory: Path | None = None) -> int:
    from rich.console import Console

    console = Console(highlight=False)
    if directory is None:
        root = Path(tempfile.mkdtemp(prefix="fleetlog-demo-"))
    else:
        root = Path(directory)
        if root.exists() and any(root.iterdir()):
            raise UsageError(f"--dir {root}: not empty; the demo needs a fresh directory")
        root.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        Demo(root, console).run()
    except (DemoFailed, subprocess.TimeoutExpired) as exc:
        console.print(f"[bold red]demo failed:[/] {exc}", highlight=False)
        console.print(f"the journal is in {root}", highlight=False, markup=False)
        return 1
    console.print(f"[bold green]done[/] in {time.monotonic() - started:.1f}s.", highlight=False)
    return 0
