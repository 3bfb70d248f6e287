"""What an archive holds, as the restore planner (model/recovery_target.py) sees it."""

from __future__ import annotations

from datetime import UTC, datetime

from pgherd.archive.store import WalArchive
from pgherd.model.recovery_target import ArchiveView
from pgherd.model.wal import WalKind, parse_history


def archive_view(wal: WalArchive) -> ArchiveView:
    files = wal.files()
    segments = frozenset(
        f.wal.segment for f in files if f.wal.kind is WalKind.SEGMENT and f.wal.segment
    )
    histories = {
        f.wal.timeline: parse_history(wal.read(f).decode())
        for f in files
        if f.wal.kind is WalKind.HISTORY
    }
    newest = max((f.archived_at for f in files if f.wal.kind is WalKind.SEGMENT), default=None)
    return ArchiveView(
        segments=segments,
        histories=histories,
        newest_archived_at=datetime.fromtimestamp(newest, UTC) if newest else None,
        segment_size=wal.identity().wal_segment_size,
    )
