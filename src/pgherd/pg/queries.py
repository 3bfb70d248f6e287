"""The SQL an agent reads its node's replication state with (PostgreSQL 13+)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row

from pgherd.model.lsn import Lsn
from pgherd.model.status import ReplicationRow, Slot, WalReceiver

_SERVER = """
SELECT pg_is_in_recovery() AS in_recovery,
       current_setting('server_version_num')::int AS version_num,
       (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       CASE WHEN NOT pg_is_in_recovery() THEN pg_current_wal_lsn()::text END AS current_lsn,
       CASE WHEN NOT pg_is_in_recovery()
            THEN ('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int
       END AS primary_timeline,
       (SELECT timeline_id FROM pg_control_checkpoint()) AS checkpoint_timeline,
       pg_last_wal_receive_lsn()::text AS receive_lsn,
       pg_last_wal_replay_lsn()::text AS replay_lsn,
       CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END AS replay_paused,
       pg_last_xact_replay_timestamp() AS last_replay_time,
       current_setting('primary_conninfo') AS primary_conninfo,
       ARRAY(SELECT name FROM pg_settings WHERE pending_restart ORDER BY name)
           AS pending_restart
"""

_REPLICATION = """
SELECT application_name, client_addr::text AS client_addr, state,
       sent_lsn::text AS sent_lsn, write_lsn::text AS write_lsn,
       flush_lsn::text AS flush_lsn, replay_lsn::text AS replay_lsn,
       extract(epoch FROM write_lag)::float8 AS write_lag_s,
       extract(epoch FROM flush_lag)::float8 AS flush_lag_s,
       extract(epoch FROM replay_lag)::float8 AS replay_lag_s,
       sync_state
FROM pg_stat_replication
ORDER BY application_name
"""

_WAL_RECEIVER = """
SELECT status, sender_host, sender_port, slot_name, received_tli,
       flushed_lsn::text AS flushed_lsn, latest_end_lsn::text AS latest_end_lsn,
       last_msg_receipt_time
FROM pg_stat_wal_receiver
"""

_SLOTS = """
SELECT slot_name AS name, slot_type, active, restart_lsn::text AS restart_lsn, wal_status,
       pg_wal_lsn_diff(
           CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                ELSE pg_current_wal_lsn() END,
           restart_lsn)::bigint AS retained_bytes,
       temporary, database, plugin, confirmed_flush_lsn::text AS confirmed_flush_lsn,
       catalog_xmin::text::bigint AS catalog_xmin
FROM pg_replication_slots
ORDER BY slot_name
"""


@dataclass(frozen=True)
class ServerState:
    in_recovery: bool
    version_num: int
    system_identifier: str
    timeline: int
    current_lsn: Lsn | None
    receive_lsn: Lsn | None
    replay_lsn: Lsn | None
    replay_paused: bool | None
    last_replay_time: datetime | None
    upstream_host: str | None
    upstream_port: int | None
    wal_receiver: WalReceiver | None
    replication: tuple[ReplicationRow, ...]
    slots: tuple[Slot, ...]
    pending_restart: tuple[str, ...] = ()  # parameters whose new value waits for a restart


def _rows(conn: psycopg.Connection[Any], query: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(query)
        return cur.fetchall()


def upstream_of(primary_conninfo: str) -> tuple[str | None, int | None]:
    """Host and port a standby is configured to stream from."""
    if not primary_conninfo.strip():
        return None, None
    try:
        params = psycopg.conninfo.conninfo_to_dict(primary_conninfo)
    except psycopg.ProgrammingError:
        return None, None
    host = params.get("host") or params.get("hostaddr")
    port = params.get("port")
    return (str(host) if host else None, int(str(port)) if port else 5432)


def slots(conn: psycopg.Connection[Any]) -> tuple[Slot, ...]:
    """Every replication slot of the server, as ``/status`` shows them."""
    return tuple(Slot.model_validate(r) for r in _rows(conn, _SLOTS))


def server_state(conn: psycopg.Connection[Any]) -> ServerState:
    (server,) = _rows(conn, _SERVER)
    receivers = _rows(conn, _WAL_RECEIVER)
    receiver = WalReceiver.model_validate(receivers[0]) if receivers else None
    replication = tuple(ReplicationRow.model_validate(r) for r in _rows(conn, _REPLICATION))
    slots = tuple(Slot.model_validate(r) for r in _rows(conn, _SLOTS))
    if server["in_recovery"]:
        timeline = (
            receiver.received_tli
            if receiver is not None and receiver.received_tli
            else server["checkpoint_timeline"]
        )
    else:
        timeline = server["primary_timeline"]
    host, port = (
        upstream_of(server["primary_conninfo"] or "") if server["in_recovery"] else (None, None)
    )
    return ServerState(
        in_recovery=server["in_recovery"],
        version_num=server["version_num"],
        system_identifier=server["system_identifier"],
        timeline=int(timeline),
        current_lsn=Lsn.parse_optional(server["current_lsn"]),
        receive_lsn=Lsn.parse_optional(server["receive_lsn"]),
        replay_lsn=Lsn.parse_optional(server["replay_lsn"]),
        replay_paused=server["replay_paused"],
        last_replay_time=server["last_replay_time"],
        upstream_host=host,
        upstream_port=port,
        wal_receiver=receiver,
        replication=replication,
        slots=slots,
        pending_restart=tuple(server["pending_restart"] or ()),
    )
