"""The lab's coordination store: nothing to run for sqlite (a file in the lab directory),
a local etcd (one member, or one beside each data node and the witness) for ``--dcs etcd``,
started before the agents and stopped after them."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pgherd.config import ClusterConfig, SqliteDcs
from pgherd.dcs.sqlite import SqliteStore
from pgherd.errors import PgherdError
from pgherd.lab import layout
from pgherd.lab.etcd_server import EtcdServer
from pgherd.pg import osuser


class Reporter(Protocol):
    def step(self, text: str) -> None: ...


def members(config: ClusterConfig, directory: Path) -> list[EtcdServer]:
    found = layout.lab_etcd(config)
    cluster = {name: f"http://127.0.0.1:{peer}" for name, _, peer in found}
    return [
        EtcdServer(directory / "etcd" / name, client, peer, name=name, cluster=cluster)
        for name, client, peer in found
    ]


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
