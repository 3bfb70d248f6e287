"""The load-balancer checks (Patroni's names) against a fake HA port: every answer of
model/serving.py, through the HTTP routes HAProxy calls."""

from __future__ import annotations

import warnings
from dataclasses import replace
from typing import Any

import pytest
from fastapi import FastAPI

from pgherd.api import routes_ha
from pgherd.api.app import secure
from pgherd.api.credentials import operator_only
from pgherd.config import parse
from pgherd.model import haproxy, serving
from pgherd.model.ha import Do, Local, Peer, World, decide
from pgherd.model.ha_report import HaReport
from pgherd.model.ha_settings import Mode, Settings
from pgherd.model.lsn import Lsn
from pgherd.model.serving import STREAM_GRACE, Serving
from pgherd.model.status import PgState, Role

with warnings.catch_warnings():
    # As in test_api.py: Starlette's TestClient falls back to httpx with a warning.
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient

TOKEN = "t0ken"
PRIMARY = Serving(PgState.RUNNING, Role.PRIMARY, may_write=True, streaming=False)
STANDBY = Serving(PgState.RUNNING, Role.STANDBY, may_write=False, streaming=True, lag_bytes=0)


class FakeHa:
    def __init__(self, now: Serving) -> None:
        self.now = now
        self.cycles = 0

    def serving(self) -> Serving:
        return self.now

    def ha_state(self) -> HaReport:
        return HaReport(mode=Mode.AUTOMATIC, state=PgState.RUNNING, leader="node1")

    def members(self) -> dict[str, Any]:
        return {"scope": "lab", "members": [{"name": "node1", "role": "leader"}]}

    def timeline_history(self) -> list[list[Any]]:
        return [[1, 50331808, "no recovery target specified"]]

    def failsafe_state(self) -> tuple[bool, dict[str, Any]]:
        return False, {"enabled": True, "active": False}

    def quorum_state(self) -> tuple[bool, dict[str, Any]]:
        return True, {"members": ["node2"], "quorum": 1}

    def cycle_now(self) -> None:
        self.cycles += 1


def client(now: Serving) -> tuple[TestClient, FakeHa]:
    fake = FakeHa(now)
    app = secure(FastAPI(), lambda: operator_only(TOKEN))
    app.include_router(routes_ha.router(fake))
    return TestClient(app), fake


PATHS = ("/primary", "/read-write", "/replica", "/read-only", "/readiness", "/liveness")


def codes(now: Serving, query: str = "") -> tuple[int, ...]:
    test, _ = client(now)
    return tuple(test.get(path + query).status_code for path in PATHS)


@pytest.mark.parametrize(
    ("case", "now", "query", "expected"),
    [
        ("the lease holder", PRIMARY, "", (200, 200, 503, 200, 200, 200)),
        ("lease lapsed", replace(PRIMARY, may_write=False), "", (503, 503, 503, 503, 503, 200)),
        ("failsafe keeps it", replace(PRIMARY, failsafe=True), "", (200, 200, 503, 200, 200, 200)),
        ("being demoted", replace(PRIMARY, demoting=True), "", (503, 503, 503, 503, 503, 200)),
        ("streaming standby", STANDBY, "", (503, 503, 200, 200, 200, 200)),
        (
            "within lag",
            replace(STANDBY, lag_bytes=1 << 20),
            "?lag=16MB",
            (503, 503, 200, 200, 200, 200),
        ),
        (
            "over lag",
            replace(STANDBY, lag_bytes=32 << 20),
            "?lag=16MB",
            (503, 503, 503, 503, 503, 200),
        ),
        (
            "lag unknown",
            replace(STANDBY, lag_bytes=None),
            "?lag=16MB",
            (503, 503, 503, 503, 503, 200),
        ),
        ("noloadbalance", replace(STANDBY, noloadbalance=True), "", (503, 503, 503, 200, 200, 200)),
        (
            "re-pointed a moment ago",
            replace(STANDBY, streaming=False, not_streaming_for=1.0),
            "",
            (503, 503, 200, 200, 200, 200),
        ),
        (
            "not streaming for long",
            replace(STANDBY, streaming=False, not_streaming_for=STREAM_GRACE + 1),
            "",
            (503, 503, 503, 200, 503, 200),
        ),
        ("stopped", replace(PRIMARY, pg=PgState.STOPPED), "", (503, 503, 503, 503, 503, 200)),
        ("agent stuck", replace(STANDBY, alive=False), "", (503, 503, 200, 200, 200, 503)),
    ],
)
def test_each_check_answers_as_haproxy_needs(
    case: str, now: Serving, query: str, expected: tuple[int, ...]
) -> None:
    assert codes(now, query) == expected, case


