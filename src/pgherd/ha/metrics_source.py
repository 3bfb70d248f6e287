"""Reads the node for ``GET /metrics`` when Prometheus scrapes (``model/metrics.py`` names
the families): the agent's status, one connection for what the node sends and its
archiver, and the HA loop's last view of the store. A server that is down or does not
answer still gives a page (``pgherd_up 0``): an empty scrape would look like a dead agent.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import psycopg
from prometheus_client.metrics_core import Metric

from pgherd.errors import PgherdError
from pgherd.ha.observe import standby_position
from pgherd.model import metrics as model
from pgherd.model.archive_api import PusherState
from pgherd.model.history import SenderState
from pgherd.model.status import NodeStatus, PgState, Role
from pgherd.pg import archive_sql, history_sql
from pgherd.pg.local_node import LocalNode

if TYPE_CHECKING:
    from pgherd.ha.loop import HaLoop

log = logging.getLogger("pgherd.agent")


class NodeCollector:
    """A ``prometheus_client`` collector over one agent's node."""

    def __init__(
        self,
        local: LocalNode,
        status: Callable[[], NodeStatus],
        ha: HaLoop | None,
        pusher: Callable[[], PusherState] | None = None,
        slot_copies: Callable[[], tuple[tuple[str, bool], ...]] = tuple,
        slots_waiting: Callable[[], tuple[str, ...]] = tuple,
    ) -> None:
        self.local = local
        self.status = status
        self.ha = ha
        self.pusher = pusher
        self.slot_copies = slot_copies
        self.slots_waiting = slots_waiting

    def collect(self) -> Iterator[Metric]:
        yield from model.families(self.read())

    def read(self) -> model.NodeMetrics:
        status = self.status()
        sending, failed, pending = self._sending(status)
        answers = status.state is PgState.RUNNING and status.role is not Role.UNKNOWN
        found = model.NodeMetrics(
            pg=status.state,
            role=status.role,
            answers=answers and sending is not None,
            automatic=self.ha is not None,
            is_leader=answers and status.role is Role.PRIMARY,
            timeline=status.timeline,
            position=status.current_lsn
            if status.role is Role.PRIMARY
            else standby_position(status.receive_lsn, status.replay_lsn),
            sending=sending,
            slots=status.slots,
            archive_failed=failed,
            archive_pending=pending,
            restarts=status.restarts,
            mesh_workers=status.mesh_workers,
            pusher=self.pusher() if self.pusher is not None else None,
            slot_copies=self.slot_copies(),
            slots_waiting=self.slots_waiting(),
        )
        if self.ha is None:
            return found
        ha = self.ha.status()
        now = time.time()
        seen = tuple(
            model.MemberSeen(name, checkin.age(now))
            for name, checkin in sorted(self.ha.last_view.checkins.items())
        )
        return model.NodeMetrics(
            **{
                **found.__dict__,
                "is_leader": ha.holds_lease and ha.leader == self.local.node.name,
                "lease_left": ha.lease_left if ha.holds_lease else 0.0,
                "paused": ha.paused is not None,
                "store_ok": ha.store_ok,
                "members": seen,
            }
        )

    def _sending(self, status: NodeStatus) -> tuple[SenderState | None, int | None, int | None]:
        """What the node sends and its archiver's counts (None, None, None when down)."""
        if status.state is not PgState.RUNNING:
            return None, None, None
        try:
            with self.local.instance.connect() as conn:
                sending = history_sql.sender_state(conn)
                archiver = archive_sql.archiver_state(conn)
        except (PgherdError, psycopg.Error) as exc:
            log.info("metrics: could not read the node: %s", exc)
            return None, None, None
        if archiver.archive_mode == "off" or archiver.in_recovery:
            return sending, None, None
        return sending, archiver.failed_count, archiver.ready_count
