"""Seals: what binds a verified head and a snapshot to the chain, keyed or not.

The event hash chain (``journal.canonical``) never changes: a journal's hashes are the
same with or without a chain key, so anyone can ``verify`` an export. What a key adds is
a seal, an HMAC-SHA256 over a head or a snapshot, that nobody without the key can make:

- the **verified head** (the point up to which a write command found the chain sound,
  kept in the journal so the next check starts there) carries ``head_mac``. With a key,
  a head whose seal is missing or wrong is an integrity failure, so rewriting history
  and recomputing every later hash (a *rehash*) cannot go unseen without the key: the
  verified head would have to move with it;
- a **snapshot** names the seq and hash of the last event it folds and is sealed over
  that and its state (``snapshot_text``): SHA-256 without a key (catches a damaged,
  stale or misplaced snapshot, and a forged one unless the forger recomputes the
  digest), HMAC with one (catches every forgery by someone without the key);
- a **witness** line may carry ``witness_mac``.

A seal is written ``SCHEME:HEX``. One that cannot be checked with what is given (an
HMAC seal and no key, or the other way round) is reported as such, never as good.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from fleetlog.journal.canonical import canonical_json

SHA256 = "sha256"
HMAC_SHA256 = "hmac-sha256"


def seal(text: str, key: bytes | None) -> str:
    """The seal of ``text``: ``hmac-sha256:…`` with a key, ``sha256:…`` without."""
    data = text.encode("utf-8")
    if key is None:
        return f"{SHA256}:{hashlib.sha256(data).hexdigest()}"
    return f"{HMAC_SHA256}:{hmac.new(key, data, hashlib.sha256).hexdigest()}"


def check_seal(text: str, given: object, key: bytes | None) -> bool | None:
    """True when ``given`` seals ``text``; False when it does not; None when it cannot be
    checked with ``key`` (a seal of the other kind, or not a seal at all)."""
    if not isinstance(given, str) or ":" not in given:
        return None
    scheme = given.split(":", 1)[0]
    if (scheme == HMAC_SHA256) != (key is not None) or scheme not in (SHA256, HMAC_SHA256):
        return None
    return hmac.compare_digest(seal(text, key), given)


def head_text(seq: int, hash_: str) -> str:
    return f"fleetlog verified head\n{seq}\n{hash_}"


def head_mac(key: bytes, seq: int, hash_: str) -> str:
    """The seal a keyed journal keeps on its verified head."""
    return seal(head_text(seq, hash_), key)


def witness_text(seq: int, hash_: str, at: str) -> str:
    return f"fleetlog witness\n{seq}\n{hash_}\n{at}"


def checkpoint_text(name: str, seq: int, hash_: str, state_text: str) -> str:
    """What a checkpoint's seal covers: its name, the event it folds up to, and the
    state's text exactly as stored (sealing the text, not a re-encoding of it, keeps a
    100,000-resource checkpoint's check to one digest)."""
    return f"fleetlog checkpoint\n{name}\n{seq}\n{hash_}\n{state_text}"


# -- snapshots ---------------------------------------------------------------------------

_SNAPSHOT_KEYS = frozenset({"seq", "hash", "seal", "state"})


def _snapshot_body(stream: str, version: int, seq: int, hash_: str, state_text: str) -> str:
    return f"fleetlog snapshot\n{stream}\n{version}\n{seq}\n{hash_}\n{state_text}"


def snapshot_text(
    stream: str, version: int, seq: int, hash_: str, state: dict[str, Any], key: bytes | None
) -> str:
    """What the snapshots table stores for ``state`` folded up to ``stream``'s
    ``version``, the event at ``seq`` with ``hash``."""
    state_text = canonical_json(state)
    sealed = seal(_snapshot_body(stream, version, seq, hash_, state_text), key)
    return canonical_json({"seq": seq, "hash": hash_, "seal": sealed, "state": state})


class SnapshotVerdict:
    """What a stored snapshot is worth: ``state`` when it can be used; ``problem`` when
    it contradicts the chain or its seal (an integrity failure); neither when it cannot
    be judged here: ``other_seal`` (an HMAC seal and no key, or a plain digest and a
    key), or ``unsealed`` (no seal at all: written by a fleetlog that did not seal
    snapshots, or by someone else). The journal decides what those mean for it."""

    __slots__ = ("other_seal", "problem", "seq", "state", "unsealed")

    def __init__(
        self,
        state: dict[str, Any] | None = None,
        problem: str | None = None,
        seq: int | None = None,
        unsealed: bool = False,
        other_seal: bool = False,
    ) -> None:
        self.state = state
        self.problem = problem
        self.seq = seq
        self.unsealed = unsealed
        #: sealed, but not the way the key given (or its absence) can check
        self.other_seal = other_seal


def judge_snapshot(
    stream: str,
    version: int,
    text: str,
    event: tuple[int, str] | None,
    key: bytes | None,
) -> SnapshotVerdict:
    """Judge the stored snapshot ``text`` of ``stream`` at ``version`` against ``event``,
    the (seq, hash) the journal holds at that version (None: no such event)."""
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict) or set(record) != _SNAPSHOT_KEYS:
        return SnapshotVerdict(unsealed=True)
    seq, hash_, state = record["seq"], record["hash"], record["state"]
    if not isinstance(seq, int) or not isinstance(hash_, str) or not isinstance(state, dict):
        return SnapshotVerdict(problem=f"the snapshot of {stream} is malformed")
    if event is None:
        return SnapshotVerdict(
            problem=f"the snapshot of {stream} folds version {version}, which the journal "
            "does not hold",
            seq=seq,
        )
    if (seq, hash_) != event:
        return SnapshotVerdict(
            problem=f"the snapshot of {stream} (version {version}) names seq {seq} hash "
            f"{hash_[:12]}…, but the journal has seq {event[0]} hash {event[1][:12]}… there",
            seq=event[0],
        )
    body = _snapshot_body(stream, version, seq, hash_, canonical_json(state))
    verdict = check_seal(body, record["seal"], key)
    if verdict is None:
        return SnapshotVerdict(seq=seq, other_seal=True)
    if not verdict:
        return SnapshotVerdict(
            problem=f"the snapshot of {stream} (version {version}) does not match its seal: "
            "its state was altered",
            seq=seq,
        )
    return SnapshotVerdict(state=state, seq=seq)
