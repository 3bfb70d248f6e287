"""An S3-compatible server for tests: moto in server mode on loopback, started as a child
process, with a fault-injecting proxy in front of it (500 answers, stalls, a full
repository, damaged bodies). The repository code is pointed at the proxy's address like
at any S3 endpoint; it does not know what answers it."""

from __future__ import annotations

import http.client
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import free_port_base

ACCESS_KEY = "pgherdtest"
SECRET_KEY = "pgherdtestsecret"  # moto accepts any; never a real credential


@dataclass
class Faults:
    """What the proxy does to the next requests (methods: GET, PUT, HEAD, POST…)."""

    fail_next: int = 0  # answer this many requests with 500
    fail_methods: tuple[str, ...] = ("PUT", "GET", "POST", "HEAD")
    stall_next: int = 0  # hold this many requests for ``stall_seconds`` first
    stall_seconds: float = 0.0
    full: bool = False  # answer every PUT/POST as a full store would
    damage_gets: bool = False  # flip a byte in every object body served
    seen: list[str] = field(default_factory=list)


class _Proxy(BaseHTTPRequestHandler):
    upstream = ("127.0.0.1", 0)
    faults = Faults()
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _forward(self) -> None:
        faults = self.faults
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        faults.seen.append(self.command)
        if faults.stall_next > 0:
            faults.stall_next -= 1
            time.sleep(faults.stall_seconds)
        if faults.fail_next > 0 and self.command in faults.fail_methods:
            faults.fail_next -= 1
            self._answer(500, b"<Error><Code>InternalError</Code></Error>")
            return
        if faults.full and self.command in ("PUT", "POST"):
            self._answer(507, b"<Error><Code>XMinioStorageFull</Code></Error>")
            return
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() != "connection"}
            conn.request(self.command, self.path, body=body, headers=headers)
            answer = conn.getresponse()
            data = answer.read()
        finally:
            conn.close()
        if faults.damage_gets and self.command == "GET" and answer.status in (200, 206) and data:
            data = data[:-1] + bytes([data[-1] ^ 0xFF])
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        if self.command == "HEAD":  # no body: the upstream's length stands
            self.send_header("Content-Length", answer.getheader("Content-Length") or "0")
        else:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward


@dataclass
class S3Server:
    endpoint: str  # the proxy: what repositories are given
    direct: str  # moto itself, for setting up buckets
    faults: Faults

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.direct,
            region_name="us-east-1",
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
        )

    def make_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]


def write_credentials(path: Path) -> Path:
    path.write_text(
        f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    path.chmod(0o600)
    return path


@contextmanager
def s3_server() -> Iterator[S3Server]:
    port = free_port_base(2)
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    faults = Faults()
    handler = type("Proxy", (_Proxy,), {"upstream": ("127.0.0.1", port), "faults": faults})
    proxy = ThreadingHTTPServer(("127.0.0.1", port + 1), handler)
    proxy.daemon_threads = True
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                conn.request("GET", "/")
                conn.getresponse().read()
                break
            except OSError:
                if time.monotonic() > deadline or moto.poll() is not None:
                    raise RuntimeError("moto's S3 server did not start") from None
                time.sleep(0.1)
            finally:
                conn.close()
        yield S3Server(f"http://127.0.0.1:{port + 1}", f"http://127.0.0.1:{port}", faults)
    finally:
        proxy.shutdown()
        proxy.server_close()
        moto.terminate()
        try:
            moto.wait(10)
        except subprocess.TimeoutExpired:
            moto.kill()
            moto.wait()
