"""``cluster show``'s view of the cluster, from hand-built node statuses."""

from __future__ import annotations

from typing import Any

import pytest

from pgherd.model.cluster import ClusterView, Health, NodeRow, view
from pgherd.model.lsn import Lsn
from pgherd.model.status import (
    Desired,
    NodeStatus,
    PgState,
    ReplicationRow,
    Role,
    WalReceiver,
    unreachable,
)

SYSID = "7642011472967116994"
ADDRESSES = {("127.0.0.1", 5441): "node1", ("127.0.0.1", 5442): "node2"}


def node_at(host: str | None, port: int | None) -> str | None:
    """As the CLI resolves it: a known node's name, else host:port."""
    return ADDRESSES.get((host or "", port or 0)) or (f"{host}:{port}" if host else None)


def replication_row(
    name: str, replay: str, lag_s: float | None, state: str = "streaming"
) -> ReplicationRow:
    lsn = Lsn.parse(replay)
    return ReplicationRow(
        application_name=name,
        client_addr="127.0.0.1",
        state=state,
        sent_lsn=lsn,
        write_lsn=lsn,
        flush_lsn=lsn,
        replay_lsn=lsn,
        write_lag_s=lag_s,
        flush_lag_s=lag_s,
        replay_lag_s=lag_s,
        sync_state="async",
    )


def receiver(status: str = "streaming", port: int = 5441) -> WalReceiver:
    return WalReceiver(
        status=status,
        sender_host="127.0.0.1",
        sender_port=port,
        slot_name="nodeX",
        received_tli=1,
        flushed_lsn=Lsn.parse("0/3000148"),
        latest_end_lsn=Lsn.parse("0/3000148"),
        last_msg_receipt_time=None,
    )


def primary(name: str = "node1", **over: Any) -> NodeStatus:
    fields: dict[str, Any] = {
        "name": name,
        "state": PgState.RUNNING,
        "desired": Desired.RUNNING,
        "role": Role.PRIMARY,
        "system_identifier": SYSID,
        "timeline": 1,
        "current_lsn": Lsn.parse("0/3000148"),
        "replication": (
            replication_row("node2", "0/3000100", 0.0021),
            replication_row("node3", "0/3000148", None),
        ),
    }
    return NodeStatus(**(fields | over))


def standby(name: str, replay: str = "0/3000100", **over: Any) -> NodeStatus:
    fields: dict[str, Any] = {
        "name": name,
        "state": PgState.RUNNING,
        "desired": Desired.RUNNING,
        "role": Role.STANDBY,
        "system_identifier": SYSID,
        "timeline": 1,
        "receive_lsn": Lsn.parse(replay),
        "replay_lsn": Lsn.parse(replay),
        "upstream_host": "127.0.0.1",
        "upstream_port": 5441,
        "wal_receiver": receiver(),
    }
    return NodeStatus(**(fields | over))


def healthy() -> list[NodeStatus]:
    return [primary(), standby("node2", "0/3000100"), standby("node3", "0/3000148")]


def rows(cluster: ClusterView) -> dict[str, NodeRow]:
    return {row.name: row for row in cluster.rows}


def test_a_healthy_cluster() -> None:
    cluster = view(healthy(), node_at)
    assert cluster.health is Health.HEALTHY
    assert cluster.problems == ()
    assert cluster.primary == "node1"
    assert cluster.system_identifier == SYSID
    by_name = rows(cluster)
    assert [r.name for r in cluster.rows] == ["node1", "node2", "node3"]

    node1 = by_name["node1"]
    assert node1.is_primary
    assert (node1.state, node1.upstream, node1.timeline) == ("running", None, 1)
    assert node1.lsn == Lsn.parse("0/3000148")
    assert (node1.lag_bytes, node1.lag_seconds) == (None, None)

    node2 = by_name["node2"]
    assert not node2.is_primary
    assert (node2.role, node2.state, node2.upstream) == (Role.STANDBY, "streaming", "node1")
    assert node2.lsn == Lsn.parse("0/3000100")
    assert node2.lag_bytes == 0x48  # the primary's current LSN minus the standby's replay LSN
    assert node2.lag_seconds == 0.0021  # replay_lag from the upstream's pg_stat_replication
    assert node2.problem is None

    node3 = by_name["node3"]
    assert (node3.state, node3.lag_bytes) == ("streaming", 0)
    assert node3.lag_seconds == 0.0  # caught up and idle: replay_lag is NULL, lag is none


