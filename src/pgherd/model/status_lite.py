"""An agent's ``GET /status`` as the quick commands read it: dataclasses, no pydantic.

:class:`pgherd.model.status.NodeStatus` (pydantic) is what the agent builds and serves;
the commands that must start in a few hundredths of a second (``cluster show``, ``standby
clone``) read the same document into :class:`LiteStatus`, which has the same fields under
the same names and types (``tests/unit/test_status_lite.py`` reads documents that
NodeStatus wrote and compares every field). The reading is tolerant as a client's should
be: a field a newer agent adds is ignored; a field missing or of the wrong type makes the
document unreadable (:class:`ValueError`).

The states and roles live here, where both forms import them from.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from pgherd.model.json_values import array, boolean, integer, mapping, number, optional, text
from pgherd.model.lsn import Lsn


class Role(StrEnum):
    PRIMARY = "primary"
    STANDBY = "standby"
    UNKNOWN = "unknown"


class PgState(StrEnum):
    """The state of a node's PostgreSQL as its agent sees it."""

    RUNNING = "running"
    STARTING = "starting"
    STOPPING = "stopping"
    STOPPED = "stopped"
    CRASHED = "crashed"  # exited without being asked to; the agent restarts it
    UNREACHABLE = "unreachable"  # the agent itself did not answer


class Desired(StrEnum):
    """What the agent was told to keep PostgreSQL at."""

    RUNNING = "running"
    STOPPED = "stopped"


class WorkerState(StrEnum):
    """An apply worker's state, as its target's agent reports it: the worker's own while it
    runs and reports (starting, running, conflict, error, stopped), else the agent's."""

    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"  # for this node's PostgreSQL to run
    RESTARTING = "restarting"  # it exited; started again after the backoff
    CONFLICT = "conflict"  # stopped on a conflict its policy does not resolve
    ERROR = "error"
    STOPPED = "stopped"


@dataclass(frozen=True)
class LiteReplicationRow:
    """:class:`pgherd.model.status.ReplicationRow`."""

    application_name: str
    client_addr: str | None
    state: str
    sent_lsn: Lsn | None
    write_lsn: Lsn | None
    flush_lsn: Lsn | None
    replay_lsn: Lsn | None
    write_lag_s: float | None
    flush_lag_s: float | None
    replay_lag_s: float | None
    sync_state: str


@dataclass(frozen=True)
class LiteWalReceiver:
    """:class:`pgherd.model.status.WalReceiver`."""

    status: str
    sender_host: str | None
    sender_port: int | None
    slot_name: str | None
    received_tli: int | None
    flushed_lsn: Lsn | None
    latest_end_lsn: Lsn | None
    last_msg_receipt_time: datetime | None


@dataclass(frozen=True)
class LiteSlot:
    """:class:`pgherd.model.status.Slot`."""

    name: str
    slot_type: str
    active: bool
    restart_lsn: Lsn | None
    wal_status: str | None
    retained_bytes: int | None


@dataclass(frozen=True)
class LiteConflictCount:
    """:class:`pgherd.model.mesh.ConflictCount`."""

    kind: str
    resolution: str
    count: int


@dataclass(frozen=True)
class LiteMeshWorker:
    """:class:`pgherd.model.mesh.MeshWorkerRow`."""

    mesh: str
    source: str
    target: str
    state: WorkerState
    pid: int | None = None
    restarts: int = 0
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    transactions: int = 0
    rows: int = 0
    conflicts: int = 0
    conflict_counts: tuple[LiteConflictCount, ...] = ()
    last_conflict: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class LiteStatus:
    """:class:`pgherd.model.status.NodeStatus`."""

    name: str
    state: PgState
    desired: Desired
    role: Role = Role.UNKNOWN
    pid: int | None = None
    version_num: int | None = None
    system_identifier: str | None = None
    timeline: int | None = None
    current_lsn: Lsn | None = None
    receive_lsn: Lsn | None = None
    replay_lsn: Lsn | None = None
    replay_paused: bool | None = None
    last_replay_time: datetime | None = None
    upstream_host: str | None = None
    upstream_port: int | None = None
    wal_receiver: LiteWalReceiver | None = None
    replication: tuple[LiteReplicationRow, ...] = ()
    slots: tuple[LiteSlot, ...] = ()
    restarts: int = 0
    error: str | None = None
    checked_at: datetime | None = None
    mesh_workers: tuple[LiteMeshWorker, ...] = ()
    pending_restart: tuple[str, ...] = ()
    config_fingerprint: str | None = None
    bootstrap: str | None = None  # until the node holds its cluster's data

    @property
    def position(self) -> Lsn | None:
        """The node's own WAL position: written on a primary, replayed on a standby."""
        if self.role is Role.PRIMARY:
            return self.current_lsn
        return self.replay_lsn or self.current_lsn


def lite_unreachable(name: str, reason: str) -> LiteStatus:
    """The status a quick command records for a node whose agent did not answer."""
    return LiteStatus(name=name, state=PgState.UNREACHABLE, desired=Desired.RUNNING, error=reason)


