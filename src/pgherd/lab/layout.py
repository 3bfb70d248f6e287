"""The shape of a lab: node names, ports and paths under one directory. Pure."""

from __future__ import annotations

from pathlib import Path

from pgherd.config import ArchiveConfig, ClusterConfig, NodeConfig
from pgherd.errors import InvalidInput

API_PORT_OFFSET = 1000
MAX_NODES = 9
DEFAULT_PORT_BASE = 5440
# Independent labs are for logical replication: a new or re-enabled subscription's apply
# worker waits wal_retrieve_retry_interval (5 s by default) before it starts, and retries
# after an apply error as often; 1 s keeps demos and tests brisk without flooding the log.
INDEPENDENT_SETTINGS = {"wal_retrieve_retry_interval": "1s"}


def node_name(index: int) -> str:
    return f"node{index + 1}"


def check_failover(failover: str) -> None:
    """Only manual failover exists until the agents' HA loop lands."""
    if failover == "manual":
        return
    if failover == "automatic":
        raise InvalidInput(
            "--failover automatic: automatic failover is not available yet",
            "use --failover manual (the default); promote with pgherd standby promote or "
            "pgherd standby switchover",
        )
    raise InvalidInput(f"--failover {failover!r} is not a mode", "use manual or automatic")


def lab_config(
    directory: Path,
    nodes: int,
    port_base: int,
    os_user: str,
    pg_bin: Path | None,
    independent: bool = False,
    failover: str = "manual",
    archive: bool = False,
) -> ClusterConfig:
    """``independent``: every node is a primary of its own (its own initdb, system
    identifier and agent) instead of one primary and its standbys."""
    check_failover(failover)
    if independent and archive:
        raise InvalidInput(
            "--archive and --independent cannot be combined: an archive holds one cluster's WAL",
            "create the independent primaries without --archive",
        )
    if not 1 <= nodes <= MAX_NODES:
        raise InvalidInput(f"--nodes {nodes} is out of range", f"use 1 to {MAX_NODES} nodes")
    top = port_base + API_PORT_OFFSET + nodes - 1
    if port_base < 1024 or top > 65535:
        raise InvalidInput(
            f"--port-base {port_base} gives ports outside 1024-65535 "
            f"(the API ports go up to {top})",
            f"use a port base from 1024 to {65535 - API_PORT_OFFSET - nodes + 1}",
        )
    directory = directory.absolute()
    return ClusterConfig(
        cluster="lab",
        topology="independent" if independent else "streaming",
        settings=dict(INDEPENDENT_SETTINGS) if independent else {},
        os_user=os_user,
        pg_bin=pg_bin,
        passfile=directory / "secrets" / "pgpass",
        api_token_file=directory / "secrets" / "api-token",
        failover="manual",
        archive=ArchiveConfig(path=directory / "archive") if archive else None,
        nodes=tuple(
            NodeConfig(
                name=node_name(i),
                host="127.0.0.1",
                port=port_base + i,
                api_host="127.0.0.1",
                api_port=port_base + API_PORT_OFFSET + i,
                data_dir=directory / node_name(i) / "data",
            )
            for i in range(nodes)
        ),
    )


def wanted_ports(config: ClusterConfig) -> list[tuple[str, int, str]]:
    ports = []
    for node in config.nodes:
        ports.append((node.host, node.port, f"{node.name} PostgreSQL"))
        ports.append((node.api_host, node.api_port, f"{node.name} agent API"))
    return ports
