"""Monitoring history: what an agent samples every few seconds, as plain values. Pure.

Each agent samples the replication *it sends*: every row of its ``pg_stat_replication``
(a physical standby, a logical subscription or a mesh worker's stream; the receiving
side names itself through ``application_name``) and, on a primary that archives, how much
WAL the archive does not hold yet. Sampling the sender means one connection and two queries per node
and no connection to anyone else; the console merges the samples of every agent.

Lags are measured against the sender's own position: its current WAL position on a
primary, what it has received on a cascading standby.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import Field

from pgherd.model.lsn import Lsn, lag_bytes
from pgherd.model.status import Frozen
from pgherd.model.wal import DEFAULT_SEGMENT_SIZE, parse_segment

# The most samples one read returns (the API's ``limit`` and the store's both stop here).
MAX_LIMIT = 100_000


class SampleKind(StrEnum):
    STANDBY = "standby"  # a physical walsender: a streaming standby (or pg_receivewal)
    LOGICAL = "logical"  # a logical walsender: a subscription or a mesh worker
    ARCHIVE = "archive"  # how far the archive trails the primary


class Sample(Frozen):
    """One measurement of one stream at one time.

    ``lag_bytes``/``lag_seconds`` are the replay lag (for a subscription: what it has
    applied and confirmed; for the archive: bytes not yet archived). ``write_*`` and
    ``flush_*`` are the other two stages a physical standby reports.
    """

    at: datetime
    kind: SampleKind
    subject: str  # the standby's node name, the subscription's name, "archive"
    source: str = ""  # the node that sent (and sampled) it; set by the store's reader
    state: str | None = None  # pg_stat_replication.state: streaming, catchup, ...
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    write_lag_bytes: int | None = None
    flush_lag_bytes: int | None = None
    write_lag_seconds: float | None = None
    flush_lag_seconds: float | None = None


class HistoryPage(Frozen):
    """``GET /history``: one node's samples, oldest first."""

    node: str
    interval: float
    samples: tuple[Sample, ...] = ()
    oldest: datetime | None = None  # the oldest sample kept at all (not just returned)


class CleanupResult(Frozen):
    node: str
    removed: int
    kept: int
    cutoff: datetime
    error: str | None = Field(default=None)


@dataclass(frozen=True)
class SenderRow:
    """A row of the sampler's query over pg_stat_replication (see pg/history_sql.py)."""

    application_name: str
    logical: bool
    state: str | None
    write_lsn: Lsn | None
    flush_lsn: Lsn | None
    replay_lsn: Lsn | None
    write_lag_s: float | None
    flush_lag_s: float | None
    replay_lag_s: float | None


@dataclass(frozen=True)
class ArchiverRow:
    archive_mode: str
    oldest_ready: str | None  # the oldest segment waiting for archive_command (.ready)
    ready_count: int


@dataclass(frozen=True)
class SenderState:
    """What one sample round read from the node: its position, senders, archiver."""

    in_recovery: bool
    position: Lsn | None
    senders: tuple[SenderRow, ...]
    archiver: ArchiverRow | None
    segment_size: int = DEFAULT_SEGMENT_SIZE


def samples(state: SenderState, at: datetime) -> list[Sample]:
    """The samples of one round: one per sender, one for the archive on a primary."""
    found = [_sender_sample(row, state.position, at) for row in state.senders]
    trailing = archive_trailing(state)
    if trailing is not None:
        found.append(Sample(at=at, kind=SampleKind.ARCHIVE, subject="archive", lag_bytes=trailing))
    return found


def _sender_sample(row: SenderRow, position: Lsn | None, at: datetime) -> Sample:
    physical = not row.logical
    return Sample(
        at=at,
        kind=SampleKind.LOGICAL if row.logical else SampleKind.STANDBY,
        subject=row.application_name,
        state=row.state,
        lag_bytes=_behind(position, row.replay_lsn),
        lag_seconds=row.replay_lag_s if row.replay_lag_s is not None else _idle(row, position),
        write_lag_bytes=_behind(position, row.write_lsn) if physical else None,
        flush_lag_bytes=_behind(position, row.flush_lsn) if physical else None,
        write_lag_seconds=row.write_lag_s if physical else None,
        flush_lag_seconds=row.flush_lag_s if physical else None,
    )


def _behind(position: Lsn | None, reached: Lsn | None) -> int | None:
    return lag_bytes(position, reached)


def _idle(row: SenderRow, position: Lsn | None) -> float | None:
    """PostgreSQL clears the lag times once a receiver is idle and caught up: that is a
    lag of zero, not an unknown one."""
    if row.replay_lsn is not None and position is not None and row.replay_lsn >= position:
        return 0.0
    return None


def archive_trailing(state: SenderState) -> int | None:
    """Bytes of WAL on the primary that the archive does not hold yet: from the start of
    the oldest segment still waiting for archive_command (its ``.ready`` file), or else of
    the segment being written, to the current position. None on a standby or where
    archiving is off."""
    archiver = state.archiver
    if state.in_recovery or archiver is None or archiver.archive_mode == "off":
        return None
    if state.position is None:
        return None
    size = state.segment_size
    reached = Lsn(state.position.segment_number(size) * size)
    if archiver.oldest_ready is not None:
        try:
            waiting = parse_segment(archiver.oldest_ready.removesuffix(".ready"), size)
        except ValueError:
            pass
        else:
            reached = min(reached, waiting.start(size))
    return max(state.position - reached, 0)


def cutoff(now: datetime, keep_days: float) -> datetime:
    """Samples older than this are trimmed."""
    return now - timedelta(days=keep_days)


def lag_series(
    found: Sequence[Sample], kind: SampleKind, subject: str, since: datetime | None = None
) -> list[Sample]:
    """The samples of one stream, oldest first, one per time (the same stream may have
    been sampled by two senders around a switchover: the first wins)."""
    seen: set[datetime] = set()
    picked = []
    for sample in sorted(found, key=lambda s: s.at):
        if sample.kind is not kind or sample.subject != subject or sample.at in seen:
            continue
        if since is not None and sample.at < since:
            continue
        seen.add(sample.at)
        picked.append(sample)
    return picked


def now() -> datetime:
    return datetime.now(UTC)
