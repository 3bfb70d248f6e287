"""``pgherd lab up`` and ``pgherd lab down``: a whole cluster on this machine."""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pgherd import config as config_mod
from pgherd import credentials
from pgherd.archive import setup
from pgherd.clients.agent import AgentClient, fan_out, read_as_viewer, statuses
from pgherd.config import ClusterConfig, NodeConfig, WitnessConfig
from pgherd.errors import PgherdError, Refused, TimedOut
from pgherd.lab import agents, lab_store, layout
from pgherd.model.status import PgState, Role
from pgherd.pg import binaries, keeper, osuser, ports, process, tlsfiles
from pgherd.pg.basebackup import Progress
from pgherd.pg.local_node import LocalNode
from pgherd.physical import bootstrap, clone

CONFIG_NAME = "pgherd.yaml"


class Reporter(Protocol):
    def step(self, text: str) -> None: ...

    def progress(
        self, label: str
    ) -> contextlib.AbstractContextManager[Callable[[Progress], None]]: ...


class QuietReporter:
    def step(self, text: str) -> None:
        pass

    @contextlib.contextmanager
    def progress(self, label: str) -> Iterator[Callable[[Progress], None]]:
        yield lambda _p: None


@dataclass(frozen=True)
class LabUp:
    config: ClusterConfig
    config_path: Path
    created: bool
    seconds: float


def up(directory: Path, shape: layout.LabShape, reporter: Reporter) -> LabUp:
    started = time.monotonic()
    layout.check_failover(shape.failover)
    directory = directory.absolute()
    config_path = directory / CONFIG_NAME
    user = osuser.resolve(shape.os_user)
    if config_path.exists():
        config = config_mod.load(config_path)
        read_as_viewer(config)
        reporter.step(f"found the lab in {directory}; starting it")
        _start_existing(config, config_path, reporter)
        return LabUp(config, config_path, False, time.monotonic() - started)
    if directory.exists() and any(directory.iterdir()):
        raise Refused(
            f"{directory} is not empty and holds no {CONFIG_NAME}",
            "choose a new or empty directory for the lab",
        )
    osuser.require_reachable(directory.parent, user)
    config = layout.lab_config(directory, dataclasses.replace(shape, os_user=user.name))
    ports.require_free(layout.wanted_ports(config))
    pgbin = binaries.find(shape.pg_bin)
    reporter.step(f"PostgreSQL {pgbin.version} from {pgbin.bindir}, run as OS user {user.name!r}")
    write_lab_files(config, config_path, user)
    lab_store.start(config, directory, reporter)
    _create(config, config_path, reporter)
    _start_witnesses(config, config_path, reporter)
    return LabUp(config, config_path, True, time.monotonic() - started)


def _start_witnesses(config: ClusterConfig, config_path: Path, reporter: Reporter) -> None:
    for witness in config.witnesses:
        _start_witness(config_path, witness, reporter)


def _start_witness(config_path: Path, witness: WitnessConfig, reporter: Reporter) -> None:
    pid = agents.running_agent(witness)
    if pid is None:
        pid = agents.spawn(config_path, witness)
    agents.wait_healthy(witness, pid)
    reporter.step(f"{witness.name}: witness agent on {witness.api_url} (no data)")


def write_lab_files(config: ClusterConfig, config_path: Path, user: osuser.OsUser) -> None:
    """The config file, a passfile with new passwords, a new API token and (TLS on) the
    cluster CA and every member's certificate, all owned by ``user`` (0600 in 0700
    directories); tests and benchmarks set up clusters with it too."""
    user.make_dir(config_path.parent)
    credentials.files.init(config, user, credentials.KINDS)
    if config.tls_on:  # and the lab's own etcd members and the store's client
        tlsfiles.ensure(config, user, layout.tls_members(config))
    user.write_file(config_path, config_mod.dump(config))


def _create(config: ClusterConfig, config_path: Path, reporter: Reporter) -> None:
    if config.independent:
        for node in config.nodes:
            _create_primary(config, config_path, node, reporter)
        return
    primary, *standbys = config.nodes
    _create_primary(config, config_path, primary, reporter)
    for node in standbys:
        _clone_and_start(config, config_path, primary, node, reporter)
    _wait_streaming(config, reporter)


def _create_primary(
    config: ClusterConfig, config_path: Path, node: NodeConfig, reporter: Reporter
) -> None:
    local = LocalNode.open(config, node.name)
    reporter.step(f"initdb {node.name}: PostgreSQL {local.pgbin.version} (checksums on, scram)")
    bootstrap.init_primary(local)
    if config.archive is not None:
        _init_archive(config, local, reporter)
    _start_agent(config_path, node, reporter)
    bootstrap.create_replication_role(local)
    reporter.step(
        f"{node.name}: created the replication role {config.replication_user!r} (REPLICATION LOGIN)"
    )


def _init_archive(config: ClusterConfig, local: LocalNode, reporter: Reporter) -> None:
    control = local.instance.controldata()
    setup.init(config, control.system_identifier, local.pgbin.major, control.wal_segment_size)
    assert config.archive is not None
    reporter.step(f"WAL archive in {config.archive.path} (zstd, checksummed)")


def _clone_and_start(
    config: ClusterConfig,
    config_path: Path,
    upstream: NodeConfig,
    node: NodeConfig,
    reporter: Reporter,
) -> None:
    upstream_status = AgentClient(upstream).status()
    with reporter.progress(f"clone {node.name} from {upstream.name}") as on_progress:
        result = clone.clone(config, node.name, upstream_status, False, on_progress)
    reporter.step(
        f"cloned {node.name} from {upstream.name}: {result.bytes_copied / 1e6:.0f} MB "
        f"in {result.seconds:.1f} s (slot {result.slot!r})"
    )
    _start_agent(config_path, node, reporter)


