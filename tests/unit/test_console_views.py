"""The console's pure parts: the topology picture (tiers, ten nodes, arrows), the forms
(the CLI's rules), previews' refusals, and event filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.console import forms, topology
from pgherd.console.state import ClusterState, Leader, MeshPair, Subscription
from pgherd.console.views import filter_events
from pgherd.errors import InvalidInput
from pgherd.model import cluster as cluster_model
from pgherd.model.events import Event, Outcome
from pgherd.model.ha_report import HaReport
from pgherd.model.ha_settings import Mode
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import MeshWorkerRow, WorkerState
from pgherd.model.status import Desired, NodeStatus, PgState, ReplicationRow, Role, WalReceiver
from pgherd.model.subscription import SubscriptionInfo

PORT = 6000


def config_of(count: int) -> ClusterConfig:
    return config_mod.parse(
        {
            "cluster": "unit",
            "passfile": "/nonexistent/pgpass",
            "api_token_file": "/nonexistent/token",
            "nodes": [
                {
                    "name": f"node{i}",
                    "port": PORT + i,
                    "api_port": 7000 + i,
                    "data_dir": f"/nonexistent/node{i}/data",
                }
                for i in range(1, count + 1)
            ],
        }
    )


def primary(name: str) -> NodeStatus:
    return NodeStatus(
        name=name,
        state=PgState.RUNNING,
        desired=Desired.RUNNING,
        role=Role.PRIMARY,
        timeline=1,
        current_lsn=Lsn.parse("0/3000000"),
        system_identifier="1",
    )


def standby(name: str, upstream: int, state: PgState = PgState.RUNNING) -> NodeStatus:
    return NodeStatus(
        name=name,
        state=state,
        desired=Desired.RUNNING,
        role=Role.STANDBY,
        timeline=1,
        replay_lsn=Lsn.parse("0/2000000"),
        upstream_host="127.0.0.1",
        upstream_port=PORT + upstream,
        system_identifier="1",
        wal_receiver=WalReceiver(
            status="streaming",
            sender_host="127.0.0.1",
            sender_port=PORT + upstream,
            slot_name=name,
            received_tli=1,
            flushed_lsn=None,
            latest_end_lsn=None,
            last_msg_receipt_time=None,
        )
        if state is PgState.RUNNING
        else None,
    )


def state_of(config: ClusterConfig, statuses: list[NodeStatus], **extra: object) -> ClusterState:
    def node_at(host: str | None, port: int | None) -> str | None:
        node = config.node_at(host, port)
        return node.name if node else None

    view = cluster_model.view(statuses, node_at, config.independent)
    return ClusterState(config=config, statuses=tuple(statuses), view=view, **extra)  # type: ignore[arg-type]


def test_tiers_follow_the_streaming_tree() -> None:
    config = config_of(4)
    statuses = [primary("node1"), standby("node2", 1), standby("node3", 2), standby("node4", 1)]
    picture = topology.layout(state_of(config, statuses))
    y = {b.name: b.y for b in picture.boxes}
    assert y["node1"] < y["node2"] == y["node4"] < y["node3"], "node3 cascades from node2"
    kinds = {(a.source, a.target) for a in picture.arrows if a.kind is topology.StreamKind.PHYSICAL}
    assert kinds == {("node1", "node2"), ("node2", "node3"), ("node1", "node4")}


def test_ten_nodes_wrap_into_rows_and_keep_their_size() -> None:
    config = config_of(10)
    statuses = [primary("node1"), *(standby(f"node{i}", 1) for i in range(2, 11))]
    picture = topology.layout(state_of(config, statuses))
    assert len(picture.boxes) == 10
    per_row: dict[int, int] = {}
    for box in picture.boxes:
        per_row[box.y] = per_row.get(box.y, 0) + 1
        assert box.x >= 0 and box.x + topology.BOX_W <= picture.width
        assert box.y + topology.BOX_H <= picture.height
    assert max(per_row.values()) <= topology.PER_ROW
    assert picture.width <= 2 * topology.MARGIN + topology.PER_ROW * (
        topology.BOX_W + topology.GAP_X
    )
    assert len({(b.x, b.y) for b in picture.boxes}) == 10, "no two boxes overlap"


def test_health_colours_and_leader() -> None:
    config = config_of(3)
    statuses = [primary("node1"), standby("node2", 1), standby("node3", 1, PgState.STOPPED)]
    picture = topology.layout(state_of(config, statuses, leader=Leader("node1", "")))
    health = {b.name: b.health for b in picture.boxes}
    assert health == {"node1": "ok", "node2": "ok", "node3": "down"}
    assert [b.name for b in picture.boxes if b.leader] == ["node1"]


def test_logical_and_mesh_arrows_and_outside_publishers() -> None:
    config = config_mod.parse(config_of(2).model_dump(mode="json") | {"topology": "independent"})
    info = SubscriptionInfo(
        name="s1",
        dbname="postgres",
        owner="postgres",
        enabled=True,
        publications=("p",),
        slot_name="s1",
        host="127.0.0.1",
        port=PORT + 1,
    )
    outside = info.model_copy(update={"name": "s2", "host": "db.example", "port": 5432})
    state = state_of(
        config,
        [primary("node1"), primary("node2")],
        subscriptions=(
            Subscription("node2", info, "node1", True, 0, 0.0),
            Subscription("node2", outside, "db.example:5432", False, None, None),
        ),
        mesh=(
            MeshPair("m", "node1", "node2", WorkerState.RUNNING, 10, 0.1),
            MeshPair("m", "node2", "node1", WorkerState.RUNNING, 0, 0.0),
        ),
    )
    picture = topology.layout(state)
    assert {b.name for b in picture.boxes if b.external} == {"db.example:5432"}
    arrows = [(a.kind, a.source, a.target) for a in picture.arrows]
    assert (topology.StreamKind.LOGICAL, "node1", "node2") in arrows
    assert (topology.StreamKind.LOGICAL, "db.example:5432", "node2") in arrows
    assert sum(1 for a in arrows if a[0] is topology.StreamKind.MESH) == 2
    top = min(b.y for b in picture.boxes)
    for arrow in picture.arrows:
        assert min(arrow.y1, arrow.label_y) >= 0 and max(arrow.y1, arrow.label_y) <= picture.height
    assert top == topology.MARGIN, "the outside publisher's box comes first"
    mesh_only = topology.layout(
        state_of(config, [primary("node1"), primary("node2")], mesh=state.mesh)
    )
    assert min(b.y for b in mesh_only.boxes) > topology.MARGIN, "room for the curve going back"
    assert all(0 <= a.label_y <= mesh_only.height for a in mesh_only.arrows)


def test_replication_row_for_logical_does_not_count_as_a_standby() -> None:
    config = config_of(2)
    p = primary("node1").model_copy(
        update={
            "replication": (
                ReplicationRow(
                    application_name="node2",
                    client_addr=None,
                    state="streaming",
                    sent_lsn=None,
                    write_lsn=None,
                    flush_lsn=None,
                    replay_lsn=None,
                    write_lag_s=None,
                    flush_lag_s=None,
                    replay_lag_s=0.25,
                    sync_state="async",
                ),
            )
        }
    )
    picture = topology.layout(state_of(config, [p, standby("node2", 1)]))
    (arrow,) = picture.arrows
    assert "250 ms" in arrow.label


def form(**fields: str | list[str]) -> forms.Form:
    pairs: list[tuple[str, str]] = []
    for key, value in fields.items():
        for one in value if isinstance(value, list) else [value]:
            pairs.append((key, one))
    return forms.Form(tuple(pairs))


def test_publication_form_uses_the_cli_rules() -> None:
    node, spec = forms.publication(
        form(
            node="node1",
            name="eu",
            table=["orders", '"Odd Name"'],
            preset="custom",
            publish=["insert", "delete"],
            row_filters="orders:region = 'EU'\n",
        )
    )
    assert node == "node1"
    assert [t.name for t in spec.tables] == ["orders", "Odd Name"]
    assert spec.tables[0].row_filter == "region = 'EU'"
    assert spec.publish == ("insert", "delete")
    with pytest.raises(InvalidInput, match="not in --tables"):
        forms.publication(form(node="node1", name="x", table="orders", row_filters="other:true"))
    with pytest.raises(InvalidInput, match="say what to publish"):
        forms.publication(form(node="node1", name="x"))
    with pytest.raises(InvalidInput, match="--publish"):
        forms.publication(form(node="node1", name="x", all_tables="on", preset="custom"))


def test_subscription_form_uses_the_cli_rules() -> None:
    config = config_of(2)
    node, spec = forms.subscription(
        config, form(node="node2", name="s", source="node1", publications="a, b", copy_data="on")
    )
    assert node == "node2" and spec.publications == ("a", "b") and spec.copy_data
    assert "passfile=/nonexistent/pgpass" in spec.conninfo
    with pytest.raises(InvalidInput, match="subscribing node itself"):
        forms.subscription(config, form(node="node1", name="s", source="node1", publications="a"))
    with pytest.raises(InvalidInput, match="password"):
        forms.subscription(
            config,
            form(
                node="node2",
                name="s",
                source="uri",
                uri="postgresql://u:secret@h/db",
                publications="a",
            ),
        )


def test_form_body_parsing() -> None:
    parsed = forms.Form.parse(b"a=1&b=x+y&a=2&flag=on&empty=")
    assert parsed.all("a") == ["1", "2"] and parsed.get("b") == "x y"
    assert parsed.flag("flag") and not parsed.flag("empty") and parsed.get("missing") == ""


def test_event_filters() -> None:
    t0 = datetime(2026, 11, 25, tzinfo=UTC)
    events = [
        Event(
            operation="switchover",
            node="node2",
            started_at=t0,
            outcome=Outcome.SUCCEEDED,
            details={"from": "node1"},
        ),
        Event(
            operation="promote", node="node3", started_at=t0 + timedelta(1), outcome=Outcome.REFUSED
        ),
    ]
    assert [e.node for e in filter_events(events)] == ["node3", "node2"], "newest first"
    assert [e.node for e in filter_events(events, operation="switchover")] == ["node2"]
    assert [e.node for e in filter_events(events, node="node1")] == ["node2"], "in details"
    assert [e.node for e in filter_events(events, outcome="refused")] == ["node3"]


def test_leader_only_when_the_agents_run_an_ha_loop() -> None:
    from pgherd.console.state import _leader, _NodeExtras

    def extras(*loops: HaReport | None) -> dict[str, _NodeExtras]:
        return {f"node{i}": _NodeExtras(ha=ha) for i, ha in enumerate(loops, 1)}

    manual = HaReport(mode=Mode.MANUAL, state=PgState.RUNNING)
    assert _leader(extras(manual, manual, None)) is None, "no HA loop: no lease shown"
    assert _leader(extras(None, None)) is None
    follower = HaReport(mode=Mode.AUTOMATIC, state=PgState.RUNNING, leader="node2")
    holder = follower.model_copy(update={"holds_lease": True, "lease_left": 2.54})
    assert _leader(extras(follower, holder, follower)) == Leader("node2", "lease left 2.5 s")
    assert _leader(extras(follower, None)) == Leader(
        "node2", "the store names it; it does not answer as leader"
    )
    nobody = HaReport(mode=Mode.AUTOMATIC, state=PgState.RUNNING)
    assert _leader(extras(nobody, nobody)) == Leader(None, "no node holds the leader lease")


def test_mesh_pairs_from_worker_rows() -> None:
    from pgherd.console.state import _mesh_pairs

    rows = [
        MeshWorkerRow(
            mesh="m", source="node2", target="node1", state=WorkerState.RUNNING, lag_bytes=5
        ),
        MeshWorkerRow(mesh="m", source="node1", target="node2", state=WorkerState.CONFLICT),
        MeshWorkerRow(mesh="m", source="node1", target="node2", state=WorkerState.CONFLICT),
    ]
    pairs = _mesh_pairs(rows)
    assert [(p.source, p.target, p.state) for p in pairs] == [
        ("node1", "node2", "conflict"),
        ("node2", "node1", "running"),
    ]


class SnapshotOperation:
    """Stands in for ops.context.Operation where a preview only reads the snapshot."""

    def __init__(self, config: ClusterConfig, statuses: list[NodeStatus]) -> None:
        self.config = config
        self.statuses = statuses

    def snapshot(self) -> list[NodeStatus]:
        return self.statuses

    def node_at(self, host: str | None, port: int | None) -> str | None:
        node = self.config.node_at(host, port)
        return node.name if node else None


def test_previews_refuse_as_the_operations_would() -> None:
    from pgherd.console.plans import ActionKind, ActionRequest, preview

    config = config_of(3)
    op = SnapshotOperation(config, [primary("node1"), standby("node2", 1), standby("node3", 1)])
    promote = preview(op, ActionRequest(ActionKind.PROMOTE, "node2"))  # type: ignore[arg-type]
    assert not promote.allowed
    assert promote.refused is not None and promote.refused.startswith("promote refused")
    pause = preview(op, ActionRequest(ActionKind.PAUSE_REPLAY, "node2"))  # type: ignore[arg-type]
    assert pause.allowed and pause.plan == [
        "pg_wal_replay_pause() on node2: it keeps receiving WAL but applies none; queries "
        "see the data as it is now"
    ]
    on_primary = preview(op, ActionRequest(ActionKind.RESUME_REPLAY, "node1"))  # type: ignore[arg-type]
    assert not on_primary.allowed and "not a running standby" in (on_primary.refused or "")
    assert ActionRequest(ActionKind.FOLLOW, "node3", upstream="node2").cli == (
        "pgherd standby follow node3 --upstream node2"
    )