def test_a_standby_replaying_past_a_stale_primary_reading_has_no_negative_lag() -> None:
    statuses = [primary(), standby("node2", "0/3000200")]
    assert rows(view(statuses, node_at))["node2"].lag_bytes == 0


def test_a_standby_catching_up_shows_the_upstreams_state() -> None:
    statuses = [
        primary(replication=(replication_row("node2", "0/2000000", 3.5, state="catchup"),)),
        standby("node2", "0/2000000"),
    ]
    node2 = rows(view(statuses, node_at))["node2"]
    assert node2.state == "catchup"
    assert node2.lag_bytes == 0x1000148
    assert node2.lag_seconds == 3.5


def test_a_stopped_standby() -> None:
    stopped = standby("node3", "0/3000000", state=PgState.STOPPED, desired=Desired.STOPPED)
    stopped = stopped.model_copy(update={"wal_receiver": None})
    statuses = [primary(), standby("node2"), stopped]
    cluster = view(statuses, node_at)
    assert cluster.health is Health.DEGRADED
    assert cluster.primary == "node1"
    node3 = rows(cluster)["node3"]
    assert node3.state == "stopped"
    assert node3.upstream == "node1"  # from its primary_conninfo, even while stopped
    assert node3.lsn == Lsn.parse("0/3000000")
    assert (node3.lag_bytes, node3.lag_seconds) == (None, None)
    assert node3.problem == "PostgreSQL is stopped"
    assert cluster.problems == ("node3: PostgreSQL is stopped",)


def test_an_unreachable_node() -> None:
    statuses = [primary(), standby("node2"), unreachable("node3", "connection refused")]
    cluster = view(statuses, node_at)
    assert cluster.health is Health.DEGRADED
    node3 = rows(cluster)["node3"]
    assert (node3.role, node3.state) == (Role.UNKNOWN, "unreachable")
    assert (node3.lsn, node3.timeline, node3.upstream) == (None, None, None)
    assert cluster.problems == ("node3: agent unreachable",)


def test_no_running_primary() -> None:
    stopped = primary(state=PgState.STOPPED, desired=Desired.STOPPED, replication=())
    cluster = view([stopped, standby("node2"), standby("node3")], node_at)
    assert cluster.primary is None
    assert cluster.health is Health.DEGRADED
    assert "no running primary" in cluster.problems
    assert "node1: PostgreSQL is stopped" in cluster.problems
    assert not any(row.is_primary for row in cluster.rows)
    # without a primary there is nothing to measure byte lag against
    assert rows(cluster)["node2"].lag_bytes is None
    assert cluster.system_identifier == SYSID


def test_two_running_primaries() -> None:
    statuses = [primary("node1"), primary("node2", replication=()), standby("node3")]
    cluster = view(statuses, node_at)
    assert cluster.primary is None
    assert cluster.health is Health.DEGRADED
    assert "more than one running primary: node1, node2" in cluster.problems
    assert [r.name for r in cluster.rows if r.is_primary] == ["node1", "node2"]


def test_a_system_identifier_mismatch_says_to_re_clone() -> None:
    statuses = [
        primary(),
        standby("node2"),
        standby("node3", system_identifier="7000000000000000001"),
    ]
    cluster = view(statuses, node_at)
    assert cluster.system_identifier == SYSID
    problem = rows(cluster)["node3"].problem
    assert problem is not None
    assert "7000000000000000001" in problem
    assert SYSID in problem
    assert "re-clone it from the primary" in problem
    assert cluster.problems == (f"node3: {problem}",)


def test_without_a_primary_the_most_common_identifier_is_the_clusters() -> None:
    odd = standby("node3", system_identifier="7000000000000000001")
    cluster = view([standby("node1"), standby("node2"), odd], node_at)
    assert cluster.system_identifier == SYSID
    assert "re-clone it from the primary" in (rows(cluster)["node3"].problem or "")


