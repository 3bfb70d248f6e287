"""The agents' backup schedule: the leader (the running primary) takes each backup of
``backup.schedule`` when it falls due (model/backup_schedule.py), and records it in the
cluster's events (started, then succeeded or failed with the reason).

A bundled backup reads the data directory: with ``backup.from_standby`` the standby's
own agent takes it (``POST /backup``, through archive/backup.py), on its host.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime

from pgherd.archive import backup as backup_mod
from pgherd.clients.agent import statuses
from pgherd.config import ClusterConfig
from pgherd.errors import PgherdError
from pgherd.model.backup import BackupKind
from pgherd.model.backup_schedule import ScheduledRun, due
from pgherd.model.events import Event, Outcome
from pgherd.model.status import PgState, Role

log = logging.getLogger(__name__)

CHECK_INTERVAL = 20.0


def runs_of(config: ClusterConfig) -> list[ScheduledRun]:
    return [ScheduledRun(r.cron, r.type, r.repo) for r in config.backup.schedule]


def run_on_schedule(
    config: ClusterConfig,
    node: str,
    stop: threading.Event,
    record: Callable[[Event], object],
    interval: float = CHECK_INTERVAL,
) -> None:
    runs = runs_of(config)
    if not runs:
        return
    started = datetime.now(UTC)
    last: dict[str, datetime] = {}
    while not stop.wait(interval):
        try:
            (me,) = statuses([config.node(node)])
            if me.role is not Role.PRIMARY or me.state is not PgState.RUNNING:
                started = datetime.now(UTC)  # a new leader starts counting from now
                continue
            now = datetime.now(UTC)
            for run in due(runs, last, started, now):
                last[run.key] = now
                take(config, node, run, record)
        except Exception:
            log.exception("the backup schedule failed")


def take(
    config: ClusterConfig, node: str, run: ScheduledRun, record: Callable[[Event], object]
) -> None:
    event = Event(
        operation="backup",
        node=node,
        requested_by=f"schedule {run.cron!r}",
        details={"type": run.kind, "repository": run.repository or "first"},
    )
    record(event)
    try:
        made = backup_mod.create(
            config,
            None,
            BackupKind(run.kind),
            False,
            config.backup.from_standby,
            run.repository,
            lambda _done, _total: None,
            lambda text: log.info("scheduled backup: %s", text),
        )
    except (PgherdError, OSError) as exc:
        text = exc.one_line() if isinstance(exc, PgherdError) else str(exc)
        log.warning("scheduled %s backup failed: %s", run.kind, text)
        record(event.finish(Outcome.FAILED, text))
        return
    log.info("scheduled %s backup %s of %s done", made.kind, made.label, made.node)
    record(
        event.finish(
            Outcome.SUCCEEDED,
            f"{made.kind} backup {made.label} of {made.node}",
            label=made.label,
            size_bytes=made.size_bytes,
            stored_bytes=made.stored_bytes,
        )
    )
