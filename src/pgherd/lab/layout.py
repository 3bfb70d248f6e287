"""The shape of a lab: node names, ports and paths under one directory. Pure."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pgherd.config import (
    ArchiveConfig,
    ClusterConfig,
    EtcdDcs,
    HaConfig,
    NodeConfig,
    SqliteDcs,
    TlsConfig,
    WitnessConfig,
)
from pgherd.errors import InvalidInput
from pgherd.pg import tlsfiles

API_PORT_OFFSET = 1000
ETCD_CLIENT_OFFSET = 2000  # the lab's etcd members: client ports
ETCD_PEER_OFFSET = 3000  # and peer ports
WITNESS_NAME = "witness"
DCS_CLIENT = tlsfiles.DCS_CLIENT  # the certificate agents and the CLI present to the lab's etcd
# A lab is one machine's worth: bench/scale.py runs 10 nodes (issue 21), a few more fit.
MAX_NODES = 16
DEFAULT_PORT_BASE = 5440
# Independent labs are for logical replication: a new or re-enabled subscription's apply
# worker waits wal_retrieve_retry_interval (5 s by default) before it starts, and retries
# after an apply error as often; 1 s keeps demos and tests brisk without flooding the log.
INDEPENDENT_SETTINGS = {"wal_retrieve_retry_interval": "1s"}


def node_name(index: int) -> str:
    return f"node{index + 1}"


def check_failover(failover: str) -> None:
    if failover not in ("manual", "automatic"):
        raise InvalidInput(f"--failover {failover!r} is not a mode", "use manual or automatic")


def check_dcs(dcs: str) -> None:
    if dcs not in ("sqlite", "etcd"):
        raise InvalidInput(f"--dcs {dcs!r} is not a store", "use sqlite or etcd")


def etcd_members(directory: Path, port_base: int, count: int) -> list[tuple[str, int, int]]:
    """(name, client port, peer port) of the lab's etcd members."""
    return [
        (f"etcd{i + 1}", port_base + ETCD_CLIENT_OFFSET + i, port_base + ETCD_PEER_OFFSET + i)
        for i in range(count)
    ]


def tls_dir(directory: Path) -> Path:
    """Where a lab keeps its CA and certificates: beside its passfile, the default."""
    return directory / "secrets" / "tls"


def lab_ha(
    directory: Path,
    port_base: int,
    nodes: int,
    dcs: str,
    sync: bool,
    witness: bool,
    failsafe: bool = False,
    tls: bool = True,
) -> HaConfig:
    """A lab's automatic failover: sqlite in DIR/dcs.sqlite, or etcd on loopback (one
    member; with a witness, one beside each data node and one beside the witness), over
    TLS with a client certificate unless ``tls`` is off."""
    check_dcs(dcs)
    if dcs == "sqlite":
        store: SqliteDcs | EtcdDcs = SqliteDcs(sqlite=directory / "dcs.sqlite")
    else:
        count = nodes + 1 if witness else 1
        members = etcd_members(directory, port_base, count)
        scheme = "https" if tls else "http"
        urls = tuple(f"{scheme}://127.0.0.1:{client}" for _, client, _ in members)
        client = tls_dir(directory) / DCS_CLIENT
        store = EtcdDcs(
            etcd=urls,
            cert=client.with_suffix(".crt") if tls else None,
            key=client.with_suffix(".key") if tls else None,
        )
    return HaConfig(dcs=store, synchronous=sync, failsafe=failsafe)


@dataclass(frozen=True)
class LabShape:
    """What a lab is made of — the options of ``pgherd lab up`` — given once to both the
    config it writes (:func:`lab_config`) and the lab it starts (lab/lifecycle.py).
    ``independent``: every node is a primary of its own (its own initdb, system identifier
    and agent) instead of one primary and its standbys. ``failover`` automatic: a
    coordination store (``dcs``) and the agents' HA loop. ``tls`` off: plain text
    everywhere (``tls: off``, flagged by doctor and cluster show)."""

    nodes: int
    port_base: int
    os_user: str
    pg_bin: Path | None = None
    independent: bool = False
    failover: str = "manual"
    archive: bool = False
    dcs: str = "sqlite"
    sync: bool = False
    witness: bool = False
    failsafe: bool = False
    tls: bool = True


