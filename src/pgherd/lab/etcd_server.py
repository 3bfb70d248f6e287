"""A local etcd (Debian's etcd-server) on loopback ports: for `lab up --dcs etcd` and tests.

One member by default; ``cluster`` (name → peer URL of every member) makes it a member of
a multi-member cluster. ``start(detached=True)`` leaves it running after this process
exits (a lab's etcd outlives `lab up`), with its PID in ``<data_dir>.pid``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import time
from pathlib import Path

import httpx

from pgherd.pg import process


class EtcdServer:
    def __init__(
        self,
        data_dir: Path,
        client_port: int,
        peer_port: int,
        name: str = "test",
        cluster: dict[str, str] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.client_port = client_port
        self.peer_port = peer_port
        self.name = name
        self.cluster = cluster or {name: f"http://127.0.0.1:{peer_port}"}
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
        return f"http://127.0.0.1:{self.client_port}"

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
            f"http://127.0.0.1:{self.peer_port}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{self.peer_port}",
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
        ]
        log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self.proc = process.spawn_logged(argv, log, new_session=detached)
        if detached:
            self.pid_file.write_text(f"{self.proc.pid}\n")
        if wait:
            self.wait_healthy(timeout)

    def healthy(self) -> bool:
        try:
            return bool(httpx.get(f"{self.url}/health", timeout=1).json().get("health") == "true")
        except (httpx.HTTPError, ValueError):
            return False

    def wait_healthy(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).json().get("health") == "true":
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
