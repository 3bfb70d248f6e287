"""The audit trail: every acting call to an agent, refused or not, becomes a cluster event
naming who, what, from where and how it ended; reads do not."""

from __future__ import annotations

import warnings
from pathlib import Path

from pgherd.model.events import Event, Outcome
from tests.unit.agent_app import VIEWER, full_app
from tests.unit.fake_agent import TOKEN

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient


def test_every_acting_call_is_recorded_with_who_and_how_it_ended(tmp_path: Path) -> None:
    seen: list[Event] = []
    with TestClient(full_app(tmp_path, audit=seen.append)) as client:
        client.get("/status")  # a read: not recorded
        client.post("/postgres/stop", headers={"Authorization": f"Bearer {TOKEN}"})
        client.post("/postgres/start", headers={"Authorization": "Bearer wrong-token"})
        client.post("/ops/checkpoint", headers={"Authorization": f"Bearer {VIEWER}"})
        client.post("/restore-point", content=b"x" * (2 << 20))  # oversized, no token
        client.post("/events", json={"operation": "x", "node": "node1"})  # the log itself
    assert [(e.operation, e.outcome, e.reason) for e in seen] == [
        ("api POST /postgres/stop", Outcome.SUCCEEDED, "HTTP 200"),
        ("api POST /postgres/start", Outcome.REFUSED, "HTTP 401"),
        ("api POST /ops/checkpoint", Outcome.REFUSED, "HTTP 403"),
        ("api POST /restore-point", Outcome.REFUSED, "HTTP 401"),
    ]
    assert [e.requested_by for e in seen] == [
        "operator (operator) from testclient",
        "no valid credential from testclient",
        "viewer (viewer) from testclient",
        "no valid credential from testclient",
    ]
    assert all(e.node == "node1" and e.finished_at is not None for e in seen)
