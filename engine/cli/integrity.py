"""The journal's integrity, as one CLI command sees it (docs/integrity.md).

When a command opens the journal, ``Guard.opened`` checks it (``Journal.check_integrity``:
the chain from the verified head the journal keeps to its head, the snapshots, and the
latest heads the witness recorded). Nothing is written by the check.

- A **writing** command on a journal that fails the check writes nothing: every write
  raises the failure (exit 4, one line) before it touches the file.
- A **reading** command shows what the journal holds, then warns in one line and exits 4.
- After a command that wrote, ``Guard.closing`` checks the events appended since the
  check, keeps the head as the journal's verified head (sealed with the chain key, if
  one is given), and appends it to the witness.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fleetlog.errors import FleetlogError, UsageError
from fleetlog.journal.base import JournalIntegrityError
from fleetlog.secretfile import read_private

if TYPE_CHECKING:
    from fleetlog.journal.base import Head, IntegrityReport, Journal
    from fleetlog.journal.witness import Witness

#: The chain key itself, for when it comes from a secret store through the environment.
KEY_ENV = "FLEETLOG_CHAIN_KEY"
MIN_KEY = 16


def load_key(path: str | None, env: str | None) -> bytes | None:
    """The chain key: the contents of ``path`` (``--chain-key-file``), or ``env``
    (``FLEETLOG_CHAIN_KEY``); None when neither is given."""
    if path and env:
        raise UsageError(f"the chain key is given twice (--chain-key-file and {KEY_ENV}): give one")
    if path:
        key = read_private(path, "chain key file")
        where = f"chain key file {path}"
    elif env:
        key = env.strip().encode("utf-8")
        where = KEY_ENV
    else:
        return None
    if len(key) < MIN_KEY:
        raise UsageError(f"{where} holds a key of {len(key)} bytes: use at least {MIN_KEY}")
    return key


def _sqlite_path(url: str) -> str | None:
    if url.startswith(("postgresql://", "postgres://")):
        return None
    return url.removeprefix("sqlite:///")


@dataclass
class Guard:
    """What a session knows about its journal's integrity. ``restoring``: the command
    fills an empty journal (``import``), so it is checked against every witnessed head
    after it wrote instead of before."""

    witness_path: str | None = None
    key_file: str | None = None
    restoring: bool = False
    report: IntegrityReport | None = None
    #: the failure writes raise (the same object, so ``main`` can tell it was shown)
    refusal: JournalIntegrityError | None = None
    #: the command checks (and reports) everything itself (``verify``): no check on
    #: opening, which would walk what it walks again
    reported: bool = False
    #: a failure of the check after writing (or of recording the head)
    after_error: FleetlogError | None = None
    snapshot_problems: list[tuple[int | None, str]] = field(default_factory=list)
    _key: bytes | None = None
    _key_loaded: bool = False
    _witness: Witness | None = None

    @property
    def key(self) -> bytes | None:
        if not self._key_loaded:
            self._key = load_key(self.key_file, os.environ.get(KEY_ENV))
            self._key_loaded = True
        return self._key

    @property
    def witness(self) -> Witness | None:
        if self.witness_path and self._witness is None:
            from fleetlog.journal.witness import Witness

            self._witness = Witness(self.witness_path, self.key)
        return self._witness

    def _recent(self) -> list[Head]:
        witness = self.witness
        return [] if witness is None else [w.head for w in witness.recent()]

    # -- before and at opening -------------------------------------------------------------
    def check_not_lost(self, url: str) -> None:
        """A journal file that is missing or empty while the witness recorded heads was
        deleted or truncated: refused before anything opens (or creates) it."""
        path = _sqlite_path(url)
        witness = self.witness
        if path is None or witness is None or self.restoring:
            return
        try:
            size: int | None = os.stat(path).st_size
        except FileNotFoundError:
            size = None
        except OSError:
            return  # the opener names environment faults
        if size:
            return
        recent = witness.recent()
        if not recent:
            return
        last = max(recent, key=lambda w: w.seq)
        state = "missing" if size is None else "empty"
        reason = (
            f"the journal file {path} is {state}, but the witness {witness} recorded seq "
            f"{last.seq} (hash {last.hash[:12]}…) at {last.at}: it was deleted or truncated. "
            "Restore it from an export with `fleetlog import` into a new file, then check "
            "that with `fleetlog verify` and this witness"
        )
        raise JournalIntegrityError(
            f"journal integrity failure: {reason}", seq=last.seq, reason=reason
        )

    def opened(self, journal: Journal) -> None:
        """Check the journal just opened; refuse its writes if it fails."""
        journal.chain_key = self.key
        if self.reported:
            return
        witnessed = [] if self.restoring else self._recent()
        report = journal.check_integrity(witnessed)
        self.report = report
        if not report.ok:
            self.refusal = report.error()
            journal.refuse_writes(self.refusal)
        elif report.keyed and self.key is None:
            # Readable without the key; a write would leave its head unsealed.
            journal.refuse_writes(
                UsageError(
                    "this journal's verified head is sealed with a chain key: give it "
                    f"({KEY_ENV} or --chain-key-file) to write"
                )
            )

    # -- after the command -----------------------------------------------------------------
    def closing(self, journal: Journal) -> None:
        """Before the journal closes: after writes, seal the head and witness it. Errors
        are kept for ``main`` (raising here would hide the command's own outcome)."""
        self.snapshot_problems.extend(journal.snapshot_problems)
        report = self.report
        if report is None or not report.ok or not journal.wrote:
            return
        try:
            witness = self.witness
            if self.restoring and witness is not None:
                witnessed = [w.head for w in witness.heads()]
            else:
                witnessed = self._recent()
            sealed = journal.seal(report, witnessed)
            if not sealed.ok:
                raise sealed.error()
            head = sealed.head
            latest = max(witnessed, key=lambda h: h.seq, default=None)
            if witness is not None and head.seq and latest != head:
                witness.record(head)
        except FleetlogError as e:
            self.after_error = e

    def outcome(self, code: int, raised: BaseException | None) -> int:
        """The lines and exit code integrity adds to a finished command's ``code``."""
        if self.after_error is not None:
            sys.stderr.write(f"fleetlog: error: {self.after_error}\n")
            code = max(code, self.after_error.exit_code)
        report = self.report
        if (
            report is not None
            and not report.ok
            and not self.reported
            and raised is not self.refusal
        ):
            sys.stderr.write(
                f"fleetlog: warning: {self.refusal}; what was shown may be wrong "
                "(`fleetlog verify` checks the whole journal)\n"
            )
            return 4
        if self.snapshot_problems and not self.reported and (report is None or report.ok):
            # found while the command ran (the check before it had passed)
            seq, problem = self.snapshot_problems[0]
            sys.stderr.write(
                f"fleetlog: warning: journal integrity failure at seq {seq}: {problem} "
                "(it was not used; the events were folded instead)\n"
            )
            return 4
        return code
