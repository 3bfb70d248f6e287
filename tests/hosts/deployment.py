"""A pgherd cluster deployed on the test hosts as an operator deploys it: one pgherd.yaml
(the same file on every host), its secrets, an agent per host started as a service
(tests/hosts/agents.py), the CLI run on a host. Nothing here goes through ``lab``."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pgherd import config as config_mod
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.pg import osuser
from tests.hosts.agents import Agent, Unit, as_user, service_env, start_agent, unit_of
from tests.hosts.etcd import EtcdCluster, EtcdTls
from tests.hosts.network import Host, Network, unavailable


@dataclass
class Hosts:
    """Test hosts on one bridge, an etcd member on the first three."""

    network: Network
    etcd: EtcdCluster
    directory: Path

    def __getitem__(self, name: str) -> Host:
        return self.network.hosts[name]

    @property
    def names(self) -> list[str]:
        return list(self.network.hosts)

    def shut_down(self, *names: str, power_off: bool = False) -> None:
        """The hosts go down, together: every process on them (agent, keeper, PostgreSQL,
        etcd)."""
        hosts = [self[name] for name in names]
        self.network.shut_down(*hosts, power_off=power_off)
        for host in hosts:
            self.etcd.forget(host)

    def start_store(self, config: ClusterConfig) -> None:
        """docs/deploy.md step 4: the etcd members, with the certificates ``pgherd secrets
        init`` issued for them from ``config``'s cluster CA; back once they have a leader."""
        self.etcd.tls = EtcdTls.of(config, self.etcd.hosts)
        self.etcd.start_all()
        self.etcd.wait_healthy(self.etcd.hosts[0])

    def boot(self, name: str) -> None:
        """The host comes up: its etcd member, if it has one (its agent: the cluster's)."""
        host = self[name]
        if host in self.etcd.hosts and not self.etcd.running(host):
            self.etcd.start(host)


@contextlib.contextmanager
def provision_hosts(
    directory: Path, count: int, etcd_members: int = 3, etcd_tls: bool = False
) -> Iterator[Hosts]:
    """``count`` hosts named host1… (addresses SUBNET.1…), etcd on the first
    ``etcd_members``; everything removed on the way out, failed test or not.

    ``etcd_tls``: etcd over https with the cluster's certificates, started by
    :meth:`Hosts.start_store` once ``secrets init`` made them (docs/deploy.md); without
    it, plain http started here, for clusters that run with ``tls: off``."""
    why = unavailable()
    if why is not None:
        import pytest

        pytest.skip(f"no network namespaces: {why}")
    network = Network()
    etcd: EtcdCluster | None = None
    try:
        network.create()
        for i in range(1, count + 1):
            network.add_host(f"host{i}", i)
        members = [network.hosts[f"host{i}"] for i in range(1, etcd_members + 1)]
        etcd = EtcdCluster(members, directory / "etcd", scheme="https" if etcd_tls else "http")
        if not etcd_tls:
            etcd.start_all()
            etcd.wait_healthy(members[0])
        yield Hosts(network, etcd, directory)
    finally:
        if etcd is not None:
            etcd.stop_all()
        network.remove()


@dataclass
class Deployment:
    hosts: Hosts
    config_path: Path
    user: osuser.OsUser
    agents: dict[str, Agent] = field(default_factory=dict)
    units: dict[str, Unit] = field(default_factory=dict)

    @property
    def config(self) -> ClusterConfig:
        return config_mod.load(self.config_path)

    def write_config(self, raw: dict[str, Any]) -> ClusterConfig:
        config = config_mod.parse(raw)
        self.user.write_file(self.config_path, config_mod.dump(config))
        return config

    def host_of(self, node: str) -> Host:
        address = self.config.node(node).host
        return next(h for h in self.hosts.network.hosts.values() if h.address == address)

    def node(self, name: str) -> NodeConfig:
        return self.config.node(name)

    # ---- agents, as services ---------------------------------------------------------

    def start_agent(self, name: str) -> Agent:
        """As the node's systemd unit starts it (docs/deploy.md installs that unit)."""
        if name not in self.units:
            self.units[name] = unit_of(self.config_path, name)
        host = self.host_of(name)
        agent = start_agent(self.units[name], self.node(name), self.user, on=host.argv)
        self.agents[name] = agent
        return agent

    def stop_agent(self, name: str) -> None:
        agent = self.agents.pop(name, None)
        if agent is not None:
            agent.stop()

    def shut_down(self, *names: str, power_off: bool = False) -> None:
        """The nodes' hosts go down, together (a reboot, or a power cut with
        ``power_off``)."""
        self.hosts.shut_down(*(self.host_of(name).name for name in names), power_off=power_off)
        for name in names:
            agent = self.agents.pop(name, None)
            if agent is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    agent.proc.wait(30)

    def boot(self, name: str) -> Agent:
        """The node's host comes up: its etcd member, then its agent (as systemd would)."""
        self.hosts.boot(self.host_of(name).name)
        return self.start_agent(name)

    def log(self, name: str) -> str:
        try:
            return self.node(name).agent_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- the CLI and SQL, from a host --------------------------------------------------

    def pgherd(self, *args: str, on: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """The CLI on host ``on``, as an operator runs it there."""
        argv = self.hosts[on].argv(
            sys.executable, "-m", "pgherd", *args, "--config", str(self.config_path)
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=180, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"pgherd {' '.join(args)}: {done.stdout}\n{done.stderr}")
        return done

    def show(self, on: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            self.pgherd("cluster", "show", "--json", on=on, check=False).stdout
        )
        return data

    def sql(self, node: str, query: str) -> list[list[str]]:
        """One statement on ``node`` as the superuser, on its own host over the Unix socket
        (peer authentication, as pgherd's agent connects), rows as lists of text."""
        target = self.node(node)
        done = subprocess.run(
            self.host_of(node).argv(
                *as_user(self.user),
                "psql",
                "-XAt",
                "-F",
                "\t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                str(target.socket_dir),
                "-p",
                str(target.port),
                "-U",
                self.config.superuser,
                "-d",
                "postgres",
                "-c",
                query,
            ),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=service_env(self.user),
            cwd="/",
        )
        if done.returncode != 0:
            raise AssertionError(f"psql on {node}: {done.stderr.strip()}")
        return [line.split("\t") for line in done.stdout.splitlines()]

    def tails(self, lines: int = 15) -> str:
        """The end of every agent's log, for a failure message."""
        parts = []
        for node in self.config.nodes:
            text = self.log(node.name).splitlines()[-lines:]
            parts.append(f"--- {node.name} ---\n" + "\n".join(text))
        return "\n".join(parts)

    def wait(self, check: Any, timeout: float, what: str) -> Any:
        """wait_for, with the agents' logs in the message when it times out."""
        try:
            return wait_for(check, timeout, what)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.tails()}") from None

    def stop_all(self) -> None:
        for name in list(self.agents):
            self.stop_agent(name)


def wait_for(check: Any, timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            result = check()
        except (AssertionError, ValueError, KeyError) as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}; last: {last!r}")
