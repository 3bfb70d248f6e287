"""What the agents' archive endpoints answer about backups and the WAL pusher (models for
``POST /backup`` and ``GET /archive/pusher``, read by clients/archive.py)."""

from __future__ import annotations

from datetime import datetime

from pgherd.model.status import Frozen


class BackupMade(Frozen):
    """A backup an agent took of its node: the catalog entry (archive/catalog.py's JSON)."""

    label: str
    node: str
    timeline: int
    start_lsn: str
    stop_lsn: str
    stop_timeline: int
    start_time: datetime
    stop_time: datetime
    size_bytes: int
    next_xid: int
    system_identifier: str
    pg_major: int
    kind: str
    parent: str | None
    format: str
    stored_bytes: int
    from_standby: bool


class PusherState(Frozen):
    """The agent's WAL pusher (archive/pusher.py PushStatus), or ``running: false``."""

    running: bool
    workers: int = 0
    waiting: int = 0  # .ready files PostgreSQL has not had acknowledged yet
    waiting_bytes: int = 0
    queue_max_bytes: int = 0
    over_limit: bool = False  # waiting_bytes > queue_max_bytes
    in_flight: int = 0
    pushed: int = 0
    pushed_bytes: int = 0
    failures: int = 0
    last_error: str | None = None
    last_pushed: str | None = None
    oldest_waiting: str | None = None
    seconds_per_segment: float | None = None
