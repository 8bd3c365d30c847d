"""Checking, after the fact, that every snapshot is what its events fold to.

A snapshot is a cache the journal binds to the event it folds up to and seals
(``journal.integrity``), so a damaged, stale or misplaced one is never used. Without a
chain key the seal is a plain digest, which someone who can write the journal could
recompute for a forged state; ``fleetlog verify`` therefore also folds each snapshotted
resource from its events and compares. Kinds that are not loaded, and snapshots taken
under another definition (never used), are skipped. The fleet checkpoint
(``model.checkpoint``) is checked the same way, against a fold of the whole journal up
to the event it names.
"""

from __future__ import annotations

from fleetlog.engine.model import checkpoint
from fleetlog.engine.model.kinds import KindRegistry
from fleetlog.engine.model.records import split_id
from fleetlog.engine.model.replay import load_resource, replay_all
from fleetlog.journal import Journal
from fleetlog.journal.canonical import canonical_json


def check(journal: Journal, registry: KindRegistry) -> list[tuple[int, str]]:
    """(seq, problem) for every snapshot whose record differs from its events' fold."""
    problems: list[tuple[int, str]] = []
    for stream, version, seq in journal.snapshot_streams():
        kind, _ = split_id(stream)
        if kind not in registry:
            continue
        snap = journal.get_snapshot(stream)
        if snap is None or snap[0] != version:
            continue  # unusable, or replaced meanwhile: judged by the journal's own checks
        state = snap[1]
        if state.get("definition_hash") != registry.get(kind).spec.definition_hash:
            continue
        folded = load_resource(journal, registry, stream, to_seq=seq, use_snapshots=False)
        truth = None if folded is None else folded.to_dict()
        if canonical_json(truth) != canonical_json(state.get("record")):
            problems.append(
                (
                    seq,
                    f"the snapshot of {stream} (version {version}) is not what its events "
                    "fold to: it was forged",
                )
            )
    return problems


def check_checkpoint(journal: Journal, registry: KindRegistry) -> list[tuple[int | None, str]]:
    """The problem with the fleet checkpoint, if any: one the journal refuses (its event
    or its seal), or records that differ from the fold of every event up to it. One kept
    under other definitions is never used, so not judged."""
    seq = journal.checkpoint_seq(checkpoint.NAME)
    if seq is None:
        return []
    before = len(journal.snapshot_problems)
    start = checkpoint.load(journal, registry)
    refused = journal.snapshot_problems[before:]
    if refused:
        return list(refused)
    if start is None:
        return []
    kept_at, kept = start
    folded = replay_all(journal, registry, to_seq=kept_at, use_checkpoint=False)
    if kept != folded:  # records are dataclasses: compared field by field
        return [
            (
                kept_at,
                f"the checkpoint {checkpoint.NAME} (seq {kept_at}) is not what the events "
                "fold to: it was forged",
            )
        ]
    return []
