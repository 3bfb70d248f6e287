"""Which backups, WAL segments and history files the archive may delete: pure.

The rule is pg_archivecleanup's, decided with more facts: keep the newest ``keep``
backups (or what a :class:`Policy` of full backups and days keeps), every backup a kept
differential or incremental builds on, every WAL file from the oldest kept backup's
start onwards, and everything a
standby still has to replay (a standby that fell behind recycled WAL reads it from the
archive). A standby whose position is unknown holds all WAL: deleting what it might need
would leave it unable to catch up, so the plan says so and deletes no WAL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from pgherd.model.backup import Backup, BackupKind
from pgherd.model.backup_chain import descendants, with_ancestors
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
    """Keep the newest ``keep`` backups (and every backup they build on)."""
    if keep < 1:
        raise ValueError("keep at least one backup")
    ordered = sorted(backups, key=lambda b: (b.stop_lsn, b.stop_time))
    labels = with_ancestors({b.label for b in ordered[-keep:]}, ordered)
    reasons = [f"keeping the newest {keep} backups and what they build on"]
    return _wal_plan(ordered, labels, files, standbys, segment_size, reasons)


@dataclass(frozen=True)
class Policy:
    """``keep_full``: the newest N full backups and everything built on them;
    ``keep_days``: every backup that a restore to a point in the last N days needs
    (so also the newest one taken before that window). Both may be given: a backup
    either keeps is kept."""

    keep_full: int | None = None
    keep_days: float | None = None

    def describe(self) -> str:
        parts = []
        if self.keep_full is not None:
            parts.append(f"the newest {self.keep_full} full backups")
        if self.keep_days is not None:
            parts.append(f"restores to any point of the last {self.keep_days:g} days")
        return " and ".join(parts) or "nothing (no policy)"


def plan_policy(
    backups: Sequence[Backup],
    policy: Policy,
    now: datetime,
    files: Sequence[WalName],
    standbys: Sequence[StandbyPosition],
    segment_size: int = DEFAULT_SEGMENT_SIZE,
) -> RetentionPlan:
    if policy.keep_full is None and policy.keep_days is None:
        raise ValueError("a retention policy needs keep_full or keep_days")
    if policy.keep_full is not None and policy.keep_full < 1:
        raise ValueError("keep at least one full backup")
    ordered = sorted(backups, key=lambda b: (b.stop_lsn, b.stop_time))
    keep: set[str] = set()
    if policy.keep_full is not None:
        fulls = [b for b in ordered if b.kind is BackupKind.FULL]
        for full in fulls[-policy.keep_full :]:
            keep |= {full.label} | descendants(full.label, ordered)
    if policy.keep_days is not None:
        cutoff = now - timedelta(days=policy.keep_days)
        inside = [b for b in ordered if b.stop_time >= cutoff]
        before = [b for b in ordered if b.stop_time < cutoff]
        keep |= {b.label for b in inside}
        if before:  # a restore to the window's start begins from this one
            keep.add(before[-1].label)
    labels = with_ancestors(keep, ordered)
    reasons = [f"keeping {policy.describe()}"]
    return _wal_plan(ordered, labels, files, standbys, segment_size, reasons)


def _wal_plan(
    ordered: Sequence[Backup],
    labels: set[str],
    files: Sequence[WalName],
    standbys: Sequence[StandbyPosition],
    segment_size: int,
    reasons: list[str],
) -> RetentionPlan:
    kept = tuple(b for b in ordered if b.label in labels)
    dropped = tuple(b for b in ordered if b.label not in labels)
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
