"""The agent API under hostile input: every route is sent malformed, oversized, non-UTF-8,
wrong-typed and unknown-field bodies, out-of-range numbers and bad credentials.

What must hold for each: a 4xx in the ``{error, hint}`` shape, never a 500; the credential
checked before the body is read (401 first); nothing the caller sent echoed back; and
nothing done (the fakes record every call).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from pgherd.api.guard import MAX_BODY
from pgherd.model.access import READ_METHODS
from tests.unit.agent_app import EXPIRED, PEER, VIEWER, full_app
from tests.unit.fake_agent import TOKEN

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`", UserWarning)
    from fastapi.testclient import TestClient

AUTH = {"Authorization": f"Bearer {TOKEN}"}
MARK = "ECHO-MARKER-7f3a"

SPEC: dict[str, Any] = {"name": "shop", "nodes": ["a", "b"], "tables": ["public.t"]}
# A valid body for every route that takes one: the unknown-field test adds a field to it.
# A new route with a body must be listed here (test_every_body_route_is_covered).
VALID_BODIES: dict[str, dict[str, Any]] = {
    "/restore-point": {"name": "before_upgrade"},
    "/backup": {"type": "full"},
    "/history/cleanup": {"keep_days": 7},
    "/ops/follow": {"upstream": "node1"},
    "/ops/rewind": {"source": "node1", "timeout": 60},
    "/ops/wait-replay": {"past": "0/3000000", "timeout": 5},
    "/ops/clone": {
        "upstream": {"name": "node1", "state": "running", "desired": "running", "role": "primary"}
    },
    "/events": {"operation": "switchover", "node": "node2"},
    "/mesh/inspect": {"dbname": "postgres", "tables": ["public.t"]},
    "/mesh/checksum": {"dbname": "postgres", "table": "public.t"},
    "/mesh/ranges": {"dbname": "postgres", "table": "public.t"},
    "/mesh/keys": {"dbname": "postgres", "table": "public.t"},
    "/mesh/{name}/prepare": {"spec": SPEC},
    "/mesh/{name}/copy": {"spec": SPEC, "sources": ["a"]},
    "/mesh/{name}/progress": {"spec": SPEC, "source": "a", "lsn": "0/10"},
    "/mesh/{name}/abandon": {"spec": SPEC, "nodes": ["b"]},
    "/mesh/{name}/sequences": {"spec": SPEC, "settings": []},
    "/mesh/{name}": SPEC,
    "/mesh/{name}/checksums": {"table": "public.t"},
    "/logical/writes/stop": {"timeout": 5},
    "/logical/publications": {"name": "p", "tables": [{"name": "t"}]},
    "/logical/publications/alter": {"name": "p"},
    "/logical/subscriptions": {
        "name": "s",
        "conninfo": "host=127.0.0.1 port=5432 user=replicator",
        "publications": ["p"],
    },
    "/logical/subscriptions/enable": {"name": "s"},
    "/logical/subscriptions/disable": {"name": "s"},
    "/logical/subscriptions/refresh": {"name": "s"},
    "/logical/subscriptions/drop": {"name": "s"},
    "/logical/subscriptions/sync-sequences": {"name": "s"},
    "/logical/ddl/dry-run": {"statement": "select 1"},
    "/logical/ddl": {"statement": "select 1"},
}

# Numbers that once held a worker thread and a database connection forever (NaN) or
# overflowed a date computation (1e308), per route and field.
NUMBERS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/ops/wait-replay", {"past": "0/3000000"}),
    ("POST", "/ops/rewind", {"source": "node1"}),
    ("POST", "/logical/writes/stop", {}),
    ("POST", "/history/cleanup", {}),
]
NUMBER_FIELDS = {
    "/ops/wait-replay": "timeout",
    "/ops/rewind": "timeout",
    "/logical/writes/stop": "timeout",
    "/history/cleanup": "keep_days",
}


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> FastAPI:
    return full_app(tmp_path_factory.mktemp("api"))


@pytest.fixture(scope="module")
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=True) as test_client:
        yield test_client


def routes(app: FastAPI) -> list[tuple[str, str, bool]]:
    """(method, path with parameters filled, takes a body) of every route of the agent,
    from its OpenAPI document (what a client, or schemathesis, sees)."""
    found = []
    for template, operations in app.openapi()["paths"].items():
        path = template.replace("{name}", "shop")
        for method, operation in operations.items():
            found.append((method.upper(), path, "requestBody" in operation))
    return sorted(found)


def body_templates(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route that takes a JSON body."""
    return [
        (method.upper(), template)
        for template, operations in app.openapi()["paths"].items()
        for method, operation in operations.items()
        if "requestBody" in operation
    ]


