"""The two queries the history sampler runs each round, on one connection."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgherd.model.history import ArchiverRow, SenderRow, SenderState
from pgherd.model.lsn import Lsn

# Every walsender with the type of the slot it streams from (no slot: physical, e.g. a
# standby without primary_slot_name or pg_receivewal).
_SENDERS = """
SELECT r.application_name, coalesce(s.slot_type = 'logical', false) AS logical, r.state,
       r.write_lsn::text AS write_lsn, r.flush_lsn::text AS flush_lsn,
       r.replay_lsn::text AS replay_lsn,
       extract(epoch FROM r.write_lag)::float8 AS write_lag_s,
       extract(epoch FROM r.flush_lag)::float8 AS flush_lag_s,
       extract(epoch FROM r.replay_lag)::float8 AS replay_lag_s
FROM pg_stat_replication r
LEFT JOIN pg_replication_slots s ON s.active_pid = r.pid
ORDER BY r.application_name
"""

_SELF = """
SELECT pg_is_in_recovery() AS in_recovery,
       (CASE WHEN pg_is_in_recovery()
             THEN greatest(pg_last_wal_receive_lsn(), pg_last_wal_replay_lsn())
             ELSE pg_current_wal_lsn() END)::text AS position,
       (SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size') AS segment_size,
       current_setting('archive_mode') AS archive_mode,
       r.oldest_ready, r.ready_count
FROM (SELECT min(name) FILTER (WHERE name ~ '^[0-9A-F]{24}[.]ready$') AS oldest_ready,
             count(*) FILTER (WHERE name LIKE '%%.ready') AS ready_count
      FROM pg_ls_archive_statusdir()) r
"""


def sender_state(conn: psycopg.Connection[Any]) -> SenderState:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(_SELF)
        me = cur.fetchone()
        cur.execute(_SENDERS)
        rows = cur.fetchall()
    assert me is not None
    senders = tuple(
        SenderRow(
            application_name=str(r["application_name"] or "?"),
            logical=bool(r["logical"]),
            state=r["state"],
            write_lsn=Lsn.parse_optional(r["write_lsn"]),
            flush_lsn=Lsn.parse_optional(r["flush_lsn"]),
            replay_lsn=Lsn.parse_optional(r["replay_lsn"]),
            write_lag_s=r["write_lag_s"],
            flush_lag_s=r["flush_lag_s"],
            replay_lag_s=r["replay_lag_s"],
        )
        for r in rows
    )
    return SenderState(
        in_recovery=bool(me["in_recovery"]),
        position=Lsn.parse_optional(me["position"]),
        senders=senders,
        archiver=ArchiverRow(
            archive_mode=str(me["archive_mode"]),
            oldest_ready=me["oldest_ready"],
            ready_count=int(me["ready_count"] or 0),
        ),
        segment_size=int(me["segment_size"]),
    )
