"""Point-in-time recovery decisions: which backup, which timeline path, which WAL. Pure.

A restore replays WAL from a base backup's start to the target. The backup must have
become consistent before the target (else PostgreSQL stops with "requested recovery stop
point is before consistent recovery point"), lie on the timeline path to the target, and
every segment between its start and the target (or the end of the archive, for targets
whose LSN is unknown in advance) must be archived. Each refusal here names what is wrong
and what would work instead.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pgherd.errors import InvalidInput, MissingWal, TargetUnreachable
from pgherd.model.backup import Backup
from pgherd.model.lsn import Lsn
from pgherd.model.wal import (
    DEFAULT_SEGMENT_SIZE,
    Segment,
    TimelinePath,
    TimelineSwitch,
    contiguous_end,
    gaps,
)


class TargetAction(StrEnum):
    """What the restored server does at its target (PostgreSQL's recovery_target_action)."""

    PAUSE = "pause"
    PROMOTE = "promote"
    SHUTDOWN = "shutdown"

    @classmethod
    def parse(cls, text: str) -> TargetAction:
        try:
            return cls(text)
        except ValueError:
            raise InvalidInput(
                f"--target-action {text!r} is not one of {', '.join(cls)}",
                "use pause, promote or shutdown",
            ) from None


class Reached(StrEnum):
    """Where a restore stopped: the server paused at the target, promoted, or shut down."""

    PAUSED = "paused"
    PROMOTED = "promoted"
    SHUT_DOWN = "shut down"


class TargetKind(StrEnum):
    TIME = "time"
    NAME = "name"
    LSN = "lsn"
    XID = "xid"
    LATEST = "latest"


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    time: datetime | None = None
    name: str | None = None
    lsn: Lsn | None = None
    xid: int | None = None

    def describe(self) -> str:
        value = {
            TargetKind.TIME: self.time.isoformat() if self.time else None,
            TargetKind.NAME: self.name,
            TargetKind.LSN: str(self.lsn) if self.lsn else None,
            TargetKind.XID: str(self.xid) if self.xid is not None else None,
        }.get(self.kind)
        return "the end of the archive" if value is None else f"{self.kind} {value}"

    def settings(self) -> dict[str, str]:
        """recovery_target_* as PostgreSQL 12+ takes it (no recovery.conf)."""
        if self.kind is TargetKind.TIME and self.time is not None:
            return {"recovery_target_time": self.time.isoformat(sep=" ")}
        if self.kind is TargetKind.NAME and self.name is not None:
            return {"recovery_target_name": self.name}
        if self.kind is TargetKind.LSN and self.lsn is not None:
            return {"recovery_target_lsn": str(self.lsn)}
        if self.kind is TargetKind.XID and self.xid is not None:
            return {"recovery_target_xid": str(self.xid)}
        return {}


@dataclass(frozen=True)
class RestorePoint:
    name: str
    lsn: Lsn
    timeline: int
    time: datetime


@dataclass(frozen=True)
class ArchiveView:
    """What the archive holds, as a restore needs to know it."""

    segments: frozenset[Segment]
    histories: Mapping[int, tuple[TimelineSwitch, ...]]  # timeline → its history file
    newest_archived_at: datetime | None  # when the newest segment was stored
    segment_size: int = DEFAULT_SEGMENT_SIZE

    @property
    def latest_timeline(self) -> int:
        seen = {s.timeline for s in self.segments} | set(self.histories)
        return max(seen, default=1)


@dataclass(frozen=True)
class RestorePlan:
    backup: Backup
    path: TimelinePath
    target: Target
    target_lsn: Lsn | None  # known in advance for LSN and restore-point targets
    first_segment: Segment
    last_segment: Segment  # the last one the replay is known to need
    reason: str


def timeline_path(view: ArchiveView, timeline: int | None) -> TimelinePath:
    """The path to ``timeline`` (None: the latest the archive knows)."""
    target = view.latest_timeline if timeline is None else timeline
    if target > 1 and target not in view.histories:
        raise TargetUnreachable(
            f"the archive has no history file for timeline {target}",
            "pass --timeline with a timeline the archive holds, or omit it",
        )
    return TimelinePath.of(target, view.histories.get(target, ()))


def choose(
    backups: Sequence[Backup],
    target: Target,
    view: ArchiveView,
    restore_points: Sequence[RestorePoint] = (),
    timeline: int | None = None,
) -> RestorePlan:
    """The newest backup that can reach ``target``, with the WAL range it needs."""
    path = timeline_path(view, timeline)
    on_path = [b for b in backups if path.contains(b.stop_timeline, b.stop_lsn)]
    if not on_path:
        raise TargetUnreachable(
            f"no backup lies on timeline {path.target}'s history"
            + ("" if backups else " (the archive holds no backup)"),
            "create one with `pgherd backup create`",
        )
    target_lsn = _target_lsn(target, restore_points)
    eligible = [b for b in on_path if _before(b, target, target_lsn)]
    if not eligible:
        oldest = min(on_path, key=lambda b: b.stop_lsn)
        raise TargetUnreachable(
            f"{target.describe()} is before the oldest backup ({oldest.label}, consistent "
            f"at {oldest.stop_lsn}, {oldest.stop_time.isoformat(timespec='seconds')})",
            "choose a later target; nothing older can be restored",
        )
    backup = max(eligible, key=lambda b: (b.stop_lsn, b.stop_time))
    first = Segment(backup.start_lsn.segment_number(view.segment_size), backup.timeline)
    end = contiguous_end(path, backup.start_lsn, set(view.segments), view.segment_size)
    newest = _newest_on_path(view, path)
    if newest is None or newest < first:
        raise MissingWal(
            f"the archive holds no WAL from backup {backup.label}'s start "
            f"({first.name(view.segment_size)}) onwards",
            "check archive_command on the primary (`pgherd archive status`)",
        )
    if target_lsn is not None:
        archive_end = newest.end(view.segment_size)
        if target_lsn > archive_end:
            raise TargetUnreachable(
                f"{target.describe()} is after the end of the archive ({archive_end})",
                "archive the current segment first (SELECT pg_switch_wal()) or choose an "
                "earlier target",
            )
        last = Segment(
            target_lsn.segment_number(view.segment_size),
            path.timeline_at(target_lsn),
        )
    else:
        last = newest
    if (
        target.kind is TargetKind.TIME
        and target.time is not None
        and view.newest_archived_at is not None
        and target.time > view.newest_archived_at
    ):
        raise TargetUnreachable(
            f"{target.describe()} is after the end of the archive (the newest segment was "
            f"archived at {view.newest_archived_at.isoformat(timespec='seconds')})",
            "archive the current segment first (SELECT pg_switch_wal()), or use --latest",
        )
    needed = path.segments(backup.start_lsn, last.end(view.segment_size), view.segment_size)
    missing = gaps(needed, set(view.segments))
    if missing:
        raise MissingWal(
            f"the archive is missing WAL {missing[0].describe(view.segment_size)} "
            f"(needed to replay backup {backup.label} to {target.describe()})"
            + (f"; replay would stop after {end.name(view.segment_size)}" if end else ""),
            "restore to a point before the gap, or restore from a later backup",
        )
    return RestorePlan(
        backup=backup,
        path=path,
        target=target,
        target_lsn=target_lsn,
        first_segment=first,
        last_segment=last,
        reason=f"backup {backup.label} is the newest consistent before {target.describe()}",
    )


def _target_lsn(target: Target, points: Sequence[RestorePoint]) -> Lsn | None:
    if target.kind is TargetKind.LSN:
        return target.lsn
    if target.kind is TargetKind.NAME:
        for point in points:
            if point.name == target.name:
                return point.lsn
        known = ", ".join(sorted(p.name for p in points)) or "none"
        raise TargetUnreachable(
            f"unknown restore point {target.name!r}",
            f"restore points in the archive: {known}",
        )
    return None


def _before(backup: Backup, target: Target, target_lsn: Lsn | None) -> bool:
    if target_lsn is not None:
        return backup.stop_lsn <= target_lsn
    if target.kind is TargetKind.TIME and target.time is not None:
        return backup.stop_time <= target.time
    if target.kind is TargetKind.XID and target.xid is not None:
        return backup.next_xid <= target.xid
    return True


def _newest_on_path(view: ArchiveView, path: TimelinePath) -> Segment | None:
    on_path = [
        s
        for s in view.segments
        if path.timeline_of_segment(s.number, view.segment_size) == (s.timeline)
    ]
    return max(on_path, default=None)
