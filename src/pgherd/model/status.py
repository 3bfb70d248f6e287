"""What an agent reports about its node: the ``GET /status`` document.

These are plain values (pydantic models so they cross the HTTP API unchanged); the agent
fills them from pg_controldata and SQL, the CLI and the decision code read them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, PlainSerializer, PlainValidator, WithJsonSchema

from pgherd.model.lsn import Lsn
from pgherd.model.mesh import MeshWorkerRow

# The states and roles are pydantic-free, for the quick commands' reader of the same
# document (model/status_lite.py); they are found here as they always were.
from pgherd.model.status_lite import Desired as Desired
from pgherd.model.status_lite import PgState as PgState
from pgherd.model.status_lite import Role as Role


def _to_lsn(value: Any) -> Lsn:
    if isinstance(value, Lsn):
        return value
    if isinstance(value, str):
        return Lsn.parse(value)
    raise ValueError(f"not an LSN: {value!r}")


LsnField = Annotated[
    Lsn,
    PlainValidator(_to_lsn),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "examples": ["0/3000060"]}),
]


class Frozen(BaseModel):
    """A value that crosses the API: immutable, no unknown fields, no NaN or infinity (a
    wait of NaN seconds never ends)."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Message(Frozen):
    """What an action that has no richer result answers: one sentence for the log."""

    message: str


class ReplicationRow(Frozen):
    """One row of pg_stat_replication on an upstream: a connected standby."""

    application_name: str
    client_addr: str | None
    state: str
    sent_lsn: LsnField | None
    write_lsn: LsnField | None
    flush_lsn: LsnField | None
    replay_lsn: LsnField | None
    write_lag_s: float | None
    flush_lag_s: float | None
    replay_lag_s: float | None
    sync_state: str


class WalReceiver(Frozen):
    """pg_stat_wal_receiver on a standby: where it streams from and how far it got."""

    status: str
    sender_host: str | None
    sender_port: int | None
    slot_name: str | None
    received_tli: int | None
    flushed_lsn: LsnField | None
    latest_end_lsn: LsnField | None
    last_msg_receipt_time: datetime | None


class Slot(Frozen):
    name: str
    slot_type: str
    active: bool
    restart_lsn: LsnField | None
    wal_status: str | None
    retained_bytes: int | None
    # logical slots: what a standby's copy needs (model/failover_slots.py)
    temporary: bool = False
    database: str | None = None
    plugin: str | None = None
    confirmed_flush_lsn: LsnField | None = None
    catalog_xmin: int | None = None


class NodeStatus(Frozen):
    name: str
    state: PgState
    desired: Desired
    role: Role = Role.UNKNOWN
    pid: int | None = None
    version_num: int | None = None
    system_identifier: str | None = None
    timeline: int | None = None
    current_lsn: LsnField | None = None
    receive_lsn: LsnField | None = None
    replay_lsn: LsnField | None = None
    replay_paused: bool | None = None
    last_replay_time: datetime | None = None
    upstream_host: str | None = None
    upstream_port: int | None = None
    wal_receiver: WalReceiver | None = None
    replication: tuple[ReplicationRow, ...] = ()
    slots: tuple[Slot, ...] = ()
    restarts: int = 0
    error: str | None = None
    checked_at: datetime | None = None
    mesh_workers: tuple[MeshWorkerRow, ...] = ()  # apply workers into this node (mesh)
    # Parameters whose new value waits for a restart (pgherd node restart, cluster restart).
    pending_restart: tuple[str, ...] = ()
    # The fingerprint of the pgherd.yaml the agent runs with (config.fingerprint): every
    # agent of a cluster should report the same one.
    config_fingerprint: str | None = None
    # Until the node holds its cluster's data: what its agent does about it (ha/bootstrap.py).
    bootstrap: str | None = None

    @property
    def position(self) -> Lsn | None:
        """The node's own WAL position: written on a primary, replayed on a standby."""
        if self.role is Role.PRIMARY:
            return self.current_lsn
        return self.replay_lsn or self.current_lsn


def unreachable(name: str, reason: str) -> NodeStatus:
    """The status the CLI records for a node whose agent did not answer."""
    return NodeStatus(name=name, state=PgState.UNREACHABLE, desired=Desired.RUNNING, error=reason)
