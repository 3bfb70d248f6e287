"""The quick commands read an agent's status (LiteStatus, no pydantic) as NodeStatus does:
every field, from documents NodeStatus itself wrote; and the cluster's view comes out the
same from either form."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from pgherd.model import cluster as cluster_model
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import ConflictCount, MeshWorkerRow
from pgherd.model.status import NodeStatus, ReplicationRow
from pgherd.model.status_lite import LiteStatus, read_status
from tests.unit import nodes


def full_primary() -> NodeStatus:
    """A primary with every field set: replication rows, slots, mesh workers, times."""
    lsn = Lsn.parse("1/2000060")
    row = ReplicationRow(
        application_name="node2",
        client_addr="127.0.0.1",
        state="streaming",
        sent_lsn=lsn,
        write_lsn=lsn,
        flush_lsn=lsn,
        replay_lsn=Lsn.parse("1/2000000"),
        write_lag_s=0.001,
        flush_lag_s=0.002,
        replay_lag_s=0.25,
        sync_state="quorum",
    )
    worker = MeshWorkerRow(
        mesh="m1", source="node2", target="node1", state="running", pid=4242, restarts=1,
        lag_bytes=120, lag_seconds=0.5, transactions=10, rows=100, conflicts=2,
        conflict_counts=(ConflictCount(kind="update_missing", resolution="skip", count=2),),
        last_conflict="update_missing", error=None,
    )  # fmt: skip
    return nodes.primary(
        "node1",
        lsn="1/2000060",
        pid=1234,
        version_num=150010,
        replication=(row,),
        slots=(nodes.slot("node2", active=True, held=4096), nodes.slot("old", kind="logical")),
        restarts=3,
        checked_at=datetime(2026, 12, 6, 7, 48, 22, 123456, tzinfo=UTC),
        mesh_workers=(worker,),
    )


STATUSES = {
    "primary with everything": full_primary(),
    "streaming standby": nodes.standby(
        "node2", replay="1/2000000", last_replay_time=datetime(2026, 12, 6, 7, 0, tzinfo=UTC)
    ),
    "standby not streaming": nodes.standby("node3", streaming=False, replay_paused=True),
    "stopped": nodes.stopped(nodes.standby("node3")),
    "unreachable": nodes.unreachable("node4"),
}


def wire(status: NodeStatus) -> Any:
    """The document as it crosses the API: NodeStatus's JSON, decoded."""
    return json.loads(json.dumps(status.model_dump(mode="json")))


def same(lite: object, validated: object, where: str) -> None:
    if dataclasses.is_dataclass(lite):
        for f in dataclasses.fields(lite):
            same(getattr(lite, f.name), getattr(validated, f.name), f"{where}.{f.name}")
        return
    if isinstance(lite, tuple):
        assert isinstance(validated, tuple) and len(lite) == len(validated), where
        for i, (a, b) in enumerate(zip(lite, validated, strict=True)):
            same(a, b, f"{where}.{i}")
        return
    assert lite == validated, f"{where}: {lite!r} != {validated!r}"
    assert type(lite) is type(validated), f"{where}: {type(lite)} vs {type(validated)}"


@pytest.mark.parametrize("name", list(STATUSES))
def test_a_status_reads_the_same_in_both_forms(name: str) -> None:
    status = STATUSES[name]
    lite = read_status(wire(status))
    same(lite, status, name)
    assert lite.position == status.position


@pytest.mark.parametrize(
    ("lite_class", "model"),
    [
        (LiteStatus, NodeStatus),
        (type(read_status(wire(full_primary())).replication[0]), ReplicationRow),
        (type(read_status(wire(full_primary())).mesh_workers[0]), MeshWorkerRow),
        (type(read_status(wire(full_primary())).mesh_workers[0].conflict_counts[0]), ConflictCount),
    ],
)
def test_every_field_is_read(lite_class: type, model: Any) -> None:
    assert {f.name for f in dataclasses.fields(lite_class)} == set(model.model_fields), (
        f"{model.__name__} and pgherd.model.status_lite.{lite_class.__name__} must have the "
        "same fields: the quick commands read the agents' statuses through the latter"
    )


def test_fields_a_newer_agent_adds_are_ignored() -> None:
    document = wire(full_primary())
    document["something_new"] = {"nested": [1, 2]}
    document["replication"][0]["new_column"] = 1
    assert read_status(document).name == "node1"


@pytest.mark.parametrize(
    "change",
    [
        {"name": None},
        {"state": "flying"},
        {"current_lsn": "not an lsn"},
        {"timeline": "1"},
        {"timeline": True},
        {"replication": [{"application_name": "x"}]},
        {"slots": {}},
        {"checked_at": "yesterday"},
    ],
)
def test_a_malformed_document_is_refused(change: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"^not a node status: "):
        read_status(wire(full_primary()) | change)
    with pytest.raises(ValueError, match=r"^not a node status: expected an object, got list"):
        read_status(["not", "a", "status"])


def test_the_clusters_view_is_the_same_from_either_form() -> None:
    validated = [
        nodes.primary("node1", lsn="0/5000100"),
        nodes.standby("node2", replay="0/5000000"),
        nodes.stopped(nodes.standby("node3")),
        nodes.unreachable("node4"),
    ]
    lite = [read_status(wire(s)) for s in validated]
    assert cluster_model.view(lite, nodes.node_at) == cluster_model.view(validated, nodes.node_at)
