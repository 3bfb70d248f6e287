"""The console's doors: without a session nothing is served, every POST needs the
session's CSRF token, a viewer cannot act, cookies are HttpOnly and SameSite=Strict
(Secure under HTTPS), and the wheel carries the templates and static files.

No agent runs here: the config's nodes point at closed ports, so pages show them
unreachable; these tests are about HTTP and sessions only.
"""

from __future__ import annotations

import importlib.resources
import re
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.console import passwords
from pgherd.console.app import create_app
from pgherd.console.server import parse_listen, set_password
from pgherd.errors import InvalidInput

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient

TOKEN = "console-test-token"
OPERATOR_PW = "operator-password"
VIEWER_PW = "viewer-password"
PAGES = ["/", "/node/node1", "/logical", "/mesh", "/archive", "/events", "/actions"]
FRAGMENTS = ["/fragments/overview", "/fragments/banner", "/fragments/node/node1"]
APIS = ["/api/state", "/api/history?subject=node2"]
POSTS = [
    "/actions/preview",
    "/actions/run",
    "/logical/publications",
    "/logical/subscriptions",
    "/archive/restore-points",
]


@pytest.fixture(scope="module")
def config() -> ClusterConfig:
    return config_mod.parse(
        {
            "cluster": "unit",
            "tls": False,  # no agent runs: nothing to verify
            "passfile": "/nonexistent/pgpass",
            "api_token_file": "/nonexistent/token",
            "console": {
                "users": [
                    {
                        "name": "olga",
                        "role": "operator",
                        "password_hash": passwords.hash_password(OPERATOR_PW),
                    },
                    {
                        "name": "vic",
                        "role": "viewer",
                        "password_hash": passwords.hash_password(VIEWER_PW),
                    },
                ]
            },
            "nodes": [
                {
                    "name": f"node{i}",
                    "port": 1 + i,
                    "api_port": 9 + i,
                    "data_dir": f"/nonexistent/node{i}/data",
                }
                for i in (1, 2)
            ],
        }
    )


@pytest.fixture
def client(config: ClusterConfig) -> Iterator[TestClient]:
    with TestClient(create_app(config, TOKEN), follow_redirects=False) as found:
        yield found


def log_in(client: TestClient, user: str, password: str) -> str:
    """Log in; the session's CSRF token (from the page's hx-headers)."""
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    done = client.post(
        "/login",
        data={"csrf": csrf.group(1), "user": user, "password": password, "next": "/events"},
    )
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/events"
    found = re.search(r'"X-CSRF-Token": "([^"]+)"', client.get("/actions").text)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("path", PAGES + FRAGMENTS)
