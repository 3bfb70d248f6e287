"""The lab's coordination store: nothing to run for sqlite (a file in the lab directory),
a local etcd (one member, or one beside each data node and the witness) for ``--dcs etcd``,
started before the agents and stopped after them."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pgherd.config import ClusterConfig, EtcdDcs, SqliteDcs
from pgherd.dcs.sqlite import SqliteStore
from pgherd.errors import PgherdError
from pgherd.lab import layout
from pgherd.lab.etcd_server import EtcdServer, EtcdTls
from pgherd.pg import osuser


class Reporter(Protocol):
    def step(self, text: str) -> None: ...


def members(config: ClusterConfig, directory: Path) -> list[EtcdServer]:
    found = layout.lab_etcd(config)
    scheme = "https" if config.tls_on else "http"
    cluster = {name: f"{scheme}://127.0.0.1:{peer}" for name, _, peer in found}
    return [
        EtcdServer(
            directory / "etcd" / name,
            client,
            peer,
            name=name,
            cluster=cluster,
            tls=_tls(config, name),
        )
        for name, client, peer in found
    ]


def _tls(config: ClusterConfig, member: str) -> EtcdTls | None:
    if config.ca_file is None or config.ha is None or not isinstance(config.ha.dcs, EtcdDcs):
        return None
    cert, key = config.cert_files(member)
    client_cert, client_key = config.cert_files(layout.DCS_CLIENT)
    return EtcdTls(config.ca_file, cert, key, client_cert, client_key)


def start(config: ClusterConfig, directory: Path, reporter: Reporter) -> None:
    _sqlite_for_agents(config)
    servers = members(config, directory)
    if not servers:
        return
    (directory / "etcd").mkdir(mode=0o700, exist_ok=True)
    try:
        started = []
        for server in servers:
            if server.running_pid() is None and not server.healthy():
                # A member of several waits for the others' quorum: start all, then wait.
                # (An etcd that already answers there is used as it is: one the lab did not
                # start, such as a benchmark's, is neither started nor stopped by it.)
                server.start(detached=True, wait=False)
                started.append(server)
        for server in servers:
            server.wait_healthy(30)
    except RuntimeError as exc:
        raise PgherdError(
            f"the lab's etcd did not start: {exc}", f"see {directory / 'etcd'}/*.log"
        ) from None
    names = ", ".join(f"{s.name} on {s.url}" for s in servers)
    reporter.step(f"etcd: {names}" + ("" if started else " (already running)"))


def _sqlite_for_agents(config: ClusterConfig) -> None:
    """A sqlite store the agents can write: they run as the OS user, the lab maybe as
    root, and whoever opens the file first creates it (sqlite gives the files it adds
    beside it, the WAL, the owner of the database file)."""
    if config.ha is None or not isinstance(config.ha.dcs, SqliteDcs):
        return
    path = config.ha.dcs.sqlite
    if not path.exists():
        SqliteStore(path).close()
    osuser.resolve(config.os_user).chown(path)


def stop(config: ClusterConfig, directory: Path, reporter: Reporter) -> None:
    for server in members(config, directory):
        if server.stop_detached():
            reporter.step(f"{server.name}: stopped etcd")
