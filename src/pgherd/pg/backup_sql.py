"""The low-level (non-exclusive) backup API: the session that starts a backup must stay
open until it stops it. PostgreSQL 15 renamed the functions (pg_backup_start/stop);
13 and 14 have pg_start_backup/pg_stop_backup with ``exclusive => false``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import psycopg

from pgherd.errors import QueryFailed
from pgherd.model.lsn import Lsn


@dataclass(frozen=True)
class BackupStarted:
    lsn: Lsn
    in_recovery: bool
    next_xid: int  # the checkpoint's next transaction ID
    version_num: int
    system_identifier: str


@dataclass(frozen=True)
class BackupStopped:
    lsn: Lsn
    backup_label: str
    tablespace_map: str


def _row(conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


def start(conn: psycopg.Connection[Any], label: str) -> BackupStarted:
    """Checkpoint now (fast), mark the backup's start; returns its REDO point."""
    version = int(_row(conn, "SHOW server_version_num")[0])
    in_recovery = bool(_row(conn, "SELECT pg_is_in_recovery()")[0])
    try:
        if version >= 150000:
            lsn = _row(conn, "SELECT pg_backup_start(%s, true)::text", (label,))[0]
        else:
            lsn = _row(conn, "SELECT pg_start_backup(%s, true, false)::text", (label,))[0]
    except psycopg.Error as exc:
        raise QueryFailed(f"cannot start the backup: {exc.diag.message_primary or exc}") from None
    next_xid, sysid = _row(
        conn,
        "SELECT c.next_xid, s.system_identifier::text "
        "FROM pg_control_checkpoint() c, pg_control_system() s",
    )
    return BackupStarted(
        lsn=Lsn.parse(lsn),
        in_recovery=in_recovery,
        next_xid=int(str(next_xid).split(":")[-1]),
        version_num=version,
        system_identifier=str(sysid),
    )


def stop(conn: psycopg.Connection[Any], version_num: int, wait_for_archive: bool) -> BackupStopped:
    """End the backup; with ``wait_for_archive`` (a primary), PostgreSQL returns once
    the segment holding the end is archived."""
    function = "pg_backup_stop(%s)" if version_num >= 150000 else "pg_stop_backup(false, %s)"
    try:
        lsn, label, spcmap = _row(
            conn,
            f"SELECT lsn::text, labelfile, spcmapfile FROM {function}",  # noqa: S608
            (wait_for_archive,),
        )
    except psycopg.Error as exc:
        raise QueryFailed(f"cannot stop the backup: {exc.diag.message_primary or exc}") from None
    return BackupStopped(Lsn.parse(lsn), label, spcmap or "")
