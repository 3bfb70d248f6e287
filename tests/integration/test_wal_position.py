"""Where a running standby's WAL ends when it is not streaming, and on which timeline.

A standby that lost its upstream after a timeline switch used to be "unknown until shut
down" (its replay position is past the switch point: it may have taken the switch, or
replayed its old timeline further). Its own walsender answers that (IDENTIFY_SYSTEM), so
follow and rejoin can decide while it runs.
"""

from __future__ import annotations

import pytest

from pgherd.config import ClusterConfig
from pgherd.ha import status as status_mod
from pgherd.model.status import NodeStatus, PgState
from pgherd.pg.local_node import LocalNode
from pgherd.physical import clone, wal_position
from tests.support import query, wait_until

pytestmark = pytest.mark.integration


def running_status(config: ClusterConfig, name: str) -> NodeStatus:
    return status_mod.collect(
        LocalNode.open(config, name), PgState.RUNNING, "running", None, 0, None
    )


def receiving(config: ClusterConfig, name: str) -> bool:
    return bool(
        query(config, name, "SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming'")
    )


def test_a_standby_that_took_the_switch_then_lost_its_upstream(cluster: ClusterConfig) -> None:
    """node3 cascades from node2; node2 is promoted (timeline 2), node3 streams the new
    timeline, then node2 stops: node3 replays past the switch point on timeline 2."""
    clone.clone(cluster, "node2", running_status(cluster, "node1"), False, lambda _p: None)
    LocalNode.open(cluster, "node2").instance.start()
    clone.clone(cluster, "node3", running_status(cluster, "node2"), False, lambda _p: None)
    node3 = LocalNode.open(cluster, "node3")
    node3.instance.start()
    wait_until(lambda: receiving(cluster, "node3"), what="node3 to stream from node2")

    node2 = LocalNode.open(cluster, "node2")
    node2.instance.promote()
    query(cluster, "node2", "CREATE TABLE after_switch AS SELECT 1 AS v")
    wait_until(lambda: query(cluster, "node3", "SELECT to_regclass('after_switch')") != [(None,)])
    node2.instance.stop("fast")
    wait_until(lambda: not receiving(cluster, "node3"), what="node3 to lose node2")

    wal = wal_position.read(node3, True)
    assert (wal.timeline, wal.history_timeline, wal.unknown) == (2, 2, "")
    assert wal.lsn is not None
    assert wal.lsn > wal.parsed_history().switches[0].lsn


def test_a_standby_past_the_switch_on_its_old_timeline_is_known_to_have_diverged(
    cluster: ClusterConfig,
) -> None:
    """node3 (now a standby of node1, timeline 1) holds timeline 2's history but replayed
    timeline 1 past its switch point: it diverged, and says so with its position."""
    node3 = LocalNode.open(cluster, "node3")
    node3.instance.stop("fast")
    clone.clone(cluster, "node3", running_status(cluster, "node1"), True, lambda _p: None)
    node3.instance.start()
    query(cluster, "node1", "CREATE TABLE only_on_one AS SELECT 1 AS v")
    wait_until(lambda: query(cluster, "node3", "SELECT to_regclass('only_on_one')") != [(None,)])
    history = cluster.node("node2").data_dir / "pg_wal" / "00000002.history"
    LocalNode.open(cluster, "node1").instance.stop("fast")
    wait_until(lambda: not receiving(cluster, "node3"), what="node3 to lose node1")
    node3.user.write_file(node3.node.data_dir / "pg_wal" / history.name, history.read_text())

    wal = wal_position.read(node3, True)
    switch = wal.parsed_history().switches[0].lsn
    assert (wal.timeline, wal.history_timeline, wal.unknown) == (1, 2, "")
    assert wal.lsn is not None and wal.lsn > switch
