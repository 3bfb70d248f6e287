"""The agent's operation endpoints against a fake: token, request shapes, error shapes.

The operations themselves run against real servers in tests/e2e; here it is HTTP only.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI

from pgherd.api.app import secure
from pgherd.api.credentials import operator_only
from pgherd.api.routes_ops import ops_router
from pgherd.errors import Refused
from pgherd.model.events import Event, Outcome
from pgherd.model.lsn import Lsn
from pgherd.model.node_ops import (
    CheckpointDone,
    CloneSummary,
    NodeWal,
    PromoteResult,
    ReplayWait,
    RewindResult,
    SlotChange,
    SlotState,
)
from pgherd.model.status import NodeStatus, Role

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient

TOKEN = "ops-t0ken"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
L = Lsn.parse


class FakeOperations:
    """Records what it was asked; raises ``fail_with`` when set."""

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []
        self.events: list[Event] = []
        self.fail_with: Exception | None = None

    def _call(self, *what: object) -> None:
        self.calls.append(what)
        if self.fail_with is not None:
            raise self.fail_with

    def wal_position(self) -> NodeWal:
        self._call("wal")
        return NodeWal(
            name="node2", running=True, role=Role.STANDBY, timeline=2, lsn=L("0/5000000")
        )

    def recent_events(self, limit: int) -> list[Event]:
        self._call("events", limit)
        return self.events[-limit:]

    def wait_replay(self, past: Lsn, timeout: float) -> ReplayWait:
        self._call("wait", past, timeout)
        return ReplayWait(
            name="node2",
            reached=True,
            target=past,
            replay_lsn=L("0/5000100"),
            receive_lsn=L("0/5000100"),
            seconds=0.01,
        )

    def save_event(self, event: Event) -> None:
        self._call("save", event.id)
        self.events.append(event)

    def checkpoint(self) -> CheckpointDone:
        self._call("checkpoint")
        return CheckpointDone(name="node2", redo_lsn=L("0/5000000"), seconds=0.1)

    def promote(self, timeout: float) -> PromoteResult:
        self._call("promote", timeout)
        return PromoteResult(
            name="node2", timeline_before=1, timeline_after=2, lsn=L("0/5000100"), seconds=0.1
        )

    def follow(self, upstream: str, start: bool) -> None:
        self._call("follow", upstream, start)

    def rewind(self, source: str, timeout: float) -> RewindResult:
        self._call("rewind", source, timeout)
        return RewindResult(name="node1", source=source, rewound=True, seconds=1.0)

    def clone(self, upstream: NodeStatus) -> CloneSummary:
        self._call("clone", upstream.name)
        return CloneSummary(
            name="node1", upstream=upstream.name, bytes_copied=1, seconds=1.0, slot_created=True
        )

    def create_slot(self, slot: str) -> SlotChange:
        self._call("create_slot", slot)
        return SlotChange(node="node2", slot=slot, changed=True, detail="created")

    def drop_slot(self, slot: str) -> SlotChange:
        self._call("drop_slot", slot)
        return SlotChange(node="node2", slot=slot, changed=True, detail="dropped")

    def slot_state(self, slot: str) -> SlotState:
        self._call("slot_state", slot)
        return SlotState(node="node2", slot=slot, state="c3RhdGU=")


@pytest.fixture
def ops() -> FakeOperations:
    return FakeOperations()


@pytest.fixture
def client(ops: FakeOperations) -> Iterator[TestClient]:
    app = secure(FastAPI(), lambda: operator_only(TOKEN))
    app.include_router(ops_router(ops))
    with TestClient(app) as test_client:
        yield test_client


ACTING = [
    ("POST", "/ops/promote", None),
    ("POST", "/ops/checkpoint", None),
    ("POST", "/ops/follow", {"upstream": "node1"}),
    ("POST", "/ops/rewind", {"source": "node2"}),
    ("POST", "/ops/wait-replay", {"past": "0/5000000"}),
    ("POST", "/ops/slots?name=node1", None),
    ("DELETE", "/ops/slots?name=node1", None),
    ("POST", "/events", Event(operation="x", node="node1").model_dump(mode="json")),
]


@pytest.mark.parametrize(("method", "path", "body"), ACTING)
def test_acting_endpoints_need_the_token(
    client: TestClient, ops: FakeOperations, method: str, path: str, body: object
) -> None:
    response = client.request(method, path, json=body)
    assert response.status_code == 401
    wrong = client.request(method, path, json=body, headers={"Authorization": "Bearer no"})
    assert wrong.status_code == 401
    assert ops.calls == []


def test_reading_is_open(client: TestClient, ops: FakeOperations) -> None:
    wal = client.get("/wal")
    assert wal.status_code == 200
    assert wal.json()["lsn"] == "0/5000000"
    assert client.get("/events", params={"limit": 5}).json() == []
    assert ops.calls == [("wal",), ("events", 5)]


def test_requests_reach_the_agent_with_their_values(
    client: TestClient, ops: FakeOperations
) -> None:
    promoted = client.post("/ops/promote", params={"timeout": 7}, headers=AUTH)
    assert promoted.json()["timeline_after"] == 2
    client.post("/ops/follow", json={"upstream": "node1", "start": False}, headers=AUTH)
    waited = client.post("/ops/wait-replay", json={"past": "0/4027FD0", "timeout": 3}, headers=AUTH)
    assert waited.json()["reached"] is True
    client.post("/ops/slots", params={"name": "node1"}, headers=AUTH)
    assert ops.calls == [
        ("promote", 7.0),
        ("follow", "node1", False),
        ("wal",),  # follow answers with where the node's WAL ends now
        ("wait", L("0/4027FD0"), 3.0),
        ("create_slot", "node1"),
    ]


@pytest.mark.parametrize("name", ["Node1", "a-b", "x" * 64, "'; drop"])
def test_slot_names_are_validated(client: TestClient, ops: FakeOperations, name: str) -> None:
    response = client.post("/ops/slots", params={"name": name}, headers=AUTH)
    assert response.status_code == 422
    assert ops.calls == []


def test_a_refusal_is_409_with_the_hint(client: TestClient, ops: FakeOperations) -> None:
    ops.fail_with = Refused("PostgreSQL runs on node1", "stop it first: pgherd node stop node1")
    response = client.post("/ops/rewind", json={"source": "node2"}, headers=AUTH)
    assert response.status_code == 409
    assert response.json() == {
        "error": "PostgreSQL runs on node1",
        "hint": "stop it first: pgherd node stop node1",
    }


def test_events_round_trip(client: TestClient, ops: FakeOperations) -> None:
    event = Event(operation="switchover", node="node2", requested_by="root@vm")
    done = event.finish(Outcome.SUCCEEDED, "node2 is the primary", timeline=2)
    assert client.post("/events", json=done.model_dump(mode="json"), headers=AUTH).is_success
    (back,) = client.get("/events").json()
    assert Event.model_validate(back) == done


def test_a_slots_state_file_for_a_standbys_copy(client: TestClient, ops: FakeOperations) -> None:
    response = client.get("/ops/slot-state", params={"name": "sub"}, headers=AUTH)
    assert response.json() == {"node": "node2", "slot": "sub", "state": "c3RhdGU="}
    assert client.get("/ops/slot-state", params={"name": "../x"}, headers=AUTH).status_code == 422
    assert client.get("/ops/slot-state", params={"name": "sub"}).status_code == 401