def lab_config(directory: Path, shape: LabShape) -> ClusterConfig:
    """The config of a lab in ``directory``; options that do not fit together are refused
    with the flag to change."""
    nodes, port_base, failover, dcs = shape.nodes, shape.port_base, shape.failover, shape.dcs
    independent, archive, sync = shape.independent, shape.archive, shape.sync
    witness, failsafe, tls = shape.witness, shape.failsafe, shape.tls
    check_failover(failover)
    automatic = failover == "automatic"
    if independent and automatic:
        raise InvalidInput(
            "--failover automatic and --independent cannot be combined: every independent "
            "node is a primary of its own",
            "leave --failover out (independent labs fail over by hand)",
        )
    if (sync or witness or failsafe) and not automatic:
        raise InvalidInput(
            "--sync, --witness and --failsafe need automatic failover",
            "leave out --failover manual",
        )
    if independent and archive:
        raise InvalidInput(
            "--archive and --independent cannot be combined: an archive holds one cluster's WAL",
            "create the independent primaries without --archive",
        )
    if not 1 <= nodes <= MAX_NODES:
        raise InvalidInput(f"--nodes {nodes} is out of range", f"use 1 to {MAX_NODES} nodes")
    top = port_base + (ETCD_PEER_OFFSET if dcs == "etcd" and automatic else API_PORT_OFFSET)
    top += nodes if witness else nodes - 1
    if port_base < 1024 or top > 65535:
        raise InvalidInput(
            f"--port-base {port_base} gives ports outside 1024-65535 "
            f"(the API ports go up to {top})",
            f"use a port base from 1024 to {65535 - (top - port_base)}",
        )
    directory = directory.absolute()
    witnesses = (
        (
            WitnessConfig(
                name=WITNESS_NAME,
                api_port=port_base + API_PORT_OFFSET + nodes,
                home=directory / WITNESS_NAME,
            ),
        )
        if witness
        else ()
    )
    return ClusterConfig(
        cluster="lab",
        topology="independent" if independent else "streaming",
        settings=dict(INDEPENDENT_SETTINGS) if independent else {},
        os_user=shape.os_user,
        pg_bin=shape.pg_bin,
        passfile=directory / "secrets" / "pgpass",
        api_token_file=directory / "secrets" / "api-token",
        failover="automatic" if automatic else "manual",
        ha=lab_ha(directory, port_base, nodes, dcs, sync, witness, failsafe, tls)
        if automatic
        else None,
        tls=TlsConfig() if tls else False,
        archive=ArchiveConfig(path=directory / "archive") if archive else None,
        witnesses=witnesses,
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
    for witness in config.witnesses:
        ports.append((witness.api_host, witness.api_port, f"{witness.name} agent API"))
    for name, client, peer in lab_etcd(config):
        ports.append(("127.0.0.1", client, f"{name} etcd"))
        ports.append(("127.0.0.1", peer, f"{name} etcd peer"))
    return ports


def tls_members(config: ClusterConfig) -> list[tlsfiles.Member]:
    """Who needs a certificate in a lab: its nodes and witness, its etcd members and the
    store's client."""
    return tlsfiles.members(config, tlsfiles.store_members(config))


def lab_etcd(config: ClusterConfig) -> list[tuple[str, int, int]]:
    """The lab's etcd members by the config's endpoints (peer port = client + 1000)."""
    if config.ha is None or not isinstance(config.ha.dcs, EtcdDcs):
        return []
    members = []
    for i, url in enumerate(config.ha.dcs.etcd):
        client = int(url.rstrip("/").rsplit(":", 1)[1])
        members.append((f"etcd{i + 1}", client, client + ETCD_PEER_OFFSET - ETCD_CLIENT_OFFSET))
    return members
