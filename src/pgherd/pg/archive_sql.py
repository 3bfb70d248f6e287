"""The SQL behind WAL switches, restore points, replay control and archiver status."""

from __future__ import annotations

import time
from dataclasses import fields
from datetime import datetime
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict

from pgherd.errors import QueryFailed, Refused
from pgherd.model.status import LsnField
from pgherd.pg import replay_sql


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class WalSwitch(_Frozen):
    lsn: LsnField
    segment: str  # the segment that was closed (and is now due for archiving)


class RestorePointMade(_Frozen):
    name: str
    lsn: LsnField
    timeline: int
    time: datetime


class ReplayState(_Frozen):
    in_recovery: bool
    pause_state: str  # not paused, pause requested, paused (PostgreSQL 14+ names)
    receive_lsn: LsnField | None
    replay_lsn: LsnField | None
    replay_time: datetime | None
    timeline: int


class ArchiverState(_Frozen):
    in_recovery: bool
    archive_mode: str
    current_lsn: LsnField | None
    current_segment: str | None
    timeline: int
    archived_count: int
    last_archived_wal: str | None
    last_archived_time: datetime | None
    failed_count: int
    last_failed_wal: str | None
    last_failed_time: datetime | None
    ready_count: int  # segments waiting for archive_command


_one = replay_sql.one_row


def _in_recovery(conn: psycopg.Connection[Any]) -> bool:
    return bool(_one(conn, "SELECT pg_is_in_recovery()")[0])


def _refuse_on_standby(conn: psycopg.Connection[Any], what: str) -> None:
    if _in_recovery(conn):
        raise Refused(
            f"this node is a standby (in recovery): {what} only on the primary",
            "run it on the primary (without --node, pgherd picks it)",
        )


def switch_wal(conn: psycopg.Connection[Any]) -> WalSwitch:
    _refuse_on_standby(conn, "WAL can be switched")
    lsn, segment = _one(conn, "SELECT s::text, pg_walfile_name(s) FROM pg_switch_wal() AS s")
    return WalSwitch(lsn=lsn, segment=segment)


def create_restore_point(conn: psycopg.Connection[Any], name: str) -> RestorePointMade:
    _refuse_on_standby(conn, "restore points can be created")
    if len(name.encode()) >= 64:
        raise Refused(f"restore point name {name!r} is too long", "use at most 63 bytes")
    try:
        lsn, timeline, at = _one(
            conn,
            "SELECT p::text, ('x' || substr(pg_walfile_name(p), 1, 8))::bit(32)::int, now()"
            " FROM pg_create_restore_point(%s) AS p",
            (name,),
        )
    except psycopg.Error as exc:
        raise QueryFailed(f"pg_create_restore_point failed: {exc}".strip()) from None
    return RestorePointMade(name=name, lsn=lsn, timeline=timeline, time=at)


def replay_state(conn: psycopg.Connection[Any]) -> ReplayState:
    row = replay_sql.replay(conn)
    # fields one level deep (dataclasses.asdict would take the Lsn values apart too)
    return ReplayState.model_validate({f.name: getattr(row, f.name) for f in fields(row)})


def _require_recovery(conn: psycopg.Connection[Any], verb: str) -> None:
    if not _in_recovery(conn):
        raise Refused(
            f"this node is not in recovery: there is no replay to {verb}",
            "replay control works on standbys and on restores in progress",
        )


PAUSE_CONFIRM_SECONDS = 5.0


def pause_replay(conn: psycopg.Connection[Any]) -> ReplayState:
    """Request the pause and wait until the startup process has taken it (``paused``),
    for at most :data:`PAUSE_CONFIRM_SECONDS`: until then it may still replay WAL that
    arrives, and a standby with no new WAL takes the request only when it next looks (a
    loaded machine showed ``pause requested`` right after the call). The state seen
    last is returned, ``pause requested`` if the wait ran out."""
    _require_recovery(conn, "pause")
    conn.execute("SELECT pg_wal_replay_pause()")
    deadline = time.monotonic() + PAUSE_CONFIRM_SECONDS
    state = replay_state(conn)
    while state.pause_state == "pause requested" and time.monotonic() < deadline:
        time.sleep(0.02)
        state = replay_state(conn)
    return state


def resume_replay(conn: psycopg.Connection[Any]) -> ReplayState:
    _require_recovery(conn, "resume")
    conn.execute("SELECT pg_wal_replay_resume()")
    return replay_state(conn)


def archiver_state(conn: psycopg.Connection[Any]) -> ArchiverState:
    row = _one(
        conn,
        """
        SELECT pg_is_in_recovery(), current_setting('archive_mode'),
               CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn()::text END,
               CASE WHEN NOT pg_is_in_recovery() THEN pg_walfile_name(pg_current_wal_lsn())
               END,
               (SELECT timeline_id FROM pg_control_checkpoint()),
               a.archived_count, a.last_archived_wal, a.last_archived_time,
               a.failed_count, a.last_failed_wal, a.last_failed_time,
               (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%%.ready')
        FROM pg_stat_archiver a
        """,
    )
    (in_recovery, mode, lsn, segment, timeline, archived, last_wal, last_time) = row[:8]
    failed, failed_wal, failed_time, ready = row[8:]
    if segment:
        timeline = int(segment[:8], 16)
    return ArchiverState(
        in_recovery=in_recovery,
        archive_mode=mode,
        current_lsn=lsn,
        current_segment=segment,
        timeline=timeline,
        archived_count=archived,
        last_archived_wal=last_wal,
        last_archived_time=last_time,
        failed_count=failed,
        last_failed_wal=failed_wal,
        last_failed_time=failed_time,
        ready_count=ready,
    )
