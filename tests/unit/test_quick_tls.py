"""The quick commands speak TLS as the full CLI does: they verify an agent against the
cluster CA (a certificate of another CA is refused), and under ``api.auth_reads`` read
with the viewer's token (the operator's when the viewer's file cannot be read), all
without importing cryptography, pydantic or the rest of tests/support.py's HEAVY list.

The agent is a stand-in: an HTTPS server in this process that answers ``GET /status``
with a running primary's status, ``GET /events`` with no events, and records what each
request carried. The commands run as the ``pgherd`` program runs them, in a fresh
interpreter.
"""

from __future__ import annotations

import getpass
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest

from pgherd import config as config_mod
from pgherd.config import ClusterConfig
from pgherd.lab import layout
from pgherd.pg import osuser, tlsfiles
from pgherd.tls import certs
from tests.conftest import free_port_base
from tests.support import ListedRun, pgherd_listing_imports
from tests.unit import nodes

VIEWER, OPERATOR = "viewer-t0ken", "operator-t0ken"


class _Agent(HTTPServer):
    seen: list[tuple[str, str | None]]  # (path, Authorization header)


class _Answer(BaseHTTPRequestHandler):
    server: _Agent

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.path == "/status":
            body: Any = nodes.primary("node1").model_dump(mode="json")
        elif self.path.startswith("/events"):
            body = []
        else:
            self.send_response(404)
            self.end_headers()
            return
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *_args: object) -> None:
        pass


def _owner() -> osuser.OsUser:
    return osuser.resolve("postgres" if getpass.getuser() == "root" else getpass.getuser())


@pytest.fixture
def cluster(tmp_path: Path) -> ClusterConfig:
    """One node whose agent port is free (the stand-in binds it), TLS on, reads that need
    a credential; the CA, the node's certificate and the tokens written."""
    base = free_port_base(1, (0, layout.API_PORT_OFFSET))
    lab = layout.lab_config(tmp_path / "lab", layout.LabShape(1, base, _owner().name, None))
    lab = config_mod.parse(lab.model_dump(mode="json") | {"api": {"auth_reads": True}})
    tlsfiles.ensure(lab, _owner(), tlsfiles.members(lab))
    for path, token in ((lab.api_token_file, OPERATOR), (lab.viewer_token_file, VIEWER)):
        path.write_text(token + "\n")
        path.chmod(0o600)
    (tmp_path / "pgherd.yaml").write_text(config_mod.dump(lab))
    return lab


StartAgent = Callable[[Path, Path], _Agent]


@pytest.fixture
def start_agent(cluster: ClusterConfig) -> Iterator[StartAgent]:
    started: list[_Agent] = []

    def start(cert: Path, key: Path) -> _Agent:
        node = cluster.node("node1")
        server = _Agent((node.api_host, node.api_port), _Answer)
        server.seen = []
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.shutdown()
        server.server_close()


def pgherd(tmp_path: Path, *args: str) -> ListedRun:
    """The command twice (the first validates the config), the second's outcome."""
    env = {"PGHERD_CACHE_DIR": str(tmp_path / "cache"), "PGHERD_CONFIG_CACHE": "on"}
    config = ("-c", str(tmp_path / "pgherd.yaml"))
    pgherd_listing_imports(tmp_path / "first.json", *args, *config, env=env, timeout=60)
    listing = tmp_path / "modules.json"
    return pgherd_listing_imports(listing, *args, *config, env=env, timeout=60)


@pytest.fixture(autouse=True)
def _no_token_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PGHERD_API_TOKEN", raising=False)


def test_cluster_show_reads_as_the_viewer_over_verified_tls(
    cluster: ClusterConfig, start_agent: StartAgent, tmp_path: Path
) -> None:
    agent = start_agent(*cluster.cert_files("node1"))
    run = pgherd(tmp_path, "cluster", "show", "--json")
    assert (run.code, run.heavy, run.stderr) == (0, [], "")
    assert "cryptography" not in run.modules
    shown = json.loads(run.stdout)
    assert shown["tls"] is True
    assert [(n["name"], n["state"]) for n in shown["nodes"]] == [("node1", "running")]
    assert agent.seen[-1] == ("/status", f"Bearer {VIEWER}")


def test_without_the_viewers_file_the_operators_token_reads(
    cluster: ClusterConfig, start_agent: StartAgent, tmp_path: Path
) -> None:
    cluster.viewer_token_file.unlink()
    agent = start_agent(*cluster.cert_files("node1"))
    run = pgherd(tmp_path, "cluster", "events", "--json")
    assert (run.code, run.heavy, run.stdout) == (0, [], "[]\n")
    assert agent.seen[-1] == ("/events?limit=1000", f"Bearer {OPERATOR}")
    assert all(token == f"Bearer {OPERATOR}" for _, token in agent.seen)


def test_open_reads_send_no_token(
    cluster: ClusterConfig, start_agent: StartAgent, tmp_path: Path
) -> None:
    open_reads = config_mod.parse(cluster.model_dump(mode="json") | {"api": {"auth_reads": False}})
    (tmp_path / "pgherd.yaml").write_text(config_mod.dump(open_reads))
    agent = start_agent(*cluster.cert_files("node1"))
    run = pgherd(tmp_path, "node", "check", "node1", "--nagios")
    assert run.heavy == []
    assert run.stdout.startswith("PGHERD OK"), run.stdout + run.stderr
    assert agent.seen and all(token is None for _, token in agent.seen)


def test_an_agent_with_another_cas_certificate_is_not_believed(
    cluster: ClusterConfig, start_agent: StartAgent, tmp_path: Path
) -> None:
    stranger = certs.issue(certs.new_ca("other"), "node1", ["127.0.0.1"])
    cert, key = tmp_path / "stranger.crt", tmp_path / "stranger.key"
    cert.write_bytes(stranger.cert_pem)
    key.write_bytes(stranger.key_pem)
    agent = start_agent(cert, key)
    run = pgherd(tmp_path, "cluster", "show", "--json")
    assert (run.code, run.heavy) == (3, [])  # degraded: the one node is not believed
    shown = json.loads(run.stdout)
    assert [(n["name"], n["state"]) for n in shown["nodes"]] == [("node1", "unreachable")]
    # No request was sent, so no credential reached the impostor: the handshake failed.
    assert agent.seen == []
