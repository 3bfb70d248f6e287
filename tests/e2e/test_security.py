"""Security of a lab as a user meets it: its own traffic is TLS (replication, clients,
the agents' API, etcd), a viewer credential cannot act, credentials rotate without
downtime, and every acting call lands in the audit trail."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pgherd.config import ClusterConfig
from pgherd.tls.context import client_context
from tests.e2e.conftest import Lab, start_lab, stop_lab
from tests.support import pgherd, query, wait_until

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lab(module_dir: Path) -> Iterator[Lab]:
    """Two nodes, automatic failover through the lab's etcd (TLS, client certificates)."""
    found = start_lab(
        module_dir / "lab",
        2,
        "--failover",
        "automatic",
        "--dcs",
        "etcd",
        spread=(0, 1000, 2000, 3000),
    )
    yield found
    stop_lab(found)


def call(
    config: ClusterConfig, method: str, path: str, token: str | None, node: str = "node1"
) -> tuple[int, Any]:
    target = config.node(node)
    assert config.ca_file is not None
    conn = http.client.HTTPSConnection(
        target.api_host, target.api_port, context=client_context(config.ca_file), timeout=10
    )
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    conn.request(method, path, headers=headers)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body) if body else None


def test_the_labs_own_traffic_is_tls(lab: Lab) -> None:
    config = lab.config
    assert config.tls_on and config.ca_file is not None
    assert all(n.api_url.startswith("https://") for n in config.nodes)
    # the standby streams over TLS, verified against the cluster CA
    rows = wait_until(
        lambda: query(
            config,
            "node1",
            "SELECT s.ssl, r.application_name FROM pg_stat_replication r "
            "JOIN pg_stat_ssl s USING (pid)",
        ),
        what="node2 streaming",
    )
    assert rows == [(True, "node2")]
    conninfo = query(config, "node2", "SHOW primary_conninfo")[0][0]
    assert "sslmode=verify-full" in conninfo and str(config.ca_file) in conninfo
    # the URIs pgherd prints verify the server too
    uri = pgherd("connstr", "node1", config=lab.config_path).stdout.strip()
    assert "sslmode=verify-full" in uri
    # the store is etcd over TLS
    shown = json.loads(pgherd("cluster", "show", "--json", config=lab.config_path).stdout)
    assert shown["tls"] is True
    assert shown["ha"]["store"].startswith("etcd https://")


def test_plain_http_gets_no_answer_from_an_agent(lab: Lab) -> None:
    node = lab.config.node("node1")
    conn = http.client.HTTPConnection(node.api_host, node.api_port, timeout=5)

    def plain_get() -> int:
        conn.request("GET", "/health")
        return conn.getresponse().status

    with pytest.raises((ConnectionError, http.client.HTTPException, OSError)):
        plain_get()  # the TLS handshake fails: the agent closes the connection


def test_a_viewer_reads_but_cannot_act(lab: Lab) -> None:
    config = lab.config
    viewer = config.viewer_token_file.read_text().strip()
    status, body = call(config, "GET", "/mesh", viewer)
    assert status == 200
    status, body = call(config, "POST", "/ops/checkpoint", viewer)
    assert status == 403 and "viewer" in body["error"]
    operator = config.api_token_file.read_text().strip()
    assert call(config, "POST", "/ops/checkpoint", operator)[0] == 200


def test_rotation_keeps_old_tokens_for_the_grace_then_refuses_them(lab: Lab) -> None:
    config = lab.config
    old = config.api_token_file.read_text().strip()
    pgherd("secrets", "rotate", "--grace", "600", config=lab.config_path)
    new = config.api_token_file.read_text().strip()
    assert new != old
    assert call(config, "POST", "/ops/checkpoint", old)[0] == 200  # in its grace
    assert call(config, "POST", "/ops/checkpoint", new)[0] == 200
    pgherd("secrets", "rotate", "--grace", "0", config=lab.config_path)
    assert call(config, "POST", "/ops/checkpoint", new)[0] == 401
    newest = config.api_token_file.read_text().strip()
    assert call(config, "POST", "/ops/checkpoint", newest)[0] == 200
    # the agents call each other with their own node tokens, read again after the
    # rotation: a switchover and back works without restarting anything
    pgherd("standby", "switchover", "--to", "node2", config=lab.config_path, timeout=120)
    pgherd("standby", "switchover", "--to", "node1", config=lab.config_path, timeout=120)


def test_acting_calls_are_in_the_audit_trail(lab: Lab) -> None:
    config = lab.config
    call(config, "POST", "/ops/checkpoint", "not-a-token")

    def audited() -> list[dict[str, Any]]:
        done = pgherd(
            "cluster", "events", "--audit", "--json", "--limit", "500", config=lab.config_path
        )
        rows: list[dict[str, Any]] = json.loads(done.stdout)
        return rows

    rows = wait_until(
        lambda: [r for r in audited() if r["requested_by"].startswith("no valid credential")],
        what="the refused call in the audit trail",
    )
    assert rows[-1]["operation"] == "api POST /ops/checkpoint"
    assert rows[-1]["outcome"] == "refused" and rows[-1]["reason"] == "HTTP 401"
    assert any(r["requested_by"].startswith("viewer (viewer)") for r in audited())
    plain = json.loads(
        pgherd("cluster", "events", "--json", "--limit", "500", config=lab.config_path).stdout
    )
    assert not [r for r in plain if r["operation"].startswith("api ")]


def test_a_client_with_the_wrong_ca_is_refused_by_the_lab(lab: Lab, tmp_path: Path) -> None:
    from pgherd.tls import certs

    config = lab.config
    other = tmp_path / "other-ca.crt"
    other.write_bytes(certs.new_ca("other").cert_pem)
    node = config.node("node1")
    conn = http.client.HTTPSConnection(
        node.api_host, node.api_port, context=client_context(other), timeout=5
    )
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/health")
