"""The agent's HTTP API against a fake agent: status codes, JSON shapes and the token."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from pgherd.api.app import create_app
from pgherd.errors import DataDirNotEmpty, PgherdError, Refused, TimedOut
from pgherd.model.archive_api import BackupMade, PusherState
from pgherd.model.doctor import NodeFacts
from pgherd.model.lsn import Lsn
from pgherd.model.status import NodeStatus, PgState
from tests.unit.fake_agent import TOKEN, FakeAgent

with warnings.catch_warnings():
    # Starlette 1.x wants the httpx2 package for its TestClient and warns when it falls back
    # to httpx (which is what is installed); the client works the same either way.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def agent() -> FakeAgent:
    return FakeAgent()


@pytest.fixture
def client(agent: FakeAgent) -> Iterator[TestClient]:
    with TestClient(create_app(agent)) as test_client:
        yield test_client


def test_health_is_200_while_postgresql_runs(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"state": "running", "role": "primary"}


@pytest.mark.parametrize("state", [PgState.STOPPED, PgState.STARTING, PgState.CRASHED])
def test_health_is_503_otherwise(client: TestClient, agent: FakeAgent, state: PgState) -> None:
    agent.state = state
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["state"] == str(state)


def test_status_is_a_node_status_with_lsns_as_text(client: TestClient) -> None:
    response = client.get("/status")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "node1"
    assert body["state"] == "running"
    assert body["role"] == "primary"
    assert body["system_identifier"] == "7642011472967116994"
    assert body["current_lsn"] == "0/3000148"
    assert body["replay_lsn"] is None
    row = body["replication"][0]
    assert (row["application_name"], row["replay_lsn"], row["replay_lag_s"]) == (
        "node2",
        "0/3000100",
        0.002,
    )
    assert NodeStatus.model_validate(body).current_lsn == Lsn.parse("0/3000148")


def test_facts_for_doctor(client: TestClient) -> None:
    body = client.get("/facts").json()
    assert NodeFacts.model_validate(body).settings == {"wal_level": "logical"}


@pytest.mark.parametrize("path", ["/postgres/start", "/postgres/stop", "/postgres/restart"])
@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="no-token"),
        pytest.param({"Authorization": "Bearer wrong"}, id="wrong-token"),
        pytest.param({"Authorization": TOKEN}, id="no-scheme"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="other-scheme"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="longer-token"),
    ],
)
def test_acting_needs_the_token(
    client: TestClient, agent: FakeAgent, path: str, headers: dict[str, str]
) -> None:
    response = client.post(path, headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert "missing or wrong API token" in response.text
    assert agent.calls == []  # nothing was done


def test_a_401_has_the_same_error_shape_as_other_errors(client: TestClient) -> None:
    body = client.post("/postgres/stop").json()
    assert body == {
        "error": "missing or wrong API token",
        "hint": "send a viewer, operator or node credential as Authorization: Bearer TOKEN",
    }


def test_stop_with_the_token(client: TestClient, agent: FakeAgent) -> None:
    response = client.post("/postgres/stop", headers=AUTH)
    assert response.status_code == 200
    assert response.json()["state"] == "stopped"
    assert agent.calls == ["stop fast"]


@pytest.mark.parametrize("mode", ["smart", "fast", "immediate"])
def test_stop_modes(client: TestClient, agent: FakeAgent, mode: str) -> None:
    assert client.post("/postgres/stop", params={"mode": mode}, headers=AUTH).status_code == 200
    assert agent.calls == [f"stop {mode}"]


def test_an_unknown_stop_mode_is_refused(client: TestClient, agent: FakeAgent) -> None:
    response = client.post("/postgres/stop", params={"mode": "abrupt"}, headers=AUTH)
    assert response.status_code == 422
    assert agent.calls == []


def test_start_and_restart_with_the_token(client: TestClient, agent: FakeAgent) -> None:
    agent.state = PgState.STOPPED
    assert client.post("/postgres/start", headers=AUTH).json()["state"] == "running"
    assert client.post("/postgres/restart", headers=AUTH).json()["state"] == "running"
    assert agent.calls == ["start", "restart"]


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Refused("/d holds no PostgreSQL cluster", "clone it first"), 409),
        (DataDirNotEmpty("/d is not empty", "pass --force"), 409),  # a subclass of Refused
        (TimedOut("postgres did not start within 60 s", "see postgresql.log"), 500),
        (PgherdError("something failed", "look at the agent log"), 500),
    ],
)
def test_pgherd_errors_come_back_as_error_and_hint(
    client: TestClient, agent: FakeAgent, error: PgherdError, status: int
) -> None:
    agent.fail_with = error
    response = client.post("/postgres/start", headers=AUTH)
    assert response.status_code == status
    body: dict[str, Any] = response.json()
    assert body == {"error": error.message, "hint": error.hint}


class FakeArchive:
    """The archive port: backups asked of this node, and its pusher's figures."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str | None]] = []
        self.checksum: list[bool] = []

    def take_backup(self, kind: str, repository: str | None, checksum: bool = False) -> BackupMade:
        self.asked.append((kind, repository))
        self.checksum.append(checksum)
        if repository == "missing":
            raise Refused("no repository named 'missing'", "repositories: main")
        when = datetime(2026, 12, 6, 1, tzinfo=UTC)
        return BackupMade(
            label="20261206T010000ZI",
            node="node1",
            timeline=1,
            start_lsn="0/3000028",
            stop_lsn="0/3000100",
            stop_timeline=1,
            start_time=when,
            stop_time=when,
            size_bytes=100,
            next_xid=740,
            system_identifier="7",
            pg_major=15,
            kind=kind,
            parent="20261205T010000ZF",
            format="bundles",
            stored_bytes=10,
            from_standby=False,
        )

    def pusher_status(self) -> PusherState:
        return PusherState(running=True, waiting=3)


def test_backups_are_taken_on_request_with_the_token_and_the_pusher_is_open(
    agent: FakeAgent,
) -> None:
    from pgherd.api import routes_archive

    archive = FakeArchive()
    app = create_app(agent)
    app.include_router(routes_archive.router(lambda: None, archive))  # type: ignore[arg-type, return-value]
    bare = create_app(agent)
    bare.include_router(routes_archive.router(lambda: None))  # type: ignore[arg-type, return-value]
    with TestClient(bare) as http:
        assert http.get("/archive/pusher").json()["running"] is False
        assert http.post("/backup", json={}, headers=AUTH).status_code == 409
    with TestClient(app) as http:
        assert http.post("/backup", json={"type": "incremental"}).status_code == 401
        done = http.post("/backup", json={"type": "incremental"}, headers=AUTH)
        assert done.status_code == 200
        assert done.json()["kind"] == "incremental"
        assert archive.asked == [("incremental", None)]
        checked = http.post("/backup", json={"type": "incremental", "checksum": True}, headers=AUTH)
        assert checked.status_code == 200
        assert archive.checksum == [False, True]
        assert http.post("/backup", json={"type": "weekly"}, headers=AUTH).status_code == 422
        refused = http.post("/backup", json={"repository": "missing"}, headers=AUTH)
        assert refused.status_code == 409
        assert refused.json()["error"] == "no repository named 'missing'"
        assert http.get("/archive/pusher").json()["waiting"] == 3
