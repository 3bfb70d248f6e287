"""The rolling restart's plan (model/restart.py), from hand-built statuses."""

from __future__ import annotations

from typing import Any

import pytest

from pgherd.model import restart
from pgherd.model.lsn import Lsn
from pgherd.model.restart import Do, Step
from pgherd.model.status import Desired, NodeStatus, PgState, Role, WalReceiver

PORTS = {5441: "node1", 5442: "node2", 5443: "node3"}


def node_at(host: str | None, port: int | None) -> str | None:
    return PORTS.get(port or 0)


def primary(name: str = "node1", **kw: Any) -> NodeStatus:
    return NodeStatus(
        name=name,
        state=PgState.RUNNING,
        desired=Desired.RUNNING,
        role=Role.PRIMARY,
        current_lsn=Lsn.parse("0/5000000"),
        **kw,
    )


def standby(name: str, replay: str = "0/5000000", upstream: int = 5441, **kw: Any) -> NodeStatus:
    fields: dict[str, Any] = {
        "name": name,
        "state": PgState.RUNNING,
        "desired": Desired.RUNNING,
        "role": Role.STANDBY,
        "replay_lsn": Lsn.parse(replay),
        "wal_receiver": WalReceiver(
            status="streaming",
            sender_host="127.0.0.1",
            sender_port=upstream,
            slot_name=name,
            received_tli=1,
            flushed_lsn=Lsn.parse(replay),
            latest_end_lsn=Lsn.parse(replay),
            last_msg_receipt_time=None,
        ),
    }
    return NodeStatus.model_validate(fields | kw)


PENDING = ("shared_buffers",)


def test_standbys_first_then_a_switchover_to_the_most_advanced_then_the_old_primary() -> None:
    plan = restart.plan(
        [
            primary(pending_restart=PENDING),
            standby("node2", "0/4000000", pending_restart=PENDING),
            standby("node3", "0/5000000", pending_restart=PENDING),
        ],
        node_at,
    )
    assert plan.refused is None
    assert plan.steps == (
        Step(Do.RESTART, "node2", "pending restart: shared_buffers"),
        Step(Do.RESTART, "node3", "pending restart: shared_buffers"),
        Step(Do.SWITCHOVER, "node3", "node1 is the primary and must restart"),
        Step(Do.RESTART, "node1", "pending restart: shared_buffers (a standby by then)"),
    )


def test_only_nodes_with_something_pending_unless_every_node_is_asked() -> None:
    statuses = [primary(), standby("node2", pending_restart=PENDING), standby("node3")]
    assert [(s.do, s.node) for s in restart.plan(statuses, node_at).steps] == [
        (Do.RESTART, "node2")
    ]
    everything = restart.plan(statuses, node_at, every_node=True)
    assert [(s.do, s.node) for s in everything.steps] == [
        (Do.RESTART, "node2"),
        (Do.RESTART, "node3"),
        (Do.SWITCHOVER, "node2"),  # equal positions: the lower name
        (Do.RESTART, "node1"),
    ]
    assert everything.steps[1].reason == "every node (--all)"


def test_nothing_pending_is_nothing_to_do() -> None:
    plan = restart.plan([primary(), standby("node2")], node_at)
    assert plan.nothing_to_do and plan.steps == ()


def test_the_primarys_role_never_goes_to_a_nofailover_standby() -> None:
    statuses = [
        primary(pending_restart=PENDING),
        standby("node2", "0/5000000"),
        standby("node3", "0/4000000"),
    ]
    plan = restart.plan(statuses, node_at, nofailover={"node2"})
    assert [(s.do, s.node) for s in plan.steps] == [(Do.SWITCHOVER, "node3"), (Do.RESTART, "node1")]


@pytest.mark.parametrize(
    ("statuses", "refused"),
    [
        ([standby("node2")], "no running primary"),
        ([primary(), primary("node2")], "more than one primary: node1, node2"),
        (
            [
                primary(),
                NodeStatus(name="node2", state=PgState.STOPPED, desired=Desired.STOPPED),
            ],
            "node2 is stopped: a rolling restart needs every node running",
        ),
        (
            [primary(), standby("node2", wal_receiver=None)],
            "node2 does not stream from its upstream",
        ),
        (
            [primary(pending_restart=PENDING)],
            "the primary node1 must restart (pending restart: shared_buffers) and no standby "
            "can take its role (none streams from it that may be promoted)",
        ),
    ],
)
def test_refused_before_anything_is_done(statuses: list[NodeStatus], refused: str) -> None:
    plan = restart.plan(statuses, node_at, every_node=True)
    assert plan.refused == refused
    assert plan.steps == () and plan.hint


def test_a_primary_with_only_a_nofailover_standby_is_refused_with_the_way_out() -> None:
    plan = restart.plan(
        [primary(pending_restart=PENDING), standby("node2")], node_at, nofailover={"node2"}
    )
    assert plan.refused is not None
    assert plan.hint.startswith("restart it in place with pgherd node restart node1")
