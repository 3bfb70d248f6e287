"""What an agent does when it stops: PostgreSQL runs on, for the next agent to adopt.

An agent is stopped to be restarted far more often than to take its node down —
``systemctl restart`` after an upgrade of pgherd, a unit change, a crash with
``Restart=always`` — and restarting PostgreSQL each time would cost every client its
connections and, on a primary, a failover. So SIGTERM ends the agent only: the postmaster
runs on under its keeper (pg/keeper.py), and the next agent adopts it.

A primary under automatic failover must still never take writes past its lease with no
agent to fence it. Its agent renews the lease one last time for
``ha.agent_restart_grace`` seconds (10 by default) and hands that deadline to the keeper:
the next agent has that long to start and renew the lease itself; if none does, the keeper
stops PostgreSQL (immediate shutdown) before the lease can expire, and a standby takes
over. A node whose PostgreSQL was stopped on purpose gives its lease up, as before: a
standby takes over at once. To take a node down, stop PostgreSQL through its agent first
(``pgherd node stop NODE``, after a switchover if it is the primary), then the agent.
"""

from __future__ import annotations

import logging
import time

from pgherd.dcs.base import StoreUnavailable
from pgherd.ha.loop import HaLoop
from pgherd.ha.supervisor import Supervisor
from pgherd.model.status import PgState, Role

log = logging.getLogger("pgherd.agent")

CYCLE_WAIT = 10.0  # seconds to let an HA cycle in progress (a promotion, say) finish


def hand_over(ha: HaLoop | None, supervisor: Supervisor, grace: float) -> str:
    """Stop the HA loop and leave PostgreSQL to the next agent; returns what was done,
    for the log."""
    pid = supervisor.pid
    running = pid is not None and supervisor.state() is PgState.RUNNING
    if ha is None:
        if running:
            return f"PostgreSQL keeps running (pid {pid}) for the next agent to adopt"
        return "PostgreSQL is not running"
    if not ha.stop(wait=CYCLE_WAIT):
        log.warning("an HA cycle still runs after %.0f s; stopping anyway", CYCLE_WAIT)
    primary = running and ha.last_local.role is Role.PRIMARY
    if not ha.executor.lease.held():
        if running:
            return f"PostgreSQL keeps running (pid {pid}) for the next agent to adopt"
        return "PostgreSQL is not running"
    if not primary:
        ha.release()
        return "PostgreSQL is not running as the primary: gave the lease up"
    return _extend_lease(ha, supervisor, max(grace, ha.settings.ttl), pid)


def _extend_lease(ha: HaLoop, supervisor: Supervisor, seconds: float, pid: int | None) -> str:
    sent_at = time.monotonic()
    try:
        renewed = ha.executor.store().renew_leader(ha.me, seconds)
    except StoreUnavailable as exc:
        renewed = False
        log.warning("could not extend the lease: %s", exc.message)
    if not renewed:
        return (
            f"PostgreSQL keeps running as the primary (pid {pid}) until its lease ends, "
            "unless an agent renews it by then"
        )
    supervisor.set_fence(sent_at + seconds - ha.fence.margin)
    return (
        f"PostgreSQL keeps running as the primary (pid {pid}); its lease is extended to "
        f"{seconds:g} s: the next agent must renew it by then, or PostgreSQL is stopped "
        "and a standby takes over"
    )
