"""``pgherd archive cleanup --keep N``: carry out the retention plan (model/retention.py)."""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass

from pgherd.archive.backup import archive_of
from pgherd.archive.storage import fsync_dir
from pgherd.clients.agent import statuses
from pgherd.config import ClusterConfig
from pgherd.model import retention
from pgherd.model.retention import RetentionPlan, StandbyPosition
from pgherd.model.status import PgState, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupResult:
    dry_run: bool
    kept_backups: list[str]
    removed_backups: list[str]
    removed_files: list[str]
    freed_bytes: int
    reasons: list[str]


def standby_positions(config: ClusterConfig) -> list[StandbyPosition]:
    """Every node that is not a running primary, with where it has replayed to."""
    found = []
    for status in statuses(config.nodes):
        if status.role is Role.PRIMARY and status.state is PgState.RUNNING:
            continue
        found.append(StandbyPosition(status.name, status.replay_lsn, status.timeline))
    return found


def cleanup(config: ClusterConfig, keep: int, dry_run: bool) -> CleanupResult:
    archive = archive_of(config)
    wal = archive.wal
    size = wal.identity().wal_segment_size
    files = wal.files()
    plan: RetentionPlan = retention.plan(
        archive.backups(), keep, [f.wal for f in files], standby_positions(config), size
    )
    doomed = set(plan.delete_files)
    freed = 0
    for backup in plan.delete_backups:
        directory = archive.backup_dir(backup.label)
        freed += sum(f.stat().st_size for f in directory.rglob("*") if f.is_file())
        if not dry_run:
            shutil.rmtree(directory)
    for found in files:
        if found.name in doomed:
            freed += found.stored_bytes
            if not dry_run:
                wal.delete(found)
    if not dry_run and plan.delete_backups:
        fsync_dir(archive.backups_dir)
    return CleanupResult(
        dry_run=dry_run,
        kept_backups=[b.label for b in plan.keep_backups],
        removed_backups=[b.label for b in plan.delete_backups],
        removed_files=sorted(doomed),
        freed_bytes=freed,
        reasons=list(plan.reasons),
    )


def run_on_schedule(config: ClusterConfig, node: str, stop: threading.Event) -> None:
    """The agent's loop: while this node is the running primary, clean up every
    ``archive.cleanup_interval`` seconds keeping ``archive.cleanup_keep`` backups."""
    settings = config.archive
    if settings is None or settings.cleanup_keep is None:
        return
    while not stop.wait(settings.cleanup_interval):
        try:
            (me,) = statuses([config.node(node)])
            if me.role is not Role.PRIMARY or me.state is not PgState.RUNNING:
                continue
            result = cleanup(config, settings.cleanup_keep, dry_run=False)
            if result.removed_files or result.removed_backups:
                log.info(
                    "archive cleanup: removed %d backups and %d WAL files, %d bytes freed",
                    len(result.removed_backups),
                    len(result.removed_files),
                    result.freed_bytes,
                )
        except Exception:
            log.exception("scheduled archive cleanup failed")
