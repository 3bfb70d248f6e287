"""Promoting this node: end recovery, start a new timeline, drop the standby settings."""

from __future__ import annotations

import time
from collections.abc import Callable

from pgherd.errors import Refused
from pgherd.model.node_ops import PromoteResult
from pgherd.model.timeline import parse_history
from pgherd.pg import queries, replication
from pgherd.pg.local_node import LocalNode
from pgherd.physical import wal_position


def promote(
    local: LocalNode, timeout: float = 60, while_waiting: Callable[[], None] | None = None
) -> PromoteResult:
    """End recovery and wait for it; ``while_waiting`` is called while it takes (the HA
    loop keeps its lease there: a promotion can take longer than a lease on a loaded
    machine, restore_command runs for every timeline history it looks for)."""
    name = local.node.name
    with local.instance.connect() as conn:
        if not replication.in_recovery(conn):
            raise Refused(f"{name} is already a primary", "there is nothing to promote")
        started = time.monotonic()
        replication.request_promotion(conn)
        replication.wait_promoted(conn, timeout, while_waiting=while_waiting)
        seconds = time.monotonic() - started
        after = queries.server_state(conn)
    # The timeline it was on is the last one the new timeline's history lists (a standby
    # that lost its upstream may not know its replay timeline from SQL).
    history = parse_history(*wal_position.newest_history(local))
    before_tli = history.switches[-1].timeline if history.switches else after.timeline
    # PostgreSQL removed standby.signal; rewrite pgherd.conf without the upstream so that
    # the node is a primary in its files too (primary_conninfo is ignored by a primary).
    local.write_config(upstream=None)
    return PromoteResult(
        name=name,
        timeline_before=before_tli,
        timeline_after=after.timeline,
        lsn=after.current_lsn,
        seconds=round(seconds, 4),
    )