# ---- reading the JSON document ----------------------------------------------------------


def read_status(doc: object) -> LiteStatus:
    """``GET /status``'s decoded JSON; ValueError when it is not a status document."""
    try:
        data = mapping(doc)
        return LiteStatus(
            name=text(data["name"]),
            state=PgState(data["state"]),
            desired=Desired(data["desired"]),
            role=Role(data.get("role", Role.UNKNOWN)),
            pid=optional(data, "pid", integer),
            version_num=optional(data, "version_num", integer),
            system_identifier=optional(data, "system_identifier", text),
            timeline=optional(data, "timeline", integer),
            current_lsn=optional(data, "current_lsn", _lsn),
            receive_lsn=optional(data, "receive_lsn", _lsn),
            replay_lsn=optional(data, "replay_lsn", _lsn),
            replay_paused=optional(data, "replay_paused", boolean),
            last_replay_time=optional(data, "last_replay_time", _time),
            upstream_host=optional(data, "upstream_host", text),
            upstream_port=optional(data, "upstream_port", integer),
            wal_receiver=optional(data, "wal_receiver", _wal_receiver),
            replication=tuple(_replication_row(r) for r in array(data.get("replication", []))),
            slots=tuple(_slot(s) for s in array(data.get("slots", []))),
            restarts=integer(data.get("restarts", 0)),
            error=optional(data, "error", text),
            checked_at=optional(data, "checked_at", _time),
            mesh_workers=tuple(_mesh_worker(w) for w in array(data.get("mesh_workers", []))),
            pending_restart=tuple(text(p) for p in array(data.get("pending_restart", []))),
            config_fingerprint=optional(data, "config_fingerprint", text),
            bootstrap=optional(data, "bootstrap", text),
        )
    except (KeyError, TypeError, ValueError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise ValueError(f"not a node status: {what}") from None


def _replication_row(doc: object) -> LiteReplicationRow:
    data = mapping(doc)
    return LiteReplicationRow(
        application_name=text(data["application_name"]),
        client_addr=optional(data, "client_addr", text),
        state=text(data["state"]),
        sent_lsn=optional(data, "sent_lsn", _lsn),
        write_lsn=optional(data, "write_lsn", _lsn),
        flush_lsn=optional(data, "flush_lsn", _lsn),
        replay_lsn=optional(data, "replay_lsn", _lsn),
        write_lag_s=optional(data, "write_lag_s", number),
        flush_lag_s=optional(data, "flush_lag_s", number),
        replay_lag_s=optional(data, "replay_lag_s", number),
        sync_state=text(data["sync_state"]),
    )


def _wal_receiver(doc: object) -> LiteWalReceiver:
    data = mapping(doc)
    return LiteWalReceiver(
        status=text(data["status"]),
        sender_host=optional(data, "sender_host", text),
        sender_port=optional(data, "sender_port", integer),
        slot_name=optional(data, "slot_name", text),
        received_tli=optional(data, "received_tli", integer),
        flushed_lsn=optional(data, "flushed_lsn", _lsn),
        latest_end_lsn=optional(data, "latest_end_lsn", _lsn),
        last_msg_receipt_time=optional(data, "last_msg_receipt_time", _time),
    )


def _slot(doc: object) -> LiteSlot:
    data = mapping(doc)
    return LiteSlot(
        name=text(data["name"]),
        slot_type=text(data["slot_type"]),
        active=boolean(data["active"]),
        restart_lsn=optional(data, "restart_lsn", _lsn),
        wal_status=optional(data, "wal_status", text),
        retained_bytes=optional(data, "retained_bytes", integer),
    )


def _conflict_count(doc: object) -> LiteConflictCount:
    data = mapping(doc)
    return LiteConflictCount(
        kind=text(data["kind"]), resolution=text(data["resolution"]), count=integer(data["count"])
    )


def _mesh_worker(doc: object) -> LiteMeshWorker:
    data = mapping(doc)
    return LiteMeshWorker(
        mesh=text(data["mesh"]),
        source=text(data["source"]),
        target=text(data["target"]),
        state=WorkerState(data["state"]),
        pid=optional(data, "pid", integer),
        restarts=integer(data.get("restarts", 0)),
        lag_bytes=optional(data, "lag_bytes", integer),
        lag_seconds=optional(data, "lag_seconds", number),
        transactions=integer(data.get("transactions", 0)),
        rows=integer(data.get("rows", 0)),
        conflicts=integer(data.get("conflicts", 0)),
        conflict_counts=tuple(_conflict_count(c) for c in array(data.get("conflict_counts", []))),
        last_conflict=optional(data, "last_conflict", text),
        error=optional(data, "error", text),
    )


def _lsn(value: object) -> Lsn:
    return Lsn.parse(text(value))


def _time(value: object) -> datetime:
    return datetime.fromisoformat(text(value))
