"""A node's credential bound to its certificate (``tls.client_certs``), against a real
HTTPS server as ``pgherd agent run`` serves it: node2's token counts only over a
connection that presented node2's certificate; with node1's certificate, or none, it is
refused (a token stolen from node2's host acts as nobody elsewhere). Operators need no
certificate."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import uvicorn

from pgherd.api.app import create_app
from pgherd.api.serving import uvicorn_tls
from pgherd.config import ClusterConfig
from pgherd.config import parse as parse_config
from pgherd.model.access import Grant, Grants, Role, digest
from pgherd.pg import osuser
from pgherd.tls.context import client_context
from tests.conftest import free_port_base
from tests.support import cluster_config
from tests.unit.fake_agent import FakeAgent

pytestmark = pytest.mark.integration

TOKENS = {name: secrets.token_urlsafe(32) for name in ("operator", "node1", "node2")}
GRANTS = Grants.of(
    [Grant("operator", Role.OPERATOR, digest(TOKENS["operator"]))]
    + [Grant(n, Role.PEER, digest(TOKENS[n])) for n in ("node1", "node2")]
)


@pytest.fixture(scope="module")
def served(module_dir: Path, os_user: osuser.OsUser) -> Iterator[ClusterConfig]:
    """node1's API with client certificates asked for and node credentials bound."""
    port = free_port_base(3)
    made = cluster_config(module_dir, os_user, 2, port + 1)
    raw = made.model_dump(mode="json")
    raw["tls"] = {"client_certs": True}
    raw["nodes"][0]["api_port"] = port
    config = parse_config(raw)
    app = create_app(FakeAgent(), grants=lambda: GRANTS, bind_peers=True)
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=port, log_level="warning", **uvicorn_tls(config, "node1")
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield config
    server.should_exit = True
    thread.join(10)


def _get(config: ClusterConfig, token: str, certificate_of: str | None) -> httpx.Response:
    assert config.ca_file is not None
    cert, key = config.cert_files(certificate_of) if certificate_of else (None, None)
    with httpx.Client(verify=client_context(config.ca_file, cert, key), timeout=10) as client:
        return client.get(
            f"{config.node('node1').api_url}/status",
            headers={"Authorization": f"Bearer {token}"},
        )


def test_a_node_credential_with_its_own_certificate_is_accepted(served: ClusterConfig) -> None:
    assert _get(served, TOKENS["node2"], "node2").status_code == 200


def test_a_node_credential_with_another_nodes_certificate_is_refused(
    served: ClusterConfig,
) -> None:
    refused = _get(served, TOKENS["node2"], "node1")
    assert refused.status_code == 401
    assert refused.json()["error"] == (
        "the node credential 'node2' came with the certificate of 'node1'"
    )


def test_a_node_credential_without_a_certificate_is_refused(served: ClusterConfig) -> None:
    refused = _get(served, TOKENS["node2"], None)
    assert refused.status_code == 401
    assert (
        refused.json()["error"] == "the node credential 'node2' came without a client certificate"
    )


def test_an_operator_needs_no_certificate(served: ClusterConfig) -> None:
    assert _get(served, TOKENS["operator"], None).status_code == 200
