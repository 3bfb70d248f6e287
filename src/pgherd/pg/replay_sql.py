"""Where replay stands on a server, read without pydantic.

A restore asks this once, when its server has reached the target (archive/restore_wait.py),
and ``pgherd restore`` starts without pydantic (docs/architecture.md); the agent's
``/replay`` answers with the same row as :class:`pgherd.pg.archive_sql.ReplayState`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from pgherd.model.lsn import Lsn

if TYPE_CHECKING:
    import psycopg  # ~0.15 s: imported by whoever opens the connection, when it does


@dataclass(frozen=True)
class Replay:
    in_recovery: bool
    pause_state: str  # not paused, pause requested, paused (PostgreSQL 14+ names)
    receive_lsn: Lsn | None
    replay_lsn: Lsn | None
    replay_time: datetime | None
    timeline: int


def one_row(
    conn: psycopg.Connection[Any], sql: str, params: tuple[Any, ...] = ()
) -> tuple[Any, ...]:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return tuple(row)


def replay(conn: psycopg.Connection[Any]) -> Replay:
    in_recovery, state, receive, replayed, at, timeline = one_row(
        conn,
        """
        SELECT pg_is_in_recovery(),
               CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state()
                    ELSE 'not paused' END,
               pg_last_wal_receive_lsn()::text, pg_last_wal_replay_lsn()::text,
               pg_last_xact_replay_timestamp(),
               (SELECT timeline_id FROM pg_control_checkpoint())
        """,
    )
    if not in_recovery:
        timeline = one_row(
            conn,
            "SELECT ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int",
        )[0]
    return Replay(
        in_recovery=bool(in_recovery),
        pause_state=str(state),
        receive_lsn=None if receive is None else Lsn.parse(receive),
        replay_lsn=None if replayed is None else Lsn.parse(replayed),
        replay_time=at,
        timeline=int(timeline),
    )
