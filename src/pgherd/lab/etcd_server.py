"""A local etcd (Debian's etcd-server) on loopback ports: for `lab up --dcs etcd` and tests.

One member by default; ``cluster`` (name → peer URL of every member) makes it a member of
a multi-member cluster. ``start(detached=True)`` leaves it running after this process
exits (a lab's etcd outlives `lab up`), with its PID in ``<data_dir>.pid``.

With ``tls``, clients and peers speak TLS with the member's certificate, and etcd
accepts only clients (and peers) that present a certificate the cluster CA signed
(``--client-cert-auth``): the lab's store as a real cluster's should be.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from pgherd.pg import process
from pgherd.tls.context import client_context


@dataclass(frozen=True)
class EtcdTls:
    """The member's certificate and key, the CA that signs every member and client, and
    the client certificate this process uses for its own health checks."""

    ca: Path
    cert: Path
    key: Path
    client_cert: Path | None
    client_key: Path | None
    # Clients must present a certificate of the CA. etcd's JSON gateway refuses a client
    # certificate once etcd's own authentication (users) is on: one or the other.
    client_cert_auth: bool = True

    def flags(self) -> list[str]:
        files = ["--cert-file", str(self.cert), "--key-file", str(self.key)]
        if self.client_cert_auth:  # etcd 3.4 asks every client for one once it has a CA
            files += ["--trusted-ca-file", str(self.ca), "--client-cert-auth"]
        files += ["--peer-cert-file", str(self.cert), "--peer-key-file", str(self.key)]
        return [*files, "--peer-trusted-ca-file", str(self.ca), "--peer-client-cert-auth"]


class EtcdServer:
    def __init__(
        self,
        data_dir: Path,
        client_port: int,
        peer_port: int,
        name: str = "test",
        cluster: dict[str, str] | None = None,
        tls: EtcdTls | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.client_port = client_port
        self.peer_port = peer_port
        self.name = name
        self.tls = tls
        self.scheme = "https" if tls is not None else "http"
        self.cluster = cluster or {name: f"{self.scheme}://127.0.0.1:{peer_port}"}
        self.proc: process.Child | None = None

    @property
    def pid_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.pid"

    def running_pid(self) -> int | None:
        """The PID of a detached member that still runs (checked by name)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if process.is_alive(pid) and process.command_name(pid) == "etcd":
            return pid
        return None

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.peer_port}"

    def _verify(self) -> ssl.SSLContext | bool:
        if self.tls is None:
            return True
        return client_context(self.tls.ca, self.tls.client_cert, self.tls.client_key)

    def start(self, timeout: float = 20, detached: bool = False, wait: bool = True) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed: scripts/bootstrap.sh installs etcd-server")
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        initial = ",".join(f"{name}={url}" for name, url in self.cluster.items())
        argv = [
            binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            self.url,
            "--advertise-client-urls",
            self.url,
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            initial,
            "--initial-cluster-token",
            "pgherd-" + "-".join(sorted(self.cluster)),
            "--heartbeat-interval",
            "50",
            "--election-timeout",
            "500",
            # Raft's pre-vote (the default from etcd 3.5): a member cut off one way does not
            # unseat a healthy leader with ever higher terms (docs/deploy.md).
            "--pre-vote=true",
            *(self.tls.flags() if self.tls is not None else []),
        ]
        log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc = process.spawn_logged(argv, log, new_session=detached)
        if detached:
            self.pid_file.write_text(f"{self.proc.pid}\n")
        if wait:
            self.wait_healthy(timeout)

    def healthy(self) -> bool:
        try:
            answer = httpx.get(f"{self.url}/health", timeout=1, verify=self._verify())
            return bool(answer.json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if self.healthy():
                    return
            except httpx.HTTPError:
                pass
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"etcd exited with {self.proc.returncode}")
            time.sleep(0.1)
        raise RuntimeError("etcd did not become healthy")

    def stop_detached(self, timeout: float = 20) -> bool:
        """Stop a member started detached (by this or an earlier process)."""
        pid = self.running_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        process.signal_pid(pid, signal.SIGTERM)
        if not process.wait_gone(pid, timeout):
            process.signal_pid(pid, signal.SIGKILL)
            process.wait_gone(pid, 5)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.pid_file)
        return True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            process.stop_child(self.proc, 10)