def acting_routes(app: FastAPI) -> list[tuple[str, str, bool]]:
    return [r for r in routes(app) if r[0] not in READ_METHODS]


def _shape(response: Any) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error", "hint"}, body
    assert isinstance(body["error"], str) and body["error"]
    return dict(body)


def _query(path: str) -> str:
    """Required query parameters, filled (slots need a name)."""
    return path + ("?name=node1" if path == "/ops/slots" else "")


def test_every_body_route_is_covered(app: FastAPI) -> None:
    assert {template for _, template in body_templates(app)} == set(VALID_BODIES)


HOSTILE_BODIES = [
    pytest.param(b'{"name": "' + MARK.encode() + b'", ', id="malformed-json"),
    pytest.param(b"\xff\xfe\x00" + MARK.encode() + b"\x80", id="not-utf8"),
    pytest.param(json.dumps([MARK]).encode(), id="a-list"),
    pytest.param(json.dumps(MARK).encode(), id="a-string"),
    pytest.param(b"NaN", id="nan"),
    pytest.param(
        json.dumps({"timeout": MARK, "name": 1, "keep_days": [MARK]}).encode(), id="types"
    ),
]


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_no_credential_is_401_before_the_body_is_read(
    app: FastAPI, client: TestClient, body: bytes
) -> None:
    for method, path, _ in acting_routes(app):
        response = client.request(
            method, _query(path), content=body, headers={"content-type": "application/json"}
        )
        assert response.status_code == 401, (method, path, response.text)
        assert MARK not in response.text
        _shape(response)


@pytest.mark.parametrize("body", HOSTILE_BODIES)
def test_hostile_bodies_with_the_token_are_4xx_without_echo(
    app: FastAPI, client: TestClient, body: bytes
) -> None:
    for method, path, takes_body in acting_routes(app):
        if not takes_body:
            continue
        response = client.request(
            method, path, content=body, headers=AUTH | {"content-type": "application/json"}
        )
        assert response.status_code in (400, 422), (method, path, response.text)
        assert MARK not in response.text
        _shape(response)


