"""Cloning standbys with pg_basebackup: slots, refusals, and system identifiers."""

from __future__ import annotations

import pytest

from pgherd.config import ClusterConfig
from pgherd.errors import DataDirNotEmpty, Refused
from pgherd.ha import status as status_mod
from pgherd.model import cluster as cluster_model
from pgherd.model.status import NodeStatus, PgState
from pgherd.pg import conf, passfile
from pgherd.pg.basebackup import Progress
from pgherd.pg.local_node import LocalNode
from pgherd.physical import clone
from tests.support import query, wait_until

pytestmark = pytest.mark.integration


def running_status(config: ClusterConfig, name: str) -> NodeStatus:
    local = LocalNode.open(config, name)
    state = PgState.RUNNING if local.instance.is_running else PgState.STOPPED
    return status_mod.collect(local, state, "running", None, 0, None)


def node_at(config: ClusterConfig) -> cluster_model.NodeAt:
    def find(host: str | None, port: int | None) -> str | None:
        node = config.node_at(host, port)
        return node.name if node else None

    return find


def test_clone_creates_a_slot_and_the_standby_streams(cluster: ClusterConfig) -> None:
    seen: list[Progress] = []
    result = clone.clone(cluster, "node2", running_status(cluster, "node1"), False, seen.append)

    assert result.slot_created
    assert result.slot == "node2"
    assert seen
    assert seen[-1].done_bytes == seen[-1].total_bytes > 0
    slots = query(cluster, "node1", "SELECT slot_name, slot_type FROM pg_replication_slots")
    assert ("node2", "physical") in slots
    standby = LocalNode.open(cluster, "node2")
    assert standby.instance.standby_configured
    written = conf.read_include(standby.node.data_dir)
    assert written["port"] == str(standby.node.port)
    assert written["primary_slot_name"] == "node2"
    assert f"port={cluster.node('node1').port}" in written["primary_conninfo"]
    assert f"passfile={cluster.passfile}" in written["primary_conninfo"]
    # The password itself is nowhere in the standby's configuration.
    secret = passfile.password_for(cluster.passfile, cluster.replication_user)
    for name in ("pgherd.conf", "postgresql.auto.conf", "postgresql.conf"):
        assert secret not in (standby.node.data_dir / name).read_text()

    standby.instance.start()
    query(cluster, "node1", "CREATE TABLE cloned (id int PRIMARY KEY)")
    query(cluster, "node1", "INSERT INTO cloned VALUES (1), (2)")
    wait_until(
        lambda: query(cluster, "node2", "SELECT count(*) FROM cloned") == [(2,)],
        what="rows to reach node2",
    )
    status = running_status(cluster, "node2")
    assert status.wal_receiver is not None
    assert status.wal_receiver.status == "streaming"
    assert status.wal_receiver.slot_name == "node2"
    assert status.system_identifier == running_status(cluster, "node1").system_identifier


def test_clone_into_a_non_empty_directory_is_refused(cluster: ClusterConfig) -> None:
    # node2 holds a cluster from the previous test (and runs).
    with pytest.raises(DataDirNotEmpty, match="is not empty") as refused:
        clone.clone(cluster, "node2", running_status(cluster, "node1"), False, lambda _p: None)
    assert "--force" in refused.value.hint
    with pytest.raises(Refused, match="is running in"):
        clone.clone(cluster, "node2", running_status(cluster, "node1"), True, lambda _p: None)


def test_clone_refuses_a_slot_in_use(cluster: ClusterConfig) -> None:
    upstream = running_status(cluster, "node1")
    with pytest.raises(Refused, match="slot 'node2' on node1 is in use"):
        clone.slot_plan(upstream, "node2")


def test_a_node_from_another_cluster_is_named_with_the_fix(cluster: ClusterConfig) -> None:
    # node3 gets its own initdb: same config, different system identifier.
    stranger = LocalNode.open(cluster, "node3")
    stranger.prepare_home()
    stranger.instance.initdb(passfile.password_for(cluster.passfile, cluster.superuser))
    stranger.write_config(upstream=cluster.node("node1"))
    stranger.instance.start()

    statuses = [running_status(cluster, n) for n in ("node1", "node2", "node3")]
    view = cluster_model.view(statuses, node_at(cluster))
    (row,) = [r for r in view.rows if r.name == "node3"]
    assert row.problem is not None
    assert "differs from the cluster's" in row.problem
    assert "re-clone it from the primary" in row.problem
    assert view.system_identifier == statuses[0].system_identifier
