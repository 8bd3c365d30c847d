"""What one CLI invocation works with: the journal, the loaded kinds and the backend.

Each is opened on first use, so ``fleetlog machines list`` never opens a journal and
``fleetlog status`` never imports paramiko.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetlog.engine.backends import BACKENDS
from fleetlog.engine.cli.integrity import Guard
from fleetlog.errors import UsageError

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend
    from fleetlog.engine.model.kinds import KindRegistry
    from fleetlog.engine.ops.notify import Notifier
    from fleetlog.engine.runtime import Runner
    from fleetlog.journal.base import Journal

DEFAULT_JOURNAL = "./fleetlog.db"
DEFAULT_BACKEND = "sim"
#: Where a journal keeps the backend it is bound to.
BACKEND_STREAM = "settings/backend"


class BackendMismatch(UsageError):
    msg_fmt = (
        "this journal is bound to the %(bound)s backend, not %(given)s: its steps run on "
        "%(bound)s. Give --backend %(bound)s (or nothing), or rebind it on purpose with "
        "`fleetlog backend set %(given)s --reason TEXT`"
    )


@dataclass
class Session:
    """``backend_given``: ``--backend`` (or ``FLEETLOG_BACKEND``) when the operator gave
    one. Without it the backend is the one the journal is bound to, so a forgotten flag
    never moves real work to the simulator."""

    journal_url: str = DEFAULT_JOURNAL
    backend_given: str | None = None
    accept_new_host_keys: bool = False
    _journal: Journal | None = field(default=None, repr=False)
    _registry: KindRegistry | None = field(default=None, repr=False)
    _backend: Backend | None = field(default=None, repr=False)
    _bound: str | None = field(default=None, repr=False)
    _bound_read: bool = field(default=False, repr=False)
    _runner: Runner | None = field(default=None, repr=False)
    _noted: bool = field(default=False, repr=False)
    _read_only: bool = field(default=False, repr=False)
    #: The journal's integrity: checked on opening, sealed and witnessed after writes.
    guard: Guard = field(default_factory=Guard, repr=False)
    #: ``--notify``: watches the journal once it is opened, sends what it appends.
    notifier: Notifier | None = field(default=None, repr=False)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            from fleetlog.journal import open_journal

            self.guard.check_not_lost(self.journal_url)
            journal = open_journal(self.journal_url, read_only=self._read_only)
            try:
                self.guard.opened(journal)
            except BaseException:
                journal.close()
                raise
            self._journal = journal
            if self.notifier is not None:
                self.notifier.watch(journal)
        return self._journal

    def require_existing(self) -> None:
        """Reading commands must not create a journal: a typo'd path would show an empty
        fleet instead of an error."""
        self.guard.check_not_lost(self.journal_url)
        url = self.journal_url
        if url.startswith(("postgresql://", "postgres://")):
            return
        path = url.removeprefix("sqlite:///")
        try:
            os.stat(path)
        except FileNotFoundError:
            raise UsageError(
                f"no journal at {path} (give --journal PATH or set FLEETLOG_JOURNAL; "
                "`fleetlog add` or `fleetlog import` creates one)"
            ) from None
        except OSError as exc:  # permission denied on the way to it, ...: say that
            from fleetlog.journal.environment import os_fault

            raise os_fault(exc, path, "reading") from None

    def for_reading(self) -> None:
        """A command that only reads: the journal must exist, and an SQLite journal is
        opened read-only, so the command never creates, changes or repairs a file and
        works on read-only media. A missing or empty journal is a usage error (exit 2)."""
        self.require_existing()
        if self._journal is None:
            self._read_only = True

    @property
    def registry(self) -> KindRegistry:
        if self._registry is None:
            from fleetlog import packs
            from fleetlog.engine.model import load_registry

            self._registry = load_registry()
            # A pack that failed to load is reported by ``main`` for every command; one
            # whose files do not compile is reported here, by the commands that need kinds.
            unloadable = {f.name for f in packs.discover().failed}
            for name, problem in self._registry.broken.items():
                if name not in unloadable:
                    sys.stderr.write(f"fleetlog: warning: {problem}\n")
        return self._registry

    def bound_backend(self) -> str | None:
        """The backend the journal is bound to, or None (never used to run a step)."""
        if not self._bound_read:
            from fleetlog.engine.model import events as ev

            self._bound_read = True
            if self._journal is not None or self._exists():
                for event in reversed(self.journal.read_stream(BACKEND_STREAM)):
                    if event.type == ev.BACKEND_BOUND:
                        self._bound = ev.BackendBound.from_payload(event.payload).backend
                        break
        return self._bound

    def _exists(self) -> bool:
        url = self.journal_url
        if url.startswith(("postgresql://", "postgres://")):
            return True
        return os.path.exists(url.removeprefix("sqlite:///"))

    @property
    def backend_name(self) -> str:
        """The backend this command uses: the one given, else the journal's, else sim."""
        given = self.backend_given
        if given is not None and given not in BACKENDS:
            raise UsageError(f"unknown backend {given!r} (choose from {', '.join(BACKENDS)})")
        bound = self.bound_backend()
        if given is not None and bound is not None and given != bound:
            raise BackendMismatch(bound=bound, given=given)
        return given or bound or DEFAULT_BACKEND

    def bind_backend(self) -> str:
        """Before running steps: bind a journal used for the first time to this
        command's backend (journaled), and say so when that is the simulator."""
        name = self.backend_name
        by_default = self.backend_given is None and self.bound_backend() is None
        if self.bound_backend() is None:
            from fleetlog.engine.model import events as ev

            bound = ev.BackendBound(backend=name, reason="the first command that ran a step")
            self.journal.append(BACKEND_STREAM, [ev.new_event(bound)])
            self._bound = name
        if name == "sim" and not self._noted:
            self._noted = True
            if by_default:
                # The first run on a fresh journal, with no --backend: say what ran it,
                # and how to run on real hosts, before the journal stays bound to sim.
                sys.stderr.write(
                    "fleetlog: note: simulated: the simulated datacenter (backend sim, the "
                    "default) ran these steps; no real host was contacted. For real hosts "
                    "use --backend local (this machine) or --backend ssh; this journal now "
                    "stays on sim (`fleetlog backend set` changes that)\n"
                )
            else:
                sys.stderr.write(
                    "fleetlog: note: the simulated datacenter ran these steps "
                    "(--backend sim); no real host was contacted\n"
                )
        return name

    def set_backend(self, name: str, reason: str) -> str | None:
        """``fleetlog backend set``: bind the journal to ``name``; the previous binding."""
        from fleetlog.engine.model import events as ev

        if name not in BACKENDS:
            raise UsageError(f"unknown backend {name!r} (choose from {', '.join(BACKENDS)})")
        if not reason.strip():
            raise UsageError("--reason is required: say why, it is journaled")
        previous = self.bound_backend()
        bound = ev.BackendBound(backend=name, previous=previous, reason=reason)
        self.journal.append(BACKEND_STREAM, [ev.new_event(bound)])
        self._bound = name
        return previous

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            from fleetlog.engine.backends import open_backend

            self._backend = open_backend(
                self.backend_name,
                self.journal_url,
                accept_new_host_keys=self.accept_new_host_keys,
                on_new_host_key=self._journal_host_key,
            )
            self._follow_journal(self._backend)
        return self._backend

    def _follow_journal(self, backend: Backend) -> None:
        """The simulated datacenter holds what the journal's inventory says, and no
        other host answers (``ops.twin.follow_journal``); a sandbox world someone filled
        on purpose (a test's, the demo's) is left open."""
        from fleetlog.engine.backends.sim import SimBackend
        from fleetlog.engine.ops.twin import follow_journal

        if not isinstance(backend, SimBackend):
            return

        def journal() -> Journal | None:
            return self.journal if self._journal is not None or self._exists() else None

        notes = follow_journal(backend, journal, lambda: self.registry)
        for note in notes:
            sys.stderr.write(f"fleetlog: note: simulated: {note}\n")

    @property
    def active_runner(self) -> Runner | None:
        """The runner, once this command has made one: Ctrl-C asks it to stop each
        transition before its next step (``engine.cli.interrupt``)."""
        return self._runner

    def runner(self, *, runs_steps: bool = True) -> Runner:
        """A runner on this session's journal, kinds and backend. ``runs_steps``: before
        the first transition it starts or resumes, the journal is bound to the backend
        (``bind_backend``); a command refused before that journals nothing."""
        from fleetlog.engine.runtime import Runner

        _ = self.backend_name  # refuse a backend the journal is not bound to, first
        if self._runner is None:
            hook = self.bind_backend if runs_steps else None
            self._runner = Runner(
                self.journal,
                self.registry,
                self.backend,
                before_first_start=hook,
                notice=lambda line: sys.stderr.write(f"fleetlog: warning: {line}\n"),
            )
        return self._runner

    def _journal_host_key(self, host: str, key_type: str, fingerprint: str) -> None:
        """``--accept-new-host-keys`` trusts a first-seen key like OpenSSH's accept-new;
        the fingerprint it trusted is journaled so an audit can tell what was accepted."""
        from fleetlog.engine.model import events as ev

        accepted = ev.HostKeyAccepted(host=host, key_type=key_type, fingerprint=fingerprint)
        self.journal.append(f"ssh_host/{host}", [ev.new_event(accepted)])

    def close(self) -> None:
        if self.notifier is not None:
            self.notifier.stop()  # its last read of the journal, before that closes
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        try:
            if self._journal is not None:
                try:
                    self.guard.closing(self._journal)
                    self._keep_checkpoint(self._journal)
                finally:
                    self._journal.close()
                    self._journal = None
        finally:
            if self.notifier is not None:
                # A bounded wait for deliveries; what failed is a warning, never the
                # command's outcome.
                for line in self.notifier.finish():
                    sys.stderr.write(f"fleetlog: warning: notify: {line}\n")
                self.notifier = None

    def _keep_checkpoint(self, journal: Journal) -> None:
        """After a command that appended, keep the fleet checkpoint when enough events
        followed the last one (``replay.keep_checkpoint``), so that the next fleet-wide
        read folds only what came after. Only with the kinds loaded (a command that
        appends events of resources loads them), and only while the journal is trusted.
        A cache: if it cannot be kept, the command's outcome is unchanged and the
        operator is told in one line. After the head is sealed and witnessed (a second
        Ctrl-C during the fold leaves those done), and not after a Ctrl-C stopped the
        command's transitions (the operator is waiting for it to end)."""
        guard, runner = self.guard, self._runner
        if self._registry is None or not journal.wrote:
            return
        if guard.report is None or not guard.report.ok or guard.after_error is not None:
            return  # not while the journal is in question (the seal found something)
        if runner is not None and runner.stopping.is_set():
            return
        from fleetlog.engine.model.replay import ReplayError, keep_checkpoint
        from fleetlog.errors import FleetlogError

        before = len(journal.snapshot_problems)
        try:
            keep_checkpoint(journal, self._registry)
        except ReplayError:
            pass  # a fold that fails here fails for status too, which says why
        except FleetlogError as e:
            sys.stderr.write(f"fleetlog: warning: the fleet checkpoint was not kept: {e}\n")
        # A checkpoint found contradicting the chain is reported like a snapshot is.
        guard.snapshot_problems.extend(journal.snapshot_problems[before:])


def default_journal_url() -> str:
    return os.environ.get("FLEETLOG_JOURNAL") or DEFAULT_JOURNAL


def notifier_for(url: str | None, secret_file: str | None) -> Notifier | None:
    """The notifier of ``--notify URL`` (None without one): the URL and the secret are
    checked now, before any work (a bad one is a usage error)."""
    if not url:
        return None
    from fleetlog.engine.ops.notify import SECRET_ENV, Notifier, load_target

    target = load_target(url, secret_file, os.environ.get(SECRET_ENV))
    return None if target is None else Notifier(target)
