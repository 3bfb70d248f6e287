"""A base backup as the catalog describes it (pure data)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pgherd.model.lsn import Lsn


@dataclass(frozen=True)
class Backup:
    """One finished base backup.

    ``start_lsn`` is where replay begins (the backup's REDO point) and ``stop_lsn`` where
    the copy becomes consistent: a recovery target before ``stop_lsn`` cannot be reached
    from this backup. ``stop_time`` is taken when pg_basebackup returned, so it is never
    earlier than the moment the backup became consistent.
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
