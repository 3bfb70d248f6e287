"""Helpers for cluster-operation tests: the cluster as ``cluster show --json`` sees it, and
a client that keeps writing through a multi-host URI, as an application would."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Self

import psycopg
from psycopg import sql

from pgherd.clients.agent import statuses
from pgherd.config import ClusterConfig
from pgherd.model import cluster as cluster_model
from tests.e2e.conftest import Lab
from tests.support import InBackground, connect, query, wait_until


def show(lab: Lab) -> dict[str, Any]:
    """What ``cluster show --json`` prints, computed in this process (the CLI itself is
    exercised by the operations under test; this keeps the checks around them quick)."""
    config = lab.config

    def node_at(host: str | None, port: int | None) -> str | None:
        node = config.node_at(host, port)
        return node.name if node else None

    return cluster_model.view_json(
        config.cluster, cluster_model.view(statuses(config.nodes), node_at)
    )


def cluster(lab: Lab) -> dict[str, dict[str, Any]]:
    """Every node's row of ``cluster show --json``, by name."""
    return {row["name"]: row for row in show(lab)["nodes"]}


def healthy(lab: Lab) -> bool:
    return not show(lab)["problems"]


def roles(lab: Lab) -> dict[str, tuple[str, str | None]]:
    """name → (role, upstream) for running nodes that stream (or the primary)."""
    return {
        name: (row["role"], row["upstream"])
        for name, row in cluster(lab).items()
        if row["state"] in ("running", "streaming")
    }


def wait_healthy(lab: Lab, timeout: float = 30) -> None:
    wait_until(lambda: healthy(lab), timeout, what="a healthy cluster")


def primary_of(lab: Lab) -> str:
    name = show(lab)["primary"]
    assert isinstance(name, str)
    return name


def slots_on(config: ClusterConfig, node: str) -> list[str]:
    rows = query(config, node, "SELECT slot_name FROM pg_replication_slots ORDER BY 1")
    return [r[0] for r in rows]


def multi_host_conninfo(config: ClusterConfig) -> str:
    hosts = ",".join(n.host for n in config.nodes)
    ports = ",".join(str(n.port) for n in config.nodes)
    return (
        f"host={hosts} port={ports} user={config.superuser} dbname=postgres "
        f"passfile={config.passfile} target_session_attrs=read-write connect_timeout=2"
    )


@dataclass
class Writer(InBackground):
    """Inserts one row every ``interval`` seconds through a multi-host URI with
    ``target_session_attrs=read-write``; remembers the ids whose commit was acknowledged
    and the longest time between a failed commit and the next successful one."""

    config: ClusterConfig
    table: str = "writes"
    interval: float = 0.01
    acknowledged: list[int] = field(default_factory=list)
    ports: dict[int, int] = field(default_factory=dict)  # id → port of the server that took it
    acked_at: dict[int, float] = field(default_factory=dict)  # id → monotonic time of its ack
    failures: int = 0
    longest_gap: float = 0.0

    def __enter__(self) -> Self:
        with psycopg.connect(multi_host_conninfo(self.config), autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} (id bigint PRIMARY KEY)").format(
                    sql.Identifier(self.table)
                )
            )
        return super().__enter__()

    def work(self, stop: threading.Event) -> None:
        next_id = int(time.time() * 1000) * 1000
        insert = sql.SQL("INSERT INTO {} VALUES (%s)").format(sql.Identifier(self.table))
        conn: psycopg.Connection[Any] | None = None
        failed_at: float | None = None
        while not stop.is_set():
            try:
                if conn is None:
                    conn = psycopg.connect(multi_host_conninfo(self.config), autocommit=True)
                conn.execute(insert, (next_id,))
            except psycopg.Error:
                self.failures += 1
                failed_at = failed_at or time.monotonic()
                if conn is not None:
                    conn.close()
                conn = None
            else:
                self.acknowledged.append(next_id)
                self.ports[next_id] = conn.info.port
                self.acked_at[next_id] = time.monotonic()
                if failed_at is not None:
                    self.longest_gap = max(self.longest_gap, time.monotonic() - failed_at)
                    failed_at = None
            next_id += 1
            time.sleep(self.interval)
        if conn is not None:
            conn.close()

    def wait_for_more(self, count: int = 5, timeout: float = 30) -> None:
        """Wait until ``count`` more commits were acknowledged (writes go on)."""
        start = len(self.acknowledged)
        wait_until(lambda: len(self.acknowledged) >= start + count, timeout, what="writes to go on")

    def missing_on(self, node: str) -> set[int]:
        """Acknowledged ids that ``node`` does not have (ids acknowledged before the query
        starts: a row committed while it runs may be outside its snapshot)."""
        acknowledged = set(self.acknowledged)
        with connect(self.config, node) as conn:
            rows = conn.execute(
                sql.SQL("SELECT id FROM {}").format(sql.Identifier(self.table))
            ).fetchall()
        return acknowledged - {r[0] for r in rows}
