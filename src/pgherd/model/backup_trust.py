"""Which files a backup or a delta restore may take as known without reading them (pure).

Reading is what an incremental backup and a delta restore cost: SHA-256 of every file is
about as slow as copying it. pgBackRest's rule, followed here, is that a file whose size
and modification time are those a manifest recorded holds what that manifest recorded.
It rests on one fact: every write changes a file's modification time (``write(2)`` and
``ftruncate(2)`` set it; PostgreSQL never resets it), so a file not written since it was
recorded still shows the recorded time, to the nanosecond.

Two things can defeat it, and each rule below says how it is guarded:

- **Time granularity** ("racy git"). A file written again within the same clock tick as
  its recorded time, after it was read, shows the same time with other bytes. A time is
  *settled* when it lies more than ``MARGIN_NS`` before the start of the backup that
  recorded it (backup_label's START TIME is truncated to the second; a tick is far
  shorter): any later write then shows a later time. An unsettled time is never trusted
  by a backup, and by a delta restore only in a file whose metadata changed after that
  backup had finished while its time stayed the recorded one — what a restore setting
  the time (``utime``) leaves, and what a write cannot (a write moves both times).
- **Someone resets the time by hand** (``touch -d``, ``cp -p`` of other bytes, a tool that
  restores times). That is not guarded: it is the documented trade-off, and the
  ``--checksum`` options read and hash everything, as ``pgbackrest --delta`` does.

A backup trusts only the data directory of the node its parent read (a standby's or
another node's file of the same time may hold other bytes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pgherd.model.backup_manifest import FileEntry

MARGIN_NS = 1_000_000_000  # START TIME is truncated to the second


@dataclass(frozen=True, slots=True)
class Stat:
    """A file as ``stat(2)`` shows it now."""

    size: int
    mtime_ns: int
    ctime_ns: int = 0


@dataclass(frozen=True, slots=True)
class Recorded:
    """A file as one backup recorded it, with that backup's times."""

    entry: FileEntry
    started: datetime  # the backup's start (backup_label's START TIME)
    finished: datetime  # when its copy ended


def settled_before_ns(started: datetime) -> int:
    """Times before this are settled for a backup that started at ``started``."""
    return int(started.timestamp() * 1e9) - MARGIN_NS


def backup_read_before(
    parent_started: datetime | None, parent_node: str | None, node: str, checksum: bool
) -> int | None:
    """The bound under which a file's time is trusted by an incremental or differential
    backup of ``node``, or None when no file is trusted: ``--checksum``, no parent, or
    a parent that read another node's data directory."""
    if checksum or parent_started is None or parent_node != node:
        return None
    return settled_before_ns(parent_started)


def backup_skips(now: Stat, parent: FileEntry | None, read_before_ns: int | None) -> bool:
    """Whether a backup takes the parent's entry for this file without reading it: the
    parent recorded a time, the size and time are the recorded ones, and that time is
    settled (strictly older than the parent's start, less the margin)."""
    return (
        read_before_ns is not None
        and parent is not None
        and parent.mtime_ns != 0
        and (now.size, now.mtime_ns) == (parent.size, parent.mtime_ns)
        and now.mtime_ns < read_before_ns
    )


def restore_knows(now: Stat, recorded: Sequence[Recorded]) -> FileEntry | None:
    """What a local file holds without reading it, for a delta restore: the entry of the
    first backup (the one restored, then its ancestors) whose recorded size and time it
    shows, if that time is settled or the file's metadata changed after that backup
    finished (a restore set the time). None: the file must be read."""
    for one in recorded:
        entry = one.entry
        if entry.mtime_ns == 0 or (now.size, now.mtime_ns) != (entry.size, entry.mtime_ns):
            continue
        if entry.mtime_ns < settled_before_ns(one.started):
            return entry
        if now.ctime_ns > int(one.finished.timestamp() * 1e9):
            return entry
    return None


def known_hashes(known: FileEntry, target: FileEntry) -> list[str | None]:
    """The local file's chunk hashes, for :func:`backup_manifest.delta_plan`, when it holds
    ``known``'s bytes: a restore laid out each chunk's stored bytes, the node itself
    holds the bytes as read; the two differ only where the page LSNs said the parent's
    copy serves (hint bits), so either is the chunk for a restore that replays WAL from
    the backup's start. The one the target holds is given, when there is one."""
    hashes: list[str | None] = []
    for index, chunk in enumerate(known.chunks):
        wanted = target.chunks[index] if index < len(target.chunks) else None
        images = (wanted.hash, wanted.stored) if wanted is not None else ()
        hashes.append(chunk.hash if chunk.hash in images else chunk.stored)
    return hashes
