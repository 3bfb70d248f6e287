"""``pgherd archive cleanup --keep N``: carry out the retention plan (model/retention.py)."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from pgherd.archive.backup import archive_of, archives_of
from pgherd.archive.catalog import Archive
from pgherd.archive.storage import LocalStorage
from pgherd.clients.agent import statuses
from pgherd.config import ClusterConfig
from pgherd.errors import InvalidInput
from pgherd.model import retention
from pgherd.model.retention import Policy, RetentionPlan, StandbyPosition
from pgherd.model.status import PgState, Role

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CleanupResult:
    repository: str
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


def cleanup(
    config: ClusterConfig,
    keep: int | None,
    dry_run: bool,
    policy: Policy | None = None,
    repository: str | None = None,
) -> list[CleanupResult]:
    """Each repository (or the one named) by ``--keep N``, by ``policy``, or by its own
    ``retention`` from pgherd.yaml; a repository with none of these is left alone."""
    archives = [archive_of(config, repository)] if repository else archives_of(config)
    standbys = standby_positions(config)
    results = []
    for archive in archives:
        mine = policy
        if keep is None and mine is None:
            own = archive.repository.spec.retention
            if own.keep_full is None and own.keep_days is None:
                continue
            mine = Policy(own.keep_full, own.keep_days)
        results.append(_cleanup_one(archive, keep, mine, standbys, dry_run))
    if not results:
        raise InvalidInput(
            "no retention to apply",
            "pass --keep N, --keep-full N or --keep-days D, or set "
            "archive.retention in pgherd.yaml",
        )
    return results


def _cleanup_one(
    archive: Archive,
    keep: int | None,
    policy: Policy | None,
    standbys: list[StandbyPosition],
    dry_run: bool,
) -> CleanupResult:
    archive.require()
    wal = archive.wal
    size = wal.identity().wal_segment_size
    files = wal.files()
    backups = archive.backups()
    names = [f.wal for f in files]
    plan: RetentionPlan
    if keep is not None:
        plan = retention.plan(backups, keep, names, standbys, size)
    else:
        assert policy is not None
        plan = retention.plan_policy(backups, policy, datetime.now(UTC), names, standbys, size)
    doomed = set(plan.delete_files)
    freed = 0
    # newest first: a backup is never removed before one that builds on it
    for backup in sorted(plan.delete_backups, key=lambda b: b.stop_lsn, reverse=True):
        if dry_run:
            freed += backup.stored_bytes
        else:
            freed += archive.delete_backup(backup)
    for found in files:
        if found.name in doomed:
            freed += found.stored_bytes
            if not dry_run:
                wal.delete(found)
    if not dry_run and isinstance(archive.repository.raw, LocalStorage):
        archive.repository.raw.sweep_temporary()
    return CleanupResult(
        repository=archive.name,
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
    if settings is None:
        return
    policies = any(
        s.retention.keep_full is not None or s.retention.keep_days is not None
        for s in settings.specs()
    )
    if settings.cleanup_keep is None and not policies:
        return
    while not stop.wait(settings.cleanup_interval):
        try:
            (me,) = statuses([config.node(node)])
            if me.role is not Role.PRIMARY or me.state is not PgState.RUNNING:
                continue
            for result in cleanup(config, settings.cleanup_keep, dry_run=False):
                if result.removed_files or result.removed_backups:
                    log.info(
                        "archive cleanup of %s: removed %d backups and %d WAL files, "
                        "%d bytes freed",
                        result.repository,
                        len(result.removed_backups),
                        len(result.removed_files),
                        result.freed_bytes,
                    )
        except Exception:
            log.exception("scheduled archive cleanup failed")
