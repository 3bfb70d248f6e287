"""The quick commands' etcd transport keeps its connection for the command's next request,
and gets a new one when the server closed it meanwhile; the agents' transport keeps a
connection open to every endpoint and holds each request to one deadline: against a real
HTTP/1.1 server on loopback that counts the connections it accepts (the contract suite in
tests/integration/test_dcs.py runs the same transports against a real etcd, and
tests/integration/test_etcd_failover.py against three etcd members)."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from pgherd.dcs.etcd_transport import OneShotTransport, PooledTransport, TransportError


@dataclass
class Server:
    url: str
    accepted: list[int] = field(default_factory=list)  # one entry per connection
    versions: list[float] = field(default_factory=list)  # when each GET /version came


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless told otherwise
    mode = "keep"  # keep | drop (closes after answering, saying nothing) | close (says so)
    #   | slow (answers after two seconds)
    server_state: Server

    def setup(self) -> None:
        super().setup()
        self.server_state.accepted.append(1)

    def do_GET(self) -> None:
        self.server_state.versions.append(time.monotonic())
        self._answer(b'{"etcdserver":"3.4.23","etcdcluster":"3.4.0"}')

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.mode == "slow":
            time.sleep(2)
        self._answer(json.dumps({"echo": body, "path": self.path}).encode())

    def _answer(self, answer: bytes) -> None:
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
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
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


@pytest.fixture
def keeping() -> Iterator[Server]:
    yield from serve("keep")


@pytest.fixture
def slow() -> Iterator[Server]:
    yield from serve("slow")


def _wait_for(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.01)


def test_the_agents_transport_opens_a_connection_to_every_endpoint_before_it_is_needed(
    keeping: Server, slow: Server
) -> None:
    transport = PooledTransport(timeout=5, endpoints=[keeping.url, f"{slow.url}/"])
    try:
        _wait_for(lambda: len(keeping.versions) == len(slow.versions) == 1)  # GET /version
        assert transport.connects == {keeping.url: 1, slow.url: 1}
        for n in range(3):
            status, raw = transport.post(f"{keeping.url}/v3/kv/range", {"n": n})
            assert status == 200 and json.loads(raw)["echo"] == {"n": n}
        assert transport.connects == {keeping.url: 1, slow.url: 1}
        assert len(keeping.accepted) == 1
    finally:
        transport.close()


def test_a_request_gets_one_deadline_and_its_endpoint_is_warmed_again(slow: Server) -> None:
    """A server that answers after two seconds, asked with 0.3 s: the request gives up at
    0.3 s; the endpoint's connection, closed by the timeout, is opened again ``rewarm``
    later."""
    transport = PooledTransport(timeout=5, endpoints=[slow.url], rewarm=0.2, idle_ping=60)
    try:
        _wait_for(lambda: transport.connects.get(slow.url) == 1)
        started = time.monotonic()
        with pytest.raises(TransportError, match="ReadTimeout"):
            transport.post(f"{slow.url}/v3/kv/range", {}, timeout=0.3)
        assert 0.29 <= time.monotonic() - started < 1.0  # (a busy machine's scheduling)
        _wait_for(lambda: len(slow.versions) == 2)
        assert transport.connects == {slow.url: 2}
    finally:
        transport.close()


def test_a_new_connection_and_its_answer_share_one_deadline(slow: Server) -> None:
    """No connection kept (no endpoints to warm): the connect and the slow answer together
    stay within the request's limit (httpx alone gives the connect, the TLS handshake, the
    write and the read the limit each)."""
    transport = PooledTransport(timeout=5)
    try:
        started = time.monotonic()
        with pytest.raises(TransportError):
            transport.post(f"{slow.url}/v3/kv/range", {}, timeout=0.3)
        assert time.monotonic() - started < 1.0
        assert transport.connects == {slow.url: 1}
    finally:
        transport.close()


def test_an_idle_endpoint_is_checked_now_and_then_a_used_one_never(
    keeping: Server, slow: Server
) -> None:
    """The endpoint the calls use sees no extra request; the idle one a GET /version every
    ``idle_ping`` seconds, on its kept connection."""
    transport = PooledTransport(timeout=5, endpoints=[keeping.url, slow.url], idle_ping=0.3)
    try:
        _wait_for(lambda: len(slow.versions) == 1 and len(keeping.versions) == 1)
        until = time.monotonic() + 1.0
        while time.monotonic() < until:
            transport.post(f"{keeping.url}/v3/kv/range", {})
            time.sleep(0.05)
        assert len(keeping.versions) == 1
        assert 2 <= len(slow.versions) <= 5  # at ~0.3, 0.6, 0.9 s (fewer on a busy machine)
        assert transport.connects == {keeping.url: 1, slow.url: 1}
    finally:
        transport.close()