def _start_agent(config_path: Path, node: NodeConfig, reporter: Reporter) -> None:
    pid = agents.running_agent(node)
    if pid is None:
        pid = agents.spawn(config_path, node)
    agents.wait_healthy(node, pid)
    reporter.step(f"{node.name}: agent on {node.api_url}, PostgreSQL on port {node.port}")


def _start_existing(config: ClusterConfig, config_path: Path, reporter: Reporter) -> None:
    to_start = [n for n in config.nodes if agents.running_agent(n) is None]
    idle = [n for n in to_start if not LocalNode.open(config, n.name).instance.is_running]
    ports.require_free([p for p in layout.wanted_ports(config) if _node_of(p, idle)])
    lab_store.start(config, config_path.parent, reporter)
    _start_existing_nodes(config, config_path, reporter)
    _start_witnesses(config, config_path, reporter)


def _start_existing_nodes(config: ClusterConfig, config_path: Path, reporter: Reporter) -> None:
    initialized = [n for n in config.nodes if LocalNode.open(config, n.name).instance.exists]
    if config.independent:
        # Every node is a primary of its own: start them, create the ones not there yet.
        for node in config.nodes:
            if node in initialized:
                _start_agent(config_path, node, reporter)
            else:
                _create_primary(config, config_path, node, reporter)
        return
    if not initialized:
        raise Refused(
            f"no node of the lab in {config_path.parent} holds data",
            f"remove the directory (pgherd lab down --dir {config_path.parent} --purge) "
            "and create the lab again",
        )
    # Primaries by their files first, the newest timeline first: an old primary that a
    # failover left behind then sees the new one running and stays stopped.
    for node in sorted(initialized, key=lambda n: _start_order(config, n)):
        try:
            _start_agent(config_path, node, reporter)
        except Refused as exc:
            reporter.step(f"{exc.message} ({exc.hint})")
    primary = _primary_of(config)
    for node in config.nodes:
        if node not in initialized:
            _clone_and_start(config, config_path, primary, node, reporter)
    _wait_streaming(config, reporter)


def _start_order(config: ClusterConfig, node: NodeConfig) -> tuple[bool, int]:
    instance = LocalNode.open(config, node.name).instance
    return instance.standby_configured, -instance.controldata().timeline


def _node_of(port: tuple[str, int, str], nodes: list[NodeConfig]) -> bool:
    return any(port[2].startswith(n.name + " ") for n in nodes)


def _primary_of(config: ClusterConfig) -> NodeConfig:
    for status in statuses(config.nodes):
        if status.role is Role.PRIMARY and status.state is PgState.RUNNING:
            return config.node(status.name)
    raise Refused("the lab has no running primary to clone missing nodes from")


def _wait_streaming(config: ClusterConfig, reporter: Reporter, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    waiting: list[str] = []
    while time.monotonic() < deadline:
        waiting = [
            s.name
            for s in statuses(config.nodes)
            if s.role is Role.STANDBY
            and (s.wal_receiver is None or s.wal_receiver.status != "streaming")
        ]
        if not waiting:
            reporter.step("every standby is streaming")
            return
        time.sleep(0.2)
    raise TimedOut(
        f"standbys not streaming after {timeout:.0f} s: {', '.join(waiting)}",
        "see their postgresql.log; `pgherd doctor` explains common causes",
    )


def down(directory: Path, purge: bool, reporter: Reporter) -> None:
    directory = directory.absolute()
    config_path = directory / CONFIG_NAME
    if not config_path.exists():
        if purge and directory.exists() and not any(directory.iterdir()):
            directory.rmdir()
            return
        raise Refused(f"no lab in {directory} (no {CONFIG_NAME})", "check --dir")
    config = config_mod.load(config_path)
    primaries = [n for n in config.nodes if not _is_standby(config, n)]
    standbys = [n for n in config.nodes if n not in primaries]
    # Standbys first: a primary's fast shutdown then has no walsenders to wait for.
    for group in (standbys, primaries):
        fan_out(group, lambda node: _stop_node(config, node, reporter))
    left = [
        n.name
        for n in config.nodes
        if agents.running_agent(n) is not None or process.running_postmaster(n.data_dir)
    ]
    for witness in config.witnesses:
        stopped = agents.stop(witness)
        reporter.step(f"{witness.name}: " + ("stopped its agent" if stopped else "not running"))
    lab_store.stop(config, directory, reporter)
    if left:
        raise PgherdError(f"still running after lab down: {', '.join(left)}", "see their logs")
    if purge:
        for node in config.nodes:
            keeper.forget_fence(node.data_dir, LocalNode.open(config, node.name).instance.user.uid)
        shutil.rmtree(directory)
        reporter.step(f"removed {directory}")


def _is_standby(config: ClusterConfig, node: NodeConfig) -> bool:
    return LocalNode.open(config, node.name).instance.standby_configured


def _stop_node(config: ClusterConfig, node: NodeConfig, reporter: Reporter) -> None:
    had_pg = process.running_postmaster(node.data_dir) is not None
    had_agent = agents.stop(node)  # the agent, then its PostgreSQL (fast shutdown)
    what = (
        "agent and PostgreSQL" if had_agent and had_pg else "agent" if had_agent else "PostgreSQL"
    )
    reporter.step(
        f"{node.name}: stopped {what}" if had_agent or had_pg else f"{node.name}: not running"
    )