@pytest.mark.parametrize("wal_receiver", [None, receiver("waiting"), receiver("starting")])
def test_a_running_standby_that_is_not_streaming(wal_receiver: WalReceiver | None) -> None:
    statuses = [
        primary(replication=(replication_row("node2", "0/3000100", 0.0),)),
        standby("node2"),
        standby("node3", wal_receiver=wal_receiver),
    ]
    cluster = view(statuses, node_at)
    node3 = rows(cluster)["node3"]
    assert node3.state == "not streaming"
    assert node3.problem == "standby is not streaming from its upstream"
    assert cluster.problems == ("node3: standby is not streaming from its upstream",)


def test_upstream_is_resolved_through_node_at() -> None:
    asked: list[tuple[str | None, int | None]] = []

    def resolve(host: str | None, port: int | None) -> str | None:
        asked.append((host, port))
        return {("10.0.0.1", 5432): "node1", ("10.0.0.2", 5432): "node2"}.get(
            (host or "", port or 0)
        )

    cascaded = standby("node3", upstream_host="10.0.0.2", upstream_port=5432)
    unknown = standby("node4", upstream_host="10.9.9.9", upstream_port=6000)
    statuses = [
        primary(),
        standby("node2", upstream_host="10.0.0.1", upstream_port=5432),
        cascaded,
        unknown,
    ]
    by_name = rows(view(statuses, resolve))
    assert by_name["node2"].upstream == "node1"
    assert by_name["node3"].upstream == "node2"
    assert by_name["node4"].upstream is None
    assert ("10.0.0.2", 5432) in asked
    assert all(host is not None for host, _ in asked)  # the primary has no upstream to ask for


# ---- pending restarts and agents that run another pgherd.yaml ---------------------------

HOSTS = {"node1": "10.0.0.1", "node2": "10.0.0.2", "node3": "10.0.0.3", "witness": "10.0.0.9"}


@pytest.mark.parametrize(
    ("fingerprints", "local", "said"),
    [
        ({"node1": "aaa", "node2": "aaa"}, "aaa", []),
        ({"node1": "aaa", "node2": None}, "aaa", []),  # an agent that did not answer
        ({}, "aaa", []),
        (
            {"node1": "aaa", "node2": "bbb", "node3": "aaa", "witness": "aaa"},
            "aaa",
            [
                "the agents run different pgherd.yaml: node1 (10.0.0.1), node3 (10.0.0.3), "
                "witness (10.0.0.9) run aaa; node2 (10.0.0.2) runs bbb — copy the same file to "
                "every host, then pgherd agent reload (an agent restart for what a reload "
                "cannot change)"
            ],
        ),
        (
            {"node1": "aaa", "node2": "aaa"},
            "ccc",
            [
                "every agent runs pgherd.yaml aaa, but this host's file is ccc — pgherd agent "
                "reload if this file is the newer, or copy theirs here"
            ],
        ),
    ],
)
def test_agents_running_another_config_are_named_with_their_hosts(
    fingerprints: dict[str, str | None], local: str, said: list[str]
) -> None:
    from pgherd.model.cluster import config_warnings

    assert config_warnings(fingerprints, HOSTS, local) == said


def test_pending_restarts_are_noted_with_how_to_apply_them() -> None:
    from pgherd.model.cluster import pending_restart_notes

    statuses = [
        NodeStatus(name="node1", state=PgState.RUNNING, desired=Desired.RUNNING, role=Role.PRIMARY),
        NodeStatus(
            name="node2",
            state=PgState.RUNNING,
            desired=Desired.RUNNING,
            role=Role.STANDBY,
            pending_restart=("max_connections", "shared_buffers"),
        ),
    ]
    found = view(statuses, node_at)
    assert pending_restart_notes(found.rows) == [
        "node2: pending restart: max_connections, shared_buffers — pgherd node restart node2, "
        "or pgherd cluster restart for every node"
    ]
    assert found.rows[1].pending_restart == ("max_connections", "shared_buffers")