def test_an_oversized_body_is_413_or_401_and_never_read(app: FastAPI, client: TestClient) -> None:
    big = b'{"name": "' + MARK.encode() * (MAX_BODY // len(MARK) + 1) + b'"}'
    for method, path, _ in acting_routes(app):
        response = client.request(method, _query(path), content=big)
        assert response.status_code == 401, (method, path)
        response = client.request(method, _query(path), content=big, headers=AUTH)
        assert response.status_code == 413, (method, path)
        assert MARK not in response.text
        assert "1048576 bytes" in _shape(response)["error"]


def test_an_oversized_body_without_a_length_is_cut_off(client: TestClient) -> None:
    sent = []

    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            sent.append(1)
            yield b" " * (64 * 1024)

    response = client.post("/restore-point", content=chunks(), headers=AUTH)
    assert response.status_code == 413
    _shape(response)


def test_unknown_fields_are_refused_everywhere(app: FastAPI, client: TestClient) -> None:
    for method, template in body_templates(app):
        body = VALID_BODIES[template] | {"zz_" + MARK: 1}
        path = template.replace("{name}", "shop")
        response = client.request(method, path, json=body, headers=AUTH)
        assert response.status_code == 422, (method, path, response.text)
        assert "not permitted" in _shape(response)["error"]
        assert MARK not in response.text


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e308", "-1", "0"])
def test_numbers_are_bounded(client: TestClient, value: str) -> None:
    for method, path, base in NUMBERS:
        field = NUMBER_FIELDS[path]
        if value == "0" and field == "keep_days":
            continue  # keep nothing older than now: a valid cleanup
        raw = json.dumps(base)[:-1] + ("," if base else "") + f' "{field}": {value}}}'
        response = client.request(
            method, path, content=raw.encode(), headers=AUTH | {"content-type": "application/json"}
        )
        assert response.status_code == 422, (path, value, response.text)
        _shape(response)


@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "0"])
def test_query_numbers_are_bounded(client: TestClient, value: str) -> None:
    response = client.post("/ops/promote", params={"timeout": value}, headers=AUTH)
    assert response.status_code == 422
    _shape(response)


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"Bearer", id="bearer-alone"),
        pytest.param(b"Bearer ", id="bearer-blank"),
        pytest.param(b"Bearer    ", id="bearer-spaces"),
        pytest.param("Bearer tökén".encode(), id="non-ascii-utf8"),
        pytest.param(b"Bearer \xff\xfe", id="non-ascii-bytes"),
        pytest.param(b"Bearer " + TOKEN.encode() + b"\x00", id="nul"),
        pytest.param(b"Bearer " + b"a" * 100_000, id="huge"),
        pytest.param(b"Bearer " + EXPIRED.encode(), id="rotated-out"),
        pytest.param(b"Basic " + TOKEN.encode(), id="basic"),
        pytest.param(TOKEN.encode(), id="no-scheme"),
    ],
)
def test_bad_credentials_are_401_on_every_route(
    app: FastAPI, client: TestClient, header: bytes
) -> None:
    for method, path, _ in routes(app):
        response = client.request(method, _query(path), headers={"authorization": header})
        assert response.status_code == 401, (method, path, header[:20])
        assert response.headers["www-authenticate"] == "Bearer"
        _shape(response)


def test_a_viewer_reads_but_cannot_act(app: FastAPI, client: TestClient) -> None:
    viewer = {"Authorization": f"Bearer {VIEWER}"}
    assert client.get("/mesh", headers=viewer).status_code == 200
    assert client.get("/status", headers=viewer).status_code == 200
    for method, path, _ in acting_routes(app):
        response = client.request(method, _query(path), headers=viewer)
        assert response.status_code == 403, (method, path)
        assert "viewer" in _shape(response)["error"]


def test_a_peer_credential_acts(client: TestClient) -> None:
    response = client.post("/ops/checkpoint", headers={"Authorization": f"Bearer {PEER}"})
    assert response.status_code == 200


def test_mesh_reads_need_a_credential(client: TestClient) -> None:
    assert client.get("/mesh").status_code == 401
    assert client.get("/mesh/shop/conflicts").status_code == 401


def test_an_unknown_node_is_422_not_500(client: TestClient) -> None:
    for path, body in [("/ops/follow", {"upstream": "node9"}), ("/ops/rewind", {"source": "x"})]:
        response = client.post(path, json=body, headers=AUTH)
        assert response.status_code == 422
        assert "unknown node" in _shape(response)["error"]


def test_a_node_name_that_is_not_one_is_422(client: TestClient) -> None:
    response = client.post("/ops/follow", json={"upstream": "../" + MARK}, headers=AUTH)
    assert response.status_code == 422
    assert MARK not in response.text


def test_auth_reads_closes_the_reads_but_not_the_checks(tmp_path: Path) -> None:
    with TestClient(full_app(tmp_path, auth_reads=True)) as closed:
        assert closed.get("/status").status_code == 401
        assert closed.get("/openapi.json").status_code == 401
        assert closed.get("/status", headers={"Authorization": f"Bearer {VIEWER}"}).is_success
        for check in ("/health", "/primary", "/replica", "/read-only"):
            assert closed.get(check).status_code in (200, 503)


def test_a_content_length_that_is_not_a_number_is_400(client: TestClient) -> None:
    response = client.post(
        "/restore-point", content=b"{}", headers=AUTH | {"content-length": "12x"}
    )
    assert response.status_code == 400
