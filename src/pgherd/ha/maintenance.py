"""Starting PostgreSQL by hand while the cluster is in maintenance (``cluster pause``).

In maintenance the HA loop starts nothing (docs/failover.md), so ``pgherd node start`` and
``node restart`` start the server themselves, as under manual failover, where that cannot
make a second primary: a standby always, a primary only on the holder of the leader lease.
"""

from __future__ import annotations

import logging

from pgherd.errors import Refused
from pgherd.ha.supervisor import Supervisor
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.agent")


def start_by_hand(local: LocalNode, supervisor: Supervisor, leader: str | None) -> None:
    me = local.node.name
    if not local.instance.standby_configured and leader != me:
        holder = f"{leader} holds the leader lease" if leader else "nobody holds the leader lease"
        raise Refused(
            f"{me} is a primary by its files and {holder}: in maintenance mode it is not "
            "started as a second primary",
            "pgherd cluster resume (the HA loop then rejoins or promotes it), or "
            f"pgherd node rejoin {me}",
        )
    log.info("starting postgres by hand (maintenance mode: the HA loop starts nothing)")
    supervisor.start()
