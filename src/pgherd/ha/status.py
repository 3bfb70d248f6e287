"""Reading the node's state into a NodeStatus: from SQL when the server answers, else
from pg_controldata (which works on a stopped data directory too)."""

from __future__ import annotations

from datetime import UTC, datetime

from pgherd.errors import PgherdError
from pgherd.model.status import NodeStatus, PgState, Role
from pgherd.pg import conf, queries
from pgherd.pg.local_node import LocalNode


def collect(
    local: LocalNode,
    state: PgState,
    desired: str,
    pid: int | None,
    restarts: int,
    last_error: str | None,
) -> NodeStatus:
    base = {
        "name": local.node.name,
        "state": state,
        "desired": desired,
        "pid": pid,
        "restarts": restarts,
        "error": last_error,
        "version_num": local.pgbin.version_num,
        "checked_at": datetime.now(UTC),
        "config_fingerprint": local.config.fingerprint,
    }
    if state is PgState.RUNNING:
        try:
            with local.instance.connect() as conn:
                server = queries.server_state(conn)
        except PgherdError as exc:
            base["error"] = exc.message
        else:
            return NodeStatus.model_validate(
                base
                | {
                    "role": Role.STANDBY if server.in_recovery else Role.PRIMARY,
                    "version_num": server.version_num,
                    "system_identifier": server.system_identifier,
                    "timeline": server.timeline,
                    "current_lsn": server.current_lsn,
                    "receive_lsn": server.receive_lsn,
                    "replay_lsn": server.replay_lsn,
                    "replay_paused": server.replay_paused,
                    "last_replay_time": server.last_replay_time,
                    "upstream_host": server.upstream_host,
                    "upstream_port": server.upstream_port,
                    "wal_receiver": server.wal_receiver,
                    "replication": server.replication,
                    "slots": server.slots,
                    "pending_restart": server.pending_restart,
                }
            )
    return NodeStatus.model_validate(base | offline_fields(local))


def offline_fields(local: LocalNode) -> dict[str, object]:
    """What pg_controldata and the data directory tell about a server that is not up."""
    instance = local.instance
    if not instance.exists:
        return {"error": f"{instance.data_dir} holds no PostgreSQL cluster yet"}
    try:
        control = instance.controldata()
    except PgherdError as exc:
        return {"error": exc.message}
    standby = instance.standby_configured or control.in_recovery
    position = control.checkpoint_lsn
    fields: dict[str, object] = {
        "role": Role.STANDBY if standby else Role.PRIMARY,
        "system_identifier": control.system_identifier,
        "timeline": control.timeline,
    }
    if standby:
        fields["replay_lsn"] = max(position, control.min_recovery_end_lsn)
        upstream = queries.upstream_of(_conf_value(local, "primary_conninfo"))
        fields["upstream_host"], fields["upstream_port"] = upstream
    else:
        fields["current_lsn"] = position
    return fields


def _conf_value(local: LocalNode, name: str) -> str:
    return conf.read_include(local.node.data_dir).get(name, "")
