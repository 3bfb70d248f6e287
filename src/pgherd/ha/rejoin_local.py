"""Bringing this node back under the leader, done by its own agent: follow when its WAL
is a prefix of the leader's, pg_rewind when it diverged, a new clone when rewind cannot
help. The same decisions as ``pgherd node rejoin`` (model/follow.py, model/timeline.py),
taken by the HA loop without an operator.

The node is configured as a standby before it starts again, so a diverged old primary
never runs as a primary beside the leader.
"""

from __future__ import annotations

import logging

from pgherd.clients.credential import Credential
from pgherd.clients.ops import OpsClient
from pgherd.errors import CommandFailed, PgherdError, Refused
from pgherd.ha.supervisor import Supervisor
from pgherd.model.follow import RejoinMethod, rejoin_plan
from pgherd.model.status import Role
from pgherd.model.timeline import Divergence, compare
from pgherd.pg.local_node import LocalNode
from pgherd.physical import clone, rewind, wal_position

log = logging.getLogger("pgherd.ha")


def divergence(local: LocalNode, leader: OpsClient, running: bool) -> Divergence:
    """Whether this node's WAL is a prefix of the leader's (both read now)."""
    theirs = leader.wal()
    if not (theirs.running and theirs.role is Role.PRIMARY):
        raise Refused(
            f"{theirs.name} does not run as the primary yet", "the next HA cycle tries again"
        )
    mine = wal_position.read(local, running)
    return compare(
        mine.parsed_history(),
        mine.position(),
        theirs.parsed_history(),
        theirs.lsn,
        local.node.name,
        theirs.name,
        mine.unknown,
    )


def configure_standby(local: LocalNode, upstream: str | None) -> None:
    """Settings of a standby of ``upstream`` (None: a standby of nobody yet, read-only)."""
    if upstream is not None:
        local.write_config(upstream=local.config.node(upstream))
        return
    local.instance.write_settings(local.node.name, local.settings(None))
    local.instance.write_access(*local.access_rules())
    local.instance.set_standby(True)


def rejoin(local: LocalNode, supervisor: Supervisor, leader_name: str, token: Credential) -> str:
    """Make this node a streaming standby of ``leader_name``; returns what it did."""
    leader = OpsClient(local.config.node(leader_name), token, timeout=10)
    running = supervisor.pid is not None
    verdict = divergence(local, leader, running)
    if running:
        # Shut down, its control file tells exactly where its WAL ends.
        supervisor.stop("fast", timeout=60)
        verdict = divergence(local, leader, False)
    me = local.node.name
    plan = rejoin_plan(verdict, False, wal_position.read(local, False).rewindable)
    done = f"{plan.method}: {plan.reason}"
    if plan.method is RejoinMethod.REWIND:
        try:
            leader.checkpoint()  # pg_rewind reads the new timeline from its control file
            # pg_rewind runs crash recovery in single-user mode first when needed, which
            # refuses standby mode: the standby settings are written afterwards.
            local.instance.set_standby(False)
            result = rewind.rewind(local, local.config.node(leader_name), timeout=3600)
            done = f"pg_rewind: {result.output}" if result.rewound else "no rewind was needed"
        except (CommandFailed, PgherdError) as exc:
            log.warning("pg_rewind failed (%s): cloning %s anew", exc.message, me)
            plan = rejoin_plan(verdict, True, False)
            done = f"pg_rewind failed ({exc.message}); cloned instead"
    if plan.method is RejoinMethod.CLONE:
        status = leader.status()
        result_clone = clone.clone(local.config, me, status, True, lambda _p: None)
        done = (
            f"cloned anew from {leader_name} "
            f"({result_clone.bytes_copied / 1e6:.0f} MB): {verdict.reason}"
        )
    configure_standby(local, leader_name)
    try:
        leader.create_slot(me)
    except PgherdError as exc:
        log.warning("could not create slot %s on %s: %s", me, leader_name, exc.message)
    supervisor.spawn_when_due()
    return done