def test_pages_without_a_session_go_to_the_login(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")
    htmx = client.get(path, headers={"HX-Request": "true"})
    assert htmx.status_code == 401
    assert htmx.headers["HX-Redirect"].startswith("/login")


@pytest.mark.parametrize("path", APIS)
def test_api_without_a_session_is_refused(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 401
    assert response.json() == {"error": "log in first"}


@pytest.mark.parametrize("path", POSTS)
def test_posts_without_a_session_are_refused(client: TestClient, path: str) -> None:
    assert client.post(path, data={"kind": "promote", "node": "node2"}).status_code == 401


def test_wrong_password_and_unknown_user_are_refused(client: TestClient) -> None:
    page = client.get("/login")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    for user, password in [("olga", "wrong-password"), ("nobody", OPERATOR_PW), ("token", "x")]:
        done = client.post(
            "/login", data={"csrf": csrf.group(1), "user": user, "password": password}
        )
        assert done.status_code == 401
        assert "wrong user name or password" in done.text
    assert client.get("/").status_code == 303


def test_login_without_its_csrf_token_is_refused(client: TestClient) -> None:
    client.get("/login")
    done = client.post("/login", data={"user": "olga", "password": OPERATOR_PW})
    assert done.status_code == 403
    assert client.get("/").status_code == 303


def test_session_cookie_is_httponly_and_strict(config: ClusterConfig) -> None:
    with TestClient(create_app(config, TOKEN), follow_redirects=False) as plain:
        log_in(plain, "olga", OPERATOR_PW)
        cookie = next(c for c in plain.cookies.jar if c.name == "pgherd_console")
        assert cookie.has_nonstandard_attr("HttpOnly")
        assert not cookie.secure
    with TestClient(
        create_app(config, TOKEN, https=True), base_url="https://testserver", follow_redirects=False
    ) as tls:
        page = tls.get("/login")
        header = page.headers["set-cookie"]
        assert "HttpOnly" in header and "SameSite=strict" in header and "Secure" in header
        assert page.headers["Strict-Transport-Security"]


def test_logged_in_pages_render_with_security_headers(client: TestClient) -> None:
    log_in(client, "vic", VIEWER_PW)
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 200, path
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
    assert "unreachable" in client.get("/fragments/overview").text
    assert client.get("/api/state").json()["health"] == "degraded"


def test_an_unknown_node_is_a_404_with_the_clis_message(client: TestClient) -> None:
    log_in(client, "vic", VIEWER_PW)
    response = client.get("/node/nope")
    assert response.status_code == 404
    assert "unknown node 'nope'" in response.json()["error"]


def test_a_post_without_the_csrf_token_is_refused(client: TestClient) -> None:
    csrf = log_in(client, "olga", OPERATOR_PW)
    for path in POSTS:
        response = client.post(path, data={"kind": "promote", "node": "node2"})
        assert response.status_code == 403, path
        assert "CSRF" in response.json()["error"]
        wrong = client.post(path, data={"csrf": csrf[::-1], "kind": "promote", "node": "node2"})
        assert wrong.status_code == 403, path
    # with the token the request gets through to the action (which refuses: no agents)
    good = client.post(
        "/actions/preview",
        data={"kind": "promote", "node": "node2"},
        headers={"X-CSRF-Token": csrf},
    )
    assert good.status_code == 200
    assert "refused" in good.text


def test_a_viewer_cannot_act(client: TestClient) -> None:
    csrf = log_in(client, "vic", VIEWER_PW)
    for path in POSTS:
        response = client.post(path, data={"csrf": csrf, "kind": "promote", "node": "node2"})
        assert response.status_code == 403, path
        assert "viewer" in response.json()["error"]
    assert "viewer" in client.get("/actions").text


def test_token_login_is_an_operator_and_logout_ends_the_session(client: TestClient) -> None:
    csrf = log_in(client, "token", TOKEN)
    assert "token · operator" in client.get("/").text
    assert client.post("/logout", data={"csrf": csrf}).status_code == 303
    assert client.get("/").status_code == 303


def test_next_after_login_stays_on_this_site(client: TestClient) -> None:
    page = client.get("/login?next=//evil.example/x")
    assert 'name="next" value="/"' in page.text


def test_passwords_hash_and_verify() -> None:
    stored = passwords.hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert passwords.verify("correct horse", stored)
    assert not passwords.verify("wrong horse", stored)
    assert not passwords.verify("correct horse", "plain-text")
    with pytest.raises(InvalidInput, match="shorter"):
        passwords.hash_password("short")


def test_passwd_writes_only_a_hash_into_the_config(tmp_path: Path, config: ClusterConfig) -> None:
    path = tmp_path / "pgherd.yaml"
    path.write_text(config_mod.dump(config))
    path.chmod(0o640)
    assert set_password(path, "newbie", "viewer", "a-long-password")
    assert not set_password(path, "newbie", "operator", "another-password")
    text = path.read_text()
    assert "a-long-password" not in text and "another-password" not in text
    loaded = config_mod.load(path)
    (entry,) = [u for u in loaded.console.users if u.name == "newbie"]
    assert entry.role == "operator"
    assert passwords.verify("another-password", entry.password_hash)
    assert path.stat().st_mode & 0o777 == 0o640


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8080", "host:", "127.0.0.1:99999"):
        with pytest.raises(InvalidInput):
            parse_listen(bad)


def test_the_installed_package_has_templates_and_vendored_files() -> None:
    root = importlib.resources.files("pgherd.console")
    for name in (
        "templates/base.html",
        "templates/_overview.html",
        "static/console.js",
        "static/vendor/htmx.min.js",
        "static/vendor/uPlot.iife.min.js",
        "static/vendor/htmx.LICENSE",
        "static/vendor/uPlot.LICENSE",
    ):
        assert root.joinpath(name).is_file(), name
