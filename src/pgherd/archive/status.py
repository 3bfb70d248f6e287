"""``pgherd archive status``: what the archive holds and how far it trails the primary."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from pgherd import config as config_mod
from pgherd.archive.backup import archive_of, archives_of, primary_status
from pgherd.archive.store import ArchivedFile
from pgherd.clients.archive import ArchiveAgentClient
from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError
from pgherd.model.archive_api import PusherState
from pgherd.model.lsn import lag_bytes
from pgherd.model.wal import WalKind
from pgherd.pg.archive_sql import ArchiverState


@dataclass(frozen=True)
class ArchiveStatus:
    path: str
    system_identifier: str
    pg_major: int
    files: int
    segments: int
    size_bytes: int
    original_bytes: int  # what the segments held before compression
    oldest_segment: str | None
    newest_segment: str | None
    newest_archived_at: datetime | None
    timelines: list[int]
    backups: int
    restore_points: int
    primary: str | None
    archiver: ArchiverState | None
    trailing_bytes: int | None  # primary's position − the end of the newest segment
    pusher: PusherState | None  # the primary agent's WAL pusher
    repositories: list[str]
    problem: str | None


def status(config: ClusterConfig) -> ArchiveStatus:
    archive = archive_of(config)
    wal = archive.wal
    identity = wal.identity()
    size = identity.wal_segment_size
    files = wal.files()
    segments = [f for f in files if f.wal.kind is WalKind.SEGMENT and f.wal.segment]
    newest = max(segments, key=_order, default=None)
    oldest = min(segments, key=_order, default=None)
    primary: str | None = None
    archiver: ArchiverState | None = None
    pusher: PusherState | None = None
    problem: str | None = None
    try:
        node = config.node(primary_status(config).name)
        primary = node.name
        client = ArchiveAgentClient(node, config_mod.read_token(config))
        archiver = client.archiver()
        pusher = client.pusher()
    except PgherdError as exc:
        problem = exc.message
    trailing = None
    if archiver is not None and newest is not None and newest.wal.segment is not None:
        trailing = lag_bytes(archiver.current_lsn, newest.wal.segment.end(size))
    if pusher is not None and pusher.last_error and pusher.failures:
        problem = f"the WAL pusher failed: {pusher.last_error}"
    if (
        archiver is not None
        and archiver.failed_count
        and (
            archiver.last_failed_time
            and (
                archiver.last_archived_time is None
                or archiver.last_failed_time > archiver.last_archived_time
            )
        )
    ):
        problem = f"archive_command is failing: last failure on {archiver.last_failed_wal}"
    if archiver is not None and config.archive is not None:
        waiting = archiver.ready_count * size
        if waiting > config.archive.queue_max:
            problem = (
                f"archiving falls behind: {waiting // 2**20} MB of WAL waiting in pg_wal "
                f"(archive.queue_max {config.archive.queue_max // 2**20} MB)"
            )
    return ArchiveStatus(
        path=archive.describe(),
        system_identifier=identity.system_identifier,
        pg_major=identity.pg_major,
        files=len(files),
        segments=len(segments),
        size_bytes=sum(f.stored_bytes for f in files),
        original_bytes=len(segments) * size,
        oldest_segment=oldest.name if oldest else None,
        newest_segment=newest.name if newest else None,
        newest_archived_at=(datetime.fromtimestamp(newest.archived_at, UTC) if newest else None),
        timelines=sorted({f.wal.timeline for f in files}),
        backups=len(archive.backups()),
        restore_points=len(archive.restore_points()),
        primary=primary,
        archiver=archiver,
        trailing_bytes=trailing,
        pusher=pusher,
        repositories=[a.describe() for a in archives_of(config)],
        problem=problem,
    )


def _order(found: ArchivedFile) -> tuple[int, int]:
    seg = found.wal.segment
    return (seg.number, seg.timeline) if seg else (0, 0)
