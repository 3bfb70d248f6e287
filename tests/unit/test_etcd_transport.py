"""The quick commands' etcd transport keeps its connection for the command's next request,
and gets a new one when the server closed it meanwhile: against a real HTTP/1.1 server on
loopback that counts the connections it accepts (the contract suite in
tests/integration/test_dcs.py runs the same transport against a real etcd)."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from pgherd.dcs.etcd_transport import OneShotTransport


@dataclass
class Server:
    url: str
    accepted: list[int] = field(default_factory=list)  # one entry per connection


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise
    mode = "keep"  # keep | drop (closes after answering, saying nothing) | close (says so)
    server_state: Server

    def setup(self) -> None:
        super().setup()
        self.server_state.accepted.append(1)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer = json.dumps({"echo": body, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        if self.mode == "close":
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(answer)
        if self.mode == "drop":
            self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


def serve(mode: str) -> Iterator[Server]:
    state = Server("")
    handler = type("H", (Handler,), {"mode": mode, "server_state": state})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture(params=["keep", "drop", "close"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from serve(request.param)


def test_three_requests_and_the_connections_they_cost(
    server: Server, request: pytest.FixtureRequest
) -> None:
    transport = OneShotTransport(timeout=5)
    try:
        for n in range(3):
            status, raw = transport.post(f"{server.url}/v3/kv/range", {"n": n}, {"X-A": "b"})
            assert status == 200
            assert json.loads(raw) == {"echo": {"n": n}, "path": "/v3/kv/range"}
    finally:
        transport.close()
    mode = request.node.callspec.params["server"]
    # Kept alive: one. A server that says it closes: one per request. One that closes
    # without saying so: the kept connection fails the next request, which is sent again
    # on a new one.
    assert len(server.accepted) == (1 if mode == "keep" else 3)
