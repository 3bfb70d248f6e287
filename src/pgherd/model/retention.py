"""Which backups, WAL segments and history files the archive may delete: pure.

The rule is pg_archivecleanup's, decided with more facts: keep the newest ``keep``
backups, every WAL file from the oldest kept backup's start onwards, and everything a
standby still has to replay (a standby that fell behind recycled WAL reads it from the
archive). A standby whose position is unknown holds all WAL: deleting what it might need
would leave it unable to catch up, so the plan says so and deletes no WAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgherd.model.backup import Backup
from pgherd.model.lsn import Lsn
from pgherd.model.wal import DEFAULT_SEGMENT_SIZE, WalKind, WalName


@dataclass(frozen=True)
class StandbyPosition:
    """How far a standby has replayed; ``lsn`` None when it could not be learned."""

    name: str
    lsn: Lsn | None
    timeline: int | None


@dataclass(frozen=True)
class RetentionPlan:
    keep_backups: tuple[Backup, ...]
    delete_backups: tuple[Backup, ...]
    delete_files: tuple[str, ...]
    keep_from_segment: int | None  # segment numbers below this go; None: no WAL goes
    reasons: tuple[str, ...]  # sentences: why WAL is held where it is


def plan(
    backups: Sequence[Backup],
    keep: int,
    files: Sequence[WalName],
    standbys: Sequence[StandbyPosition],
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> RetentionPlan:
    if keep < 1:
        raise ValueError("keep at least one backup")
    ordered = sorted(backups, key=lambda b: (b.stop_lsn, b.stop_time))
    kept = tuple(ordered[-keep:])
    dropped = tuple(ordered[:-keep]) if len(ordered) > keep else ()
    reasons: list[str] = []
    if not kept:
        reasons.append("the archive holds no backup, so all WAL is kept")
        return RetentionPlan((), (), (), None, tuple(reasons))

    oldest = min(kept, key=lambda b: b.start_lsn)
    cutoff = oldest.start_lsn.segment_number(segment_size)
    reasons.append(f"backup {oldest.label} needs WAL from {oldest.start_lsn}")
    min_timeline = min(b.timeline for b in kept)
    for standby in standbys:
        if standby.lsn is None:
            reasons.append(f"{standby.name}'s position is unknown, so all WAL is kept")
            return RetentionPlan(kept, dropped, (), None, tuple(reasons))
        position = standby.lsn.segment_number(segment_size)
        if position < cutoff:
            cutoff = position
            reasons.append(f"standby {standby.name} still replays from {standby.lsn}")
        if standby.timeline is not None:
            min_timeline = min(min_timeline, standby.timeline)

    doomed = [f.name for f in files if _older(f, cutoff, min_timeline)]
    return RetentionPlan(kept, dropped, tuple(sorted(doomed)), cutoff, tuple(reasons))


def _older(file: WalName, cutoff: int, min_timeline: int) -> bool:
    if file.kind is WalKind.HISTORY:
        # A history file lists all its ancestors, so only timelines older than any kept
        # backup or standby are of no use any more.
        return file.timeline < min_timeline
    assert file.segment is not None
    return file.segment.number < cutoff