def test_the_checks_say_why() -> None:
    test, _ = client(replace(PRIMARY, may_write=False))
    body = test.get("/primary").json()
    assert body["reason"] == "it runs as a primary without the leader lease"
    test, _ = client(replace(PRIMARY, failsafe=True))
    assert "failsafe" in test.get("/primary").json()["reason"]
    test, _ = client(replace(STANDBY, lag_bytes=32 << 20))
    body = test.get("/replica?lag=16MB").json()
    assert body["lag"] == 32 << 20 and "more than lag=16777216" in body["reason"]


def test_a_bad_lag_is_a_400_that_says_how_to_write_it() -> None:
    test, _ = client(STANDBY)
    answer = test.get("/replica?lag=lots")
    assert answer.status_code == 400
    assert "16MB" in answer.json()["error"]


def test_documents_and_the_cycle_endpoint() -> None:
    test, fake = client(STANDBY)
    assert test.get("/ha").json()["leader"] == "node1"
    assert test.get("/cluster").json()["members"][0]["role"] == "leader"
    assert test.get("/history").json() == [[1, 50331808, "no recovery target specified"]]
    assert test.get("/failsafe").status_code == 503
    assert test.get("/quorum").status_code == 200
    assert test.post("/ha/cycle").status_code == 401
    answer = test.post("/ha/cycle", headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and fake.cycles == 1


def test_readiness_of_a_noloadbalance_standby_ignores_the_tag() -> None:
    tagged = replace(STANDBY, noloadbalance=True)
    assert serving.readiness(tagged).ok
    assert not serving.replica(tagged).ok


def test_a_nosync_standby_is_never_chosen_synchronous() -> None:
    me = Local(
        "node1",
        PgState.RUNNING,
        Role.PRIMARY,
        1,
        Lsn(100),
        holds_lease=True,
        streaming_standbys=("node2", "node3"),
    )
    peers = (
        Peer("node2", True, PgState.RUNNING, Role.STANDBY, 1, Lsn(100)),
        Peer("node3", True, PgState.RUNNING, Role.STANDBY, 1, Lsn(100), nosync=True),
    )
    actions = decide(Settings(synchronous=True), me, World(True, "node1", peers))
    sync = next(a for a in actions if a.do is Do.SET_SYNC)
    assert sync.members == ("node2",)


def test_the_haproxy_config_carries_the_measured_timings() -> None:
    config = parse(
        {
            "cluster": "lab",
            "passfile": "/p/pgpass",
            "api_token_file": "/p/token",
            "nodes": [{"name": "node1", "data_dir": "/d/node1/data"}],
        }
    )
    text = haproxy.render(config.cluster, config.nodes, "*", 5000, 5001)
    line = (
        "default-server inter 250ms fastinter 100ms downinter 100ms fall 2 rise 1 "
        "on-marked-down shutdown-sessions"
    )
    assert text.count(line) == 2
    assert "    retries 0\n" in text and "timeout check 1000ms" in text
    # a demoted primary stays closed to clients longer than the proxy takes to drop it
    assert haproxy.CHECKS.leave_seconds + 0.1 < haproxy.DRAIN_SECONDS
