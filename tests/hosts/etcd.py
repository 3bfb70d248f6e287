"""A three-member etcd with one member per test host (Debian's etcd-server), as an operator
runs it beside the agents: a member survives the loss of any one host."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.hosts.network import Host

CLIENT_PORT = 2379
PEER_PORT = 2380


@dataclass
class EtcdCluster:
    hosts: list[Host]
    directory: Path
    token: str = "pgherd-tests"
    members: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        return [f"http://{h.address}:{CLIENT_PORT}" for h in self.hosts]

    def _argv(self, host: Host) -> list[str]:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed: scripts/bootstrap.sh installs etcd-server")
        initial = ",".join(f"{h.name}=http://{h.address}:{PEER_PORT}" for h in self.hosts)
        client = f"http://{host.address}:{CLIENT_PORT}"
        peer = f"http://{host.address}:{PEER_PORT}"
        return host.argv(
            binary,
            f"--name={host.name}",
            f"--data-dir={self.directory / host.name}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster={initial}",
            f"--initial-cluster-token={self.token}",
            "--heartbeat-interval=50",
            "--election-timeout=500",
            # as docs/deploy.md sets it: a member that hears nobody (a one-way partition)
            # must not bump the term and unseat a healthy leader again and again
            "--pre-vote=true",
        )

    def start(self, host: Host) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        with (self.directory / f"{host.name}.log").open("ab") as log:
            self.members[host.name] = subprocess.Popen(
                self._argv(host), stdout=log, stderr=log, stdin=subprocess.DEVNULL
            )

    def start_all(self) -> None:
        for host in self.hosts:  # a member waits for the others' quorum: start all first
            if not self.running(host):
                self.start(host)

    def running(self, host: Host) -> bool:
        proc = self.members.get(host.name)
        return proc is not None and proc.poll() is None

    def stop(self, host: Host) -> None:
        proc = self.members.pop(host.name, None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def forget(self, host: Host) -> None:
        """The member died with its host (shut down from outside): reap it."""
        proc = self.members.pop(host.name, None)
        if proc is not None:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)

    def healthy(self, through: Host) -> bool:
        """Whether the cluster has a leader, asked from ``through`` (curl in its namespace)."""
        url = f"http://{through.address}:{CLIENT_PORT}/health"
        done = subprocess.run(
            through.argv("curl", "-s", "--max-time", "2", url),
            capture_output=True,
            text=True,
            check=False,
        )
        return '"health":"true"' in done.stdout.replace(" ", "")

    def wait_healthy(self, through: Host, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.healthy(through):
                return
            time.sleep(0.2)
        raise RuntimeError(f"etcd did not become healthy within {timeout:.0f} s")

    def stop_all(self) -> None:
        for host in self.hosts:
            self.stop(host)
