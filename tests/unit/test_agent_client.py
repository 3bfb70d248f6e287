"""The CLI's side of the agent API: error mapping, a dead agent, and a real round trip
through the API served by uvicorn on 127.0.0.1 with a fake agent behind it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn

from pgherd.api.app import create_app
from pgherd.clients.agent import (
    AgentClient,
    _error_from,
    fan_out,
    fanned_out,
    lite_statuses,
    statuses,
)
from pgherd.config import NodeConfig
from pgherd.errors import AgentError, AgentUnreachable, Refused
from pgherd.model.lsn import Lsn
from pgherd.model.status import PgState
from tests.support import wait_until
from tests.unit.fake_agent import TOKEN, FakeAgent


@pytest.mark.parametrize(
    ("status", "body", "kind", "message", "hint"),
    [
        (
            409,
            {"error": "/d is not empty", "hint": "pass --force"},
            Refused,
            "node2: /d is not empty",
            "pass --force",
        ),
        (
            500,
            {"error": "postgres did not start", "hint": "see postgresql.log"},
            AgentError,
            "node2: postgres did not start",
            "see postgresql.log",
        ),
        (
            401,
            {"detail": {"error": "missing or wrong API token", "hint": "send the cluster's token"}},
            AgentError,
            "node2: missing or wrong API token",
            "send the cluster's token",
        ),
        (
            500,
            {"error": "boom"},
            AgentError,
            "node2: boom",
            "HTTP 500 from the agent of node2",
        ),
        (502, None, AgentError, "node2: HTTP 502", "HTTP 502 from the agent of node2"),
        (
            404,
            {"detail": "Not Found"},
            AgentError,
            "node2: Not Found",
            "HTTP 404 from the agent of node2",
        ),
    ],
)
def test_error_from_maps_status_and_body(
    status: int, body: Any, kind: type[Exception], message: str, hint: str
) -> None:
    error = _error_from("node2", status, body)
    assert type(error) is kind
    assert isinstance(error, Refused | AgentError)
    assert (error.message, error.hint) == (message, hint)


def test_error_from_a_validation_error_is_one_agent_error() -> None:
    body = {"detail": [{"loc": ["query", "mode"], "msg": "Input should be 'smart', 'fast'"}]}
    error = _error_from("node2", 422, body)
    assert isinstance(error, AgentError)
    assert "Input should be" in error.message
    assert "\n" not in error.one_line()


def _unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _node(api_port: int, name: str = "node2") -> NodeConfig:
    return NodeConfig(
        name=name, api_host="127.0.0.1", api_port=api_port, data_dir=Path(f"/var/tmp/{name}/data")
    )


def test_a_dead_agent_is_unreachable_with_the_command_to_start_it() -> None:
    node = _node(_unused_port())
    with pytest.raises(AgentUnreachable) as caught:
        AgentClient(node, timeout=2).status()
    assert caught.value.message.startswith(f"the agent of node2 at {node.api_url} did not answer")
    assert "pgherd agent run --node node2" in caught.value.hint
    assert "\n" not in caught.value.one_line()


def test_statuses_mark_a_dead_agent_unreachable() -> None:
    (status,) = statuses([_node(_unused_port())], timeout=2)
    assert status.name == "node2"
    assert status.state is PgState.UNREACHABLE
    assert status.error is not None
    assert "did not answer" in status.error


# ---- a real round trip ---------------------------------------------------------------------


class Served:
    def __init__(self, agent: FakeAgent, node: NodeConfig) -> None:
        self.agent = agent
        self.node = node


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    agent = FakeAgent()
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    node = _node(int(sock.getsockname()[1]), "node1")
    server = uvicorn.Server(
        uvicorn.Config(create_app(agent), log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=10, what="the API server to start")
        yield Served(agent, node)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@pytest.fixture
def fresh(served: Served) -> Served:
    served.agent.state = PgState.RUNNING
    served.agent.calls.clear()
    served.agent.fail_with = None
    return served


def test_client_reads_status_and_health(fresh: Served) -> None:
    client = AgentClient(fresh.node)
    status = client.status()
    assert status.name == "node1"
    assert status.current_lsn == Lsn.parse("0/3000148")
    assert status.replication[0].replay_lsn == Lsn.parse("0/3000100")
    assert client.healthy() == (True, "running")
    fresh.agent.state = PgState.STOPPED
    assert client.healthy() == (False, "stopped")


def test_the_lite_status_reads_as_the_status(fresh: Served) -> None:
    client = AgentClient(fresh.node)
    lite, validated = client.lite_status(), client.status()
    assert (lite.name, lite.state, lite.current_lsn) == (
        "node1",
        PgState.RUNNING,
        validated.current_lsn,
    )
    assert lite.replication[0].replay_lsn == validated.replication[0].replay_lsn
    (from_fan_out,) = lite_statuses([fresh.node])
    assert from_fan_out == lite


def test_fan_out_runs_every_call_at_once_and_keeps_the_order() -> None:
    started = time.monotonic()

    def slow(n: int) -> int:
        time.sleep(0.3)
        return n * 10

    assert fan_out([3, 1, 2], slow) == [30, 10, 20]
    assert time.monotonic() - started < 0.8  # together, not one after another


def test_fan_out_raises_the_first_nodes_error_once_every_call_ended() -> None:
    ended: list[int] = []

    def call(n: int) -> int:
        time.sleep(0.05 * n)
        ended.append(n)
        if n in (2, 3):
            raise ValueError(f"node {n}")
        return n

    with pytest.raises(ValueError, match="node 3"):
        fan_out([4, 3, 2, 1], call)
    assert sorted(ended) == [1, 2, 3, 4]


def test_fanned_out_runs_while_the_caller_works() -> None:
    def slow(n: int) -> int:
        time.sleep(0.3)
        return n

    started = time.monotonic()
    wait = fanned_out([1, 2], slow)
    time.sleep(0.3)  # the caller's own work (cluster show reads the store), meanwhile
    assert wait() == [1, 2]
    assert time.monotonic() - started < 0.55

    def boom(n: int) -> int:
        raise ValueError(f"node {n}")

    wait = fanned_out([1, 2], boom)
    with pytest.raises(ValueError, match="node 1"):
        wait()


def test_client_facts(fresh: Served) -> None:
    assert AgentClient(fresh.node).facts().data_dir == "/var/tmp/lab/node1/data"


def test_client_acts_with_the_token(fresh: Served) -> None:
    client = AgentClient(fresh.node, TOKEN)
    assert client.stop_postgres("immediate").state is PgState.STOPPED
    assert client.start_postgres().state is PgState.RUNNING
    assert client.restart_postgres().state is PgState.RUNNING
    assert fresh.agent.calls == ["stop immediate", "start", "restart"]


@pytest.mark.parametrize("token", [None, "wrong"])
def test_client_without_the_right_token_gets_a_clear_error(
    fresh: Served, token: str | None
) -> None:
    with pytest.raises(AgentError) as caught:
        AgentClient(fresh.node, token).stop_postgres()
    assert caught.value.one_line() == (
        "node1: missing or wrong API token — "
        "send a viewer, operator or node credential as Authorization: Bearer TOKEN"
    )
    assert fresh.agent.calls == []


def test_a_refusal_reaches_the_client_as_refused(fresh: Served) -> None:
    fresh.agent.fail_with = Refused("/d holds no PostgreSQL cluster", "clone it first")
    with pytest.raises(Refused) as caught:
        AgentClient(fresh.node, TOKEN).start_postgres()
    assert caught.value.one_line() == "node1: /d holds no PostgreSQL cluster — clone it first"
