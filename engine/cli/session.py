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
from fleetlog.errors import UsageError

if TYPE_CHECKING:
    from fleetlog.engine.backends.base import Backend
    from fleetlog.engine.model.kinds import KindRegistry
    from fleetlog.engine.runtime import Runner
    from fleetlog.journal.base import Journal

DEFAULT_JOURNAL = "./fleetlog.db"


@dataclass
class Session:
    journal_url: str = DEFAULT_JOURNAL
    backend_name: str = "sim"
    accept_new_host_keys: bool = False
    _journal: Journal | None = field(default=None, repr=False)
    _registry: KindRegistry | None = field(default=None, repr=False)
    _backend: Backend | None = field(default=None, repr=False)

    @property
    def journal(self) -> Journal:
        if self._journal is None:
            from fleetlog.journal import open_journal

            self._journal = open_journal(self.journal_url)
        return self._journal

    def require_existing(self) -> None:
        """Reading commands must not create a journal: a typo'd path would show an empty
        fleet instead of an error."""
        url = self.journal_url
        if url.startswith(("postgresql://", "postgres://")):
            return
        path = url.removeprefix("sqlite:///")
        if not os.path.exists(path):
            raise UsageError(
                f"no journal at {path} (give --journal PATH or set FLEETLOG_JOURNAL; "
                "`fleetlog add` or `fleetlog import` creates one)"
            )

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

    @property
    def backend(self) -> Backend:
        if self._backend is None:
            if self.backend_name not in BACKENDS:
                raise UsageError(
                    f"unknown backend {self.backend_name!r} (choose from {', '.join(BACKENDS)})"
                )
            from fleetlog.engine.backends import open_backend

            self._backend = open_backend(
                self.backend_name,
                self.journal_url,
                accept_new_host_keys=self.accept_new_host_keys,
                on_new_host_key=self._journal_host_key,
            )
        return self._backend

    def runner(self) -> Runner:
        """A runner on this session's journal, kinds and backend."""
        from fleetlog.engine.runtime import Runner

        return Runner(self.journal, self.registry, self.backend)

    def _journal_host_key(self, host: str, key_type: str, fingerprint: str) -> None:
        """``--accept-new-host-keys`` trusts a first-seen key like OpenSSH's accept-new;
        the fingerprint it trusted is journaled so an audit can tell what was accepted."""
        from fleetlog.engine.model import events as ev

        accepted = ev.HostKeyAccepted(host=host, key_type=key_type, fingerprint=fingerprint)
        self.journal.append(f"ssh_host/{host}", [ev.new_event(accepted)])

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
            self._backend = None
        if self._journal is not None:
            self._journal.close()
            self._journal = None


def default_journal_url() -> str:
    return os.environ.get("FLEETLOG_JOURNAL") or DEFAULT_JOURNAL
