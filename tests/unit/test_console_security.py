"""The console's logins under attack and across restarts: throttling per user and
address, sessions kept in a file (a restart keeps them, a logout ends them there too)."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import pytest

from pgherd.config import ClusterConfig
from pgherd.console.app import create_app
from pgherd.console.sessions import Sessions
from pgherd.console.throttle import Failures
from pgherd.model import throttle
from tests.unit.test_console_app import OPERATOR_PW, TOKEN, log_in

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient

pytest_plugins = ["tests.unit.test_console_app"]


@pytest.mark.parametrize(
    ("failures", "now", "wait"),
    [
        ([], 100.0, 0.0),
        ([1.0, 2.0, 3.0, 4.0], 5.0, 0.0),  # four: free
        ([1.0, 2.0, 3.0, 4.0, 5.0], 5.0, 1.0),  # the fifth: one second
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 6.0, 2.0),  # then it doubles
        ([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 7.5, 0.5),  # counted from the last failure
        ([float(i) for i in range(40)], 39.0, 900.0),  # never more than 15 minutes
        ([1.0, 2.0, 3.0, 4.0, 5.0], 5.0 + 901, 0.0),  # failures older than 15 min drop
    ],
)
def test_the_wait_after_failed_logins(failures: list[float], now: float, wait: float) -> None:
    assert throttle.wait(failures, now) == pytest.approx(wait)


def test_failures_count_per_user_and_per_address() -> None:
    clock = [1000.0]
    failures = Failures(clock=lambda: clock[0])
    for _ in range(5):
        failures.failed("olga", "10.0.0.9")
    assert failures.wait("olga", "10.0.0.1") > 0  # her name, from anywhere
    assert failures.wait("vic", "10.0.0.9") > 0  # anyone, from that address
    assert failures.wait("vic", "10.0.0.1") == 0
    failures.succeeded("olga", "10.0.0.9")
    assert failures.wait("olga", "10.0.0.9") == 0


def _form(client: TestClient) -> str:
    page = client.get("/login")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


def test_guessing_is_slowed_down_and_said(config: ClusterConfig) -> None:
    with TestClient(create_app(config, TOKEN), follow_redirects=False) as client:
        csrf = _form(client)
        statuses = []
        for _ in range(6):
            done = client.post(
                "/login", data={"csrf": csrf, "user": "olga", "password": "not-it-at-all"}
            )
            statuses.append(done.status_code)
        assert statuses[:5] == [401] * 5 and statuses[5] == 429
        assert "too many failed logins: try again in" in done.text
        assert int(done.headers["retry-after"]) >= 1
        # even the right password waits: it is not checked while the wait lasts
        right = client.post("/login", data={"csrf": csrf, "user": "olga", "password": OPERATOR_PW})
        assert right.status_code == 429


def test_sessions_survive_a_console_restart(config: ClusterConfig, tmp_path: Path) -> None:
    path = tmp_path / "console-sessions.sqlite"
    with TestClient(create_app(config, TOKEN, sessions_file=path), follow_redirects=False) as a:
        log_in(a, "olga", OPERATOR_PW)
        cookies = dict(a.cookies)
    assert path.stat().st_mode & 0o777 == 0o600
    assert cookies["pgherd_console"] not in path.read_bytes().decode(errors="replace")
    with TestClient(create_app(config, TOKEN, sessions_file=path), follow_redirects=False) as b:
        b.cookies.update(cookies)
        assert b.get("/events").status_code == 200  # the same session, after a "restart"
        found = re.search(r'"X-CSRF-Token": "([^"]+)"', b.get("/actions").text)
        assert found is not None
        assert b.post("/logout", headers={"X-CSRF-Token": found.group(1)}).status_code == 303
    with TestClient(create_app(config, TOKEN, sessions_file=path), follow_redirects=False) as c:
        c.cookies.update(cookies)
        assert c.get("/events").status_code == 303  # logged out stays logged out


def test_an_expired_session_in_the_file_is_refused(tmp_path: Path) -> None:
    sessions = Sessions(minutes=1, path=tmp_path / "s.sqlite")
    session = sessions.open("olga", "operator")
    assert sessions.get(session.id) is not None
    sessions.seconds = -1
    old = sessions.open("vic", "viewer")
    assert sessions.get(old.id) is None
    assert sessions.get("made-up") is None and sessions.get(None) is None
