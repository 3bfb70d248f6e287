"""A base backup as the catalog describes it (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pgherd.model.lsn import Lsn


class BackupKind(StrEnum):
    """Full: every file. Differential: what changed since the last full backup.
    Incremental: what changed since the last backup of any kind."""

    FULL = "full"
    DIFFERENTIAL = "differential"
    INCREMENTAL = "incremental"


class BackupFormat(StrEnum):
    """COPY: pg_basebackup's plain copy in a local directory (pgherd's first format).
    BUNDLES: chunks in compressed (optionally encrypted) bundles in any repository."""

    COPY = "copy"
    BUNDLES = "bundles"


@dataclass(frozen=True)
class Backup:
    """One finished base backup.

    ``start_lsn`` is where replay begins (the backup's REDO point) and ``stop_lsn`` where
    the copy becomes consistent: a recovery target before ``stop_lsn`` cannot be reached
    from this backup. ``stop_time`` is taken when the copy finished, so it is never
    earlier than the moment the backup became consistent. A differential or incremental
    backup stores only what changed since ``parent`` (its start LSN is the threshold),
    and a restore needs the whole chain back to a full backup.
    """

    label: str
    node: str
    timeline: int
    start_lsn: Lsn
    stop_lsn: Lsn
    stop_timeline: int
    start_time: datetime
    stop_time: datetime
    size_bytes: int
    next_xid: int  # the next transaction ID when the backup started (its checkpoint's)
    system_identifier: str
    pg_major: int
    kind: BackupKind = BackupKind.FULL
    parent: str | None = None
    format: BackupFormat = BackupFormat.COPY
    stored_bytes: int = 0  # what this backup added to the repository (compressed)
    from_standby: bool = False
