"""Backup chains: which backup a new differential or incremental builds on, and which
backups a restore of one needs. Pure.

A differential backup stores what changed since the newest full backup; an incremental
one what changed since the newest backup of any kind. The parent must be a bundled
backup (pgherd's first format, a pg_basebackup copy, has no chunk manifest), of the same
cluster and major version, and on the history of the timeline the node is on now: a
backup taken on a timeline that branched off before it was taken describes pages this
timeline never had. Without a usable parent, a full backup is taken, and the reason
says why.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgherd.model.backup import Backup, BackupFormat, BackupKind
from pgherd.model.wal import TimelinePath


@dataclass(frozen=True)
class ParentChoice:
    kind: BackupKind  # what will be taken (a full one when no parent fits)
    parent: Backup | None
    reason: str


def choose_parent(
    asked: BackupKind,
    backups: Sequence[Backup],
    path: TimelinePath,
    system_identifier: str,
    pg_major: int,
) -> ParentChoice:
    if asked is BackupKind.FULL:
        return ParentChoice(BackupKind.FULL, None, "a full backup was asked for")
    usable = [
        b
        for b in backups
        if b.format is BackupFormat.BUNDLES
        and b.system_identifier == system_identifier
        and b.pg_major == pg_major
        and path.contains(b.stop_timeline, b.stop_lsn)
    ]
    if asked is BackupKind.DIFFERENTIAL:
        usable = [b for b in usable if b.kind is BackupKind.FULL]
    if not usable:
        what = "full backup" if asked is BackupKind.DIFFERENTIAL else "backup"
        return ParentChoice(
            BackupKind.FULL,
            None,
            f"no bundled {what} on timeline {path.target}'s history to build a {asked} "
            "backup on: taking a full one",
        )
    parent = max(usable, key=lambda b: (b.stop_lsn, b.stop_time))
    return ParentChoice(
        asked,
        parent,
        f"a {asked} backup on {parent.kind} backup {parent.label} "
        f"(changes since {parent.start_lsn})",
    )


class BrokenChain(ValueError):
    """A backup whose parent is gone from the catalog."""


def chain(backup: Backup, backups: Sequence[Backup]) -> list[Backup]:
    """``backup`` and its ancestors, the full backup first."""
    by_label = {b.label: b for b in backups}
    found = [backup]
    while found[-1].parent is not None:
        parent = by_label.get(found[-1].parent)
        if parent is None:
            raise BrokenChain(
                f"backup {found[-1].label} needs {found[-1].parent}, which is not in the catalog"
            )
        if parent in found:
            raise BrokenChain(f"backup {parent.label} is its own ancestor")
        found.append(parent)
    return list(reversed(found))


def with_ancestors(keep: set[str], backups: Sequence[Backup]) -> set[str]:
    """``keep`` closed under "needs": every ancestor of a kept backup is kept."""
    by_label = {b.label: b for b in backups}
    closed = set(keep)
    for label in keep:
        current = by_label.get(label)
        while current is not None and current.parent is not None:
            closed.add(current.parent)
            current = by_label.get(current.parent)
    return closed


def descendants(root: str, backups: Sequence[Backup]) -> set[str]:
    """Every backup that builds on ``root``, directly or not."""
    found: set[str] = set()
    frontier = {root}
    while frontier:
        frontier = {b.label for b in backups if b.parent in frontier} - found
        found |= frontier
    return found
