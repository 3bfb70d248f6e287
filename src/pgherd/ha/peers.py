"""What the other nodes' agents say, for decisions an agent takes alone at boot.

Until the HA loop and its leader lease exist, this is the one guard against an old
primary coming back as a second primary: a node whose files say "primary" does not start
while another node of the same cluster runs as the primary (after a failover, say). It
waits, stopped, for ``pgherd node rejoin``.
"""

from __future__ import annotations

from pgherd.clients.agent import AgentClient, fan_out
from pgherd.config_lite import DataNode
from pgherd.errors import AgentError, AgentUnreachable
from pgherd.model.status import NodeStatus, PgState, Role
from pgherd.pg.local_node import LocalNode


def other_primary(local: LocalNode, timeout: float = 1.0) -> NodeStatus | None:
    """Another node of this cluster that runs as the primary, if one answers."""
    peers = [n for n in local.config.nodes if n.name != local.node.name]
    if not peers:
        return None
    mine = local.instance.controldata().system_identifier

    def ask(node: DataNode) -> NodeStatus | None:
        try:
            return AgentClient(node, timeout=timeout).status()
        except (AgentUnreachable, AgentError):
            return None

    for status in fan_out(peers, ask):
        if (
            status is not None
            and status.role is Role.PRIMARY
            and status.state is PgState.RUNNING
            and status.system_identifier == mine
        ):
            return status
    return None
