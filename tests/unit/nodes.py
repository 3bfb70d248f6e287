"""NodeStatus values for unit tests of cluster-level decisions: a small cluster described
by who streams from whom, at which positions."""

from __future__ import annotations

from typing import Any

from pgherd.model.lsn import Lsn
from pgherd.model.status import Desired, NodeStatus, PgState, Role, Slot, WalReceiver

SYSID = "7300000000000000001"
PORTS = {"node1": 5441, "node2": 5442, "node3": 5443, "node4": 5444}


def node_at(host: str | None, port: int | None) -> str | None:
    for name, p in PORTS.items():
        if p == port and host == "127.0.0.1":
            return name
    return None


def primary(name: str, lsn: str = "0/5000000", timeline: int = 1, **kw: Any) -> NodeStatus:
    fields: dict[str, Any] = {
        "name": name,
        "state": PgState.RUNNING,
        "desired": Desired.RUNNING,
        "role": Role.PRIMARY,
        "system_identifier": SYSID,
        "timeline": timeline,
        "current_lsn": Lsn.parse(lsn),
    }
    return NodeStatus.model_validate(fields | kw)


def standby(
    name: str,
    upstream: str = "node1",
    replay: str = "0/5000000",
    timeline: int = 1,
    streaming: bool = True,
    **kw: Any,
) -> NodeStatus:
    receiver = WalReceiver(
        status="streaming",
        sender_host="127.0.0.1",
        sender_port=PORTS[upstream],
        slot_name=name,
        received_tli=timeline,
        flushed_lsn=Lsn.parse(replay),
        latest_end_lsn=Lsn.parse(replay),
        last_msg_receipt_time=None,
    )
    fields: dict[str, Any] = {
        "name": name,
        "state": PgState.RUNNING,
        "desired": Desired.RUNNING,
        "role": Role.STANDBY,
        "system_identifier": SYSID,
        "timeline": timeline,
        "replay_lsn": Lsn.parse(replay),
        "receive_lsn": Lsn.parse(replay),
        "replay_paused": False,
        "upstream_host": "127.0.0.1",
        "upstream_port": PORTS[upstream],
        "wal_receiver": receiver if streaming else None,
    }
    return NodeStatus.model_validate(fields | kw)


def stopped(status: NodeStatus) -> NodeStatus:
    return status.model_copy(
        update={"state": PgState.STOPPED, "desired": Desired.STOPPED, "wal_receiver": None}
    )


def unreachable(name: str) -> NodeStatus:
    return NodeStatus(
        name=name, state=PgState.UNREACHABLE, desired=Desired.RUNNING, error="connection refused"
    )


def slot(name: str, active: bool = False, held: int = 0, kind: str = "physical") -> Slot:
    return Slot(
        name=name,
        slot_type=kind,
        active=active,
        restart_lsn=Lsn.parse("0/4000000"),
        wal_status="reserved",
        retained_bytes=held,
    )
