"""Waiting for a restored server to reach its target, and timing how it got there.

The server is watched from postmaster.pid and its log, without connecting: a
connection every poll would fork a backend each time and take CPU from replay. One
connection at the end confirms the state and reads the position reached.

The lines the server logs as it passes each step of a recovery are noted (with
``time.monotonic``, when this process first reads them: 50 ms resolution) and make the
restore's server phases: from the start to "starting point-in-time/archive recovery"
(the process start and the fsync of the whole data directory that a backup_label
demands), from there to "redo starts" (the checkpoint record read, the first segment
fetched), replay to "redo done"/"pausing"/"recovery stopping", and the promotion to
"ready to accept connections" (the end-of-recovery checkpoint, the new timeline).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pgherd.archive.phases import Phases
from pgherd.errors import PgherdError, TargetUnreachable, TimedOut
from pgherd.model.recovery_target import Reached, Target, TargetAction, TargetKind
from pgherd.pg import process, replay_sql
from pgherd.pg.instance import Instance

POLL = 0.05
# (the phase that ends when the server logs one of these, the lines), in order
MARKS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("server_start", ("starting point-in-time recovery", "starting archive recovery")),
    ("recovery_start", ("redo starts at",)),
    ("replay", ("recovery stopping ", "redo done at", "pausing at the end of recovery")),
    # not "… accept read-only connections", which hot standby logs
    ("promotion", ("database system is ready to accept connections",)),
)
PROMOTED = "database system is ready to accept connections"
PAUSED = "pausing at the end of recovery"


@dataclass(frozen=True)
class Arrival:
    """Where replay stopped and what the server did there."""

    reached: Reached
    lsn: str | None
    time: datetime | None
    timeline: int | None  # None: not said (the backup's timeline path tells)


@dataclass(frozen=True)
class Waiting:
    """What to wait for, and until when (a ``time.monotonic`` reading)."""

    target: Target
    action: TargetAction
    deadline: float
    timeout: float  # seconds (said when the deadline passes)
    into: Path


class LogWatch:
    """Which of a set of lines a log file has shown, and when each was first read;
    reads only what the file gained since ``offset``."""

    def __init__(self, path: Path, offset: int = 0) -> None:
        self.path = path
        self.offset = offset
        self.tail = ""
        self.seen: dict[str, float] = {}

    def read(self, texts: tuple[str, ...], now: float) -> None:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                chunk = handle.read()
        except OSError:
            return
        self.offset += len(chunk)
        window = self.tail + chunk.decode(errors="replace")
        for text in texts:
            if text not in self.seen and text in window:
                self.seen[text] = now
        self.tail = window[-256:]  # a line cut between two reads is still found

    def first(self, texts: tuple[str, ...]) -> float | None:
        """When the earliest of ``texts`` was first read; None: none yet."""
        return min((self.seen[t] for t in texts if t in self.seen), default=None)


def log_size(path: Path) -> int:
    """Where a new server's lines will start in its (appended) log."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def wait(
    instance: Instance,
    child: process.Child,
    waiting: Waiting,
    phases: Phases,
    spawned: float,
    log_offset: int,
) -> Arrival:
    """Until the server paused, promoted or stopped at the target; ``phases`` gets the
    server's phases from ``spawned`` (when it was started) on, then ``confirm``."""
    log = LogWatch(instance.log_file, log_offset)
    texts = tuple(t for _phase, marks in MARKS for t in marks)
    try:
        while (now := phases.now()) < waiting.deadline:
            log.read(texts, now)
            code = child.poll()
            if code is not None:
                return _after_exit(instance, waiting, code)
            if _looks_reached(instance, waiting, log):
                reached = _confirm(instance)
                if reached is not None:
                    return reached
            time.sleep(POLL)
    finally:
        _record(phases, log, spawned)
    raise TimedOut(
        f"the restore did not reach {waiting.target.describe()} within "
        f"{waiting.timeout:.0f} s (it is still replaying, pid {child.pid})",
        f"see {instance.log_file}; watch it with `pgherd replay status {waiting.into}`",
    )


def _record(phases: Phases, log: LogWatch, spawned: float) -> None:
    """Each phase from the previous line seen to its own; a phase whose line was not
    seen merges into the next; ``confirm`` from the last line to now."""
    since = spawned
    for phase, marks in MARKS:
        at = log.first(marks)
        if at is None or at < since:
            continue
        phases.add(phase, at - since)
        since = at
    phases.add("confirm" if since > spawned else "server", phases.now() - since)


def _looks_reached(instance: Instance, waiting: Waiting, log: LogWatch) -> bool:
    pm = process.read_postmaster_pid(instance.data_dir)
    if pm is None or pm.status not in ("ready", "standby"):
        return False
    if waiting.action is TargetAction.PROMOTE or waiting.target.kind is TargetKind.LATEST:
        return PROMOTED in log.seen
    return PAUSED in log.seen


def _confirm(instance: Instance) -> Arrival | None:
    try:
        with instance.connect() as conn:
            state = replay_sql.replay(conn)
    except PgherdError:
        return None
    replayed = str(state.replay_lsn) if state.replay_lsn else None
    if state.in_recovery and state.pause_state == "paused":
        return Arrival(Reached.PAUSED, replayed, state.replay_time, None)
    if not state.in_recovery:
        return Arrival(Reached.PROMOTED, replayed, state.replay_time, state.timeline)
    return None


def _after_exit(instance: Instance, waiting: Waiting, code: int) -> Arrival:
    log = _read(instance.log_file)
    if waiting.action is TargetAction.SHUTDOWN and code == 0:
        control = instance.controldata()
        if control.cluster_state == "shut down in recovery":
            lsn = max(control.min_recovery_end_lsn, control.checkpoint_lsn)
            timeline = control.min_recovery_end_timeline or None
            return Arrival(Reached.SHUT_DOWN, str(lsn), None, timeline)
    raise _failure(log, waiting.target)


def _failure(log: str, target: Target) -> PgherdError:
    lines = log.splitlines()
    ours = [line for line in lines if "pgherd wal fetch: error:" in line]
    if ours:
        text = ours[-1].split("pgherd wal fetch: error:", 1)[1].strip()
        message, _, hint = text.partition(" — ")
        return PgherdError(f"the restore stopped: {message}", hint)
    for line in lines:
        if "recovery ended before configured recovery target was reached" in line:
            return TargetUnreachable(
                f"replay reached the end of the archive before {target.describe()}",
                "choose an earlier target, or archive more WAL first (pg_switch_wal())",
            )
        if "before consistent recovery point" in line:
            return TargetUnreachable(
                f"{target.describe()} is before the backup became consistent",
                "choose a later target",
            )
    fatal = [line for line in lines if " FATAL: " in line or " PANIC: " in line]
    detail = fatal[-1].split(":  ", 1)[-1] if fatal else (lines[-1] if lines else "no log")
    return PgherdError(f"the restored server stopped: {detail}", "see its log")


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""
