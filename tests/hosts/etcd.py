"""A three-member etcd with one member per test host (Debian's etcd-server), as an operator
runs it beside the agents (docs/deploy.md, step 4): a member survives the loss of any one
host. Each member is configured as Debian's unit configures it, by an environment file
(``/etc/default/etcd`` on a server; ``DIR/hostN.env`` here) with the ``ETCD_*`` variables
that docs/deploy.md writes: TLS between clients and members and between members, with
the certificates ``pgherd secrets init`` issues from the cluster CA, and only clients
that present a certificate of that CA (``ETCD_CLIENT_CERT_AUTH``)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pgherd.config import ClusterConfig
from pgherd.pg import tlsfiles
from tests.hosts.network import Host

CLIENT_PORT = 2379
PEER_PORT = 2380


@dataclass(frozen=True)
class EtcdTls:
    """The cluster CA, each member's certificate and key by host name (``etcd1``… as
    ``secrets init`` names them, in the order of ``ha.dcs.etcd``), and the store's client
    certificate that the CLI, the agents and these checks present."""

    ca: Path
    members: dict[str, tuple[Path, Path]]
    client: tuple[Path, Path]

    @classmethod
    def of(cls, config: ClusterConfig, hosts: list[Host]) -> EtcdTls:
        assert config.ca_file is not None, "TLS is off in this config"
        return cls(
            config.ca_file,
            {h.name: config.cert_files(f"etcd{i}") for i, h in enumerate(hosts, start=1)},
            config.cert_files(tlsfiles.DCS_CLIENT),
        )

    def curl(self) -> list[str]:
        """curl's options to reach a member as a client of the store."""
        cert, key = self.client
        return ["--cacert", str(self.ca), "--cert", str(cert), "--key", str(key)]


@dataclass
class EtcdCluster:
    hosts: list[Host]
    directory: Path
    token: str = "pgherd-tests"
    # https: TLS with the cluster's certificates (docs/deploy.md), ``tls`` set before the
    # first start; http: plain, for a cluster that runs with ``tls: off``.
    scheme: str = "https"
    tls: EtcdTls | None = None
    members: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def endpoints(self) -> list[str]:
        return [f"{self.scheme}://{h.address}:{CLIENT_PORT}" for h in self.hosts]

    def environment(self, host: Host) -> dict[str, str]:
        """The member's ``/etc/default/etcd``, as docs/deploy.md step 4 writes it."""
        client = f"{self.scheme}://{host.address}:{CLIENT_PORT}"
        peer = f"{self.scheme}://{host.address}:{PEER_PORT}"
        initial = ",".join(f"{h.name}={self.scheme}://{h.address}:{PEER_PORT}" for h in self.hosts)
        plain = {
            "ETCD_NAME": host.name,
            "ETCD_DATA_DIR": str(self.directory / host.name),
            "ETCD_LISTEN_PEER_URLS": peer,
            "ETCD_LISTEN_CLIENT_URLS": client,
            "ETCD_INITIAL_ADVERTISE_PEER_URLS": peer,
            "ETCD_ADVERTISE_CLIENT_URLS": client,
            "ETCD_INITIAL_CLUSTER": initial,
            "ETCD_INITIAL_CLUSTER_STATE": "new",
            "ETCD_INITIAL_CLUSTER_TOKEN": self.token,
            "ETCD_PRE_VOTE": "true",
            # Not in the docs: tests keep etcd's elections short (defaults 100 / 1000 ms).
            "ETCD_HEARTBEAT_INTERVAL": "50",
            "ETCD_ELECTION_TIMEOUT": "500",
        }
        if self.scheme == "http":
            return plain
        assert self.tls is not None, "the members' certificates first (pgherd secrets init)"
        cert, key = self.tls.members[host.name]
        return plain | {
            "ETCD_CERT_FILE": str(cert),
            "ETCD_KEY_FILE": str(key),
            "ETCD_TRUSTED_CA_FILE": str(self.tls.ca),
            "ETCD_CLIENT_CERT_AUTH": "true",
            "ETCD_PEER_CERT_FILE": str(cert),
            "ETCD_PEER_KEY_FILE": str(key),
            "ETCD_PEER_TRUSTED_CA_FILE": str(self.tls.ca),
            "ETCD_PEER_CLIENT_CERT_AUTH": "true",
        }

    def start(self, host: Host) -> None:
        binary = shutil.which("etcd")
        if binary is None:
            raise RuntimeError("etcd is not installed: scripts/bootstrap.sh installs etcd-server")
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = self.environment(host)
        defaults = self.directory / f"{host.name}.env"
        defaults.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        with (self.directory / f"{host.name}.log").open("ab") as log:
            self.members[host.name] = subprocess.Popen(
                host.argv(binary),
                stdout=log,
                stderr=log,
                stdin=subprocess.DEVNULL,
                env={"PATH": "/usr/bin:/bin", **env},
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

    def curl(self, through: Host, path: str, *args: str) -> subprocess.CompletedProcess[str]:
        """A request to the member on ``through``, from that host, as the store's client."""
        url = f"{self.scheme}://{through.address}:{CLIENT_PORT}{path}"
        tls = self.tls.curl() if self.tls is not None else []
        return subprocess.run(
            through.argv("curl", "-s", "--max-time", "3", *tls, url, *args),
            capture_output=True,
            text=True,
            check=False,
        )

    def get(self, key: str, timeout: float = 30) -> bytes | None:
        """The value of ``key`` (None: no such key), read through the v3 JSON gateway of
        whichever member answers first: one whose host has just booted may still be
        rejoining its peers."""
        body = json.dumps({"key": base64.b64encode(key.encode()).decode()})
        deadline = time.monotonic() + timeout
        while True:
            for host in self.hosts:
                if not self.running(host):
                    continue
                try:
                    answer = json.loads(self.curl(host, "/v3/kv/range", "-d", body).stdout)
                except ValueError:
                    continue  # no answer (yet)
                if "header" not in answer:
                    continue  # an error: no quorum seen from this member yet
                kvs = answer.get("kvs", [])
                return base64.b64decode(kvs[0]["value"]) if kvs else None
            if time.monotonic() > deadline:
                raise RuntimeError(f"no etcd member answered for {key} within {timeout:.0f} s")
            time.sleep(0.5)

    def healthy(self, through: Host) -> bool:
        """Whether the cluster has a leader, asked from ``through``."""
        return '"health":"true"' in self.curl(through, "/health").stdout.replace(" ", "")

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
