"""``pgherd backup info`` and ``pgherd archive check``: what each repository can restore,
and proof that archiving reaches every repository and comes back intact."""

from __future__ import annotations

import hashlib
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from pgherd.archive.backup import archives_of, primary_status
from pgherd.archive.catalog import Archive
from pgherd.archive.restore_view import archive_view
from pgherd.clients.archive import ArchiveAgentClient
from pgherd.config_lite import LiteConfig, Validated, as_lite
from pgherd.errors import PgherdError
from pgherd.model.backup import Backup
from pgherd.model.backup_chain import BrokenChain, chain
from pgherd.model.recovery_target import timeline_path
from pgherd.model.wal import contiguous_end


@dataclass(frozen=True)
class BackupInfo:
    label: str
    kind: str
    parent: str | None
    chain: list[str]  # the full backup first; a restore needs all of them
    node: str
    timeline: int
    size_bytes: int
    stored_bytes: int
    wal_start: str
    wal_stop: str
    consistent_at: str  # stop time: the earliest point a restore from it reaches


@dataclass(frozen=True)
class RepositoryInfo:
    name: str
    where: str
    encrypted: bool
    backups: list[BackupInfo]
    wal_segments: int
    wal_bytes: int
    earliest_restorable: str | None  # the oldest backup's consistency point
    latest_restorable: str | None  # the end of WAL reachable without a gap
    latest_restorable_lsn: str | None
    problems: list[str] = field(default_factory=list)


def info(config: Validated | LiteConfig) -> list[RepositoryInfo]:
    return [_one(archive) for archive in archives_of(config)]


def _one(archive: Archive) -> RepositoryInfo:
    problems: list[str] = []
    try:
        archive.require()
        backups = archive.backups()
        files = archive.wal.files()
        view = archive_view(archive.wal)
    except (PgherdError, OSError) as exc:
        text = exc.one_line() if isinstance(exc, PgherdError) else str(exc)
        return RepositoryInfo(
            archive.name, archive.describe(), False, [], 0, 0, None, None, None, [text]
        )
    rows = []
    for b in backups:
        try:
            labels = [c.label for c in chain(b, backups)]
        except BrokenChain as exc:
            labels = []
            problems.append(str(exc))
        rows.append(_row(b, labels))
    earliest = min(backups, key=lambda b: b.stop_lsn, default=None)
    latest_lsn = latest_time = None
    newest = max(backups, key=lambda b: b.stop_lsn, default=None)
    if newest is not None:
        path = timeline_path(view, None)
        if path.contains(newest.stop_timeline, newest.stop_lsn):
            end = contiguous_end(path, newest.start_lsn, set(view.segments), view.segment_size)
            if end is not None:
                latest_lsn = str(end.end(view.segment_size))
                stamps = [
                    f.archived_at
                    for f in files
                    if f.wal.segment is not None and f.wal.segment == end
                ]
                if stamps:
                    latest_time = datetime.fromtimestamp(max(stamps), UTC).isoformat(
                        timespec="seconds"
                    )
            else:
                problems.append(f"the WAL from backup {newest.label}'s start is missing")
    return RepositoryInfo(
        name=archive.name,
        where=archive.describe(),
        encrypted=archive.repository.cipher is not None,
        backups=rows,
        wal_segments=sum(1 for f in files if f.wal.segment is not None),
        wal_bytes=sum(f.stored_bytes for f in files),
        earliest_restorable=(
            earliest.stop_time.isoformat(timespec="seconds") if earliest else None
        ),
        latest_restorable=latest_time,
        latest_restorable_lsn=latest_lsn,
        problems=problems,
    )


def _row(b: Backup, labels: list[str]) -> BackupInfo:
    return BackupInfo(
        label=b.label,
        kind=str(b.kind),
        parent=b.parent,
        chain=labels,
        node=b.node,
        timeline=b.timeline,
        size_bytes=b.size_bytes,
        stored_bytes=b.stored_bytes,
        wal_start=str(b.start_lsn),
        wal_stop=str(b.stop_lsn),
        consistent_at=b.stop_time.isoformat(timespec="seconds"),
    )


# ---- archive check ----------------------------------------------------------------------


@dataclass(frozen=True)
class RepositoryCheck:
    name: str
    where: str
    archived_after: float | None  # seconds from the switch until the segment was there
    fetched: bool
    detail: str


@dataclass(frozen=True)
class ArchiveCheck:
    segment: str
    lsn: str
    repositories: list[RepositoryCheck]

    @property
    def ok(self) -> bool:
        return all(r.fetched for r in self.repositories)


def check(config: Validated | LiteConfig, timeout: float = 60) -> ArchiveCheck:
    """Switch the primary's WAL, wait for the closed segment in every repository, fetch it
    back from each and match it to its checksum."""
    config = as_lite(config)
    archives = archives_of(config)
    for archive in archives:
        archive.require()
    primary = config.node(primary_status(config).name)
    switched = ArchiveAgentClient(primary, config.read_token()).switch_wal()
    started = time.monotonic()
    results = []
    for archive in archives:
        results.append(_check_one(archive, switched.segment, started, timeout))
    return ArchiveCheck(switched.segment, str(switched.lsn), results)


def _check_one(archive: Archive, segment: str, started: float, timeout: float) -> RepositoryCheck:
    deadline = started + timeout
    try:
        while not archive.wal.find(segment):
            if time.monotonic() > deadline:
                return RepositoryCheck(
                    archive.name,
                    archive.describe(),
                    None,
                    False,
                    f"{segment} did not arrive within {timeout:.0f} s (`pgherd archive status`)",
                )
            time.sleep(0.05)
        after = time.monotonic() - started
        with tempfile.TemporaryDirectory(prefix="pgherd-check-") as scratch:
            target = Path(scratch) / segment
            archive.wal.fetch(segment, target)
            digest = hashlib.sha256(target.read_bytes()).hexdigest()
        return RepositoryCheck(
            archive.name, archive.describe(), after, True, f"fetched back, sha256 {digest[:12]}…"
        )
    except (PgherdError, OSError) as exc:
        text = exc.one_line() if isinstance(exc, PgherdError) else str(exc)
        return RepositoryCheck(archive.name, archive.describe(), None, False, text)
