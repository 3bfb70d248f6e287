"""``backup.schedule``: which scheduled backups are due. Pure (croniter is arithmetic).

Each entry's cron expression is read in UTC. An entry is due when a time it names has
passed since it last ran (or since the schedule started, for an entry that never ran):
a leader that was down at 01:00 takes the 01:00 backup when it comes back, once, not
once per missed day.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from croniter import croniter


@dataclass(frozen=True)
class ScheduledRun:
    cron: str
    kind: str  # full, differential, incremental
    repository: str | None = None

    @property
    def key(self) -> str:
        return f"{self.cron}|{self.kind}|{self.repository or ''}"


def next_time(cron: str, after: datetime) -> datetime:
    found: datetime = croniter(cron, after).get_next(datetime)
    return found


def due(
    runs: Sequence[ScheduledRun],
    last: Mapping[str, datetime],
    started: datetime,
    now: datetime,
) -> list[ScheduledRun]:
    """The entries to run now; a full backup first when several fall due together (the
    differential or incremental then builds on it)."""
    found = [r for r in runs if next_time(r.cron, last.get(r.key, started)) <= now]
    order = {"full": 0, "differential": 1, "incremental": 2}
    return sorted(found, key=lambda r: order.get(r.kind, 3))
