"""``pgherd doctor``'s checks over the whole cluster: every node's status and facts, read
through the agents, judged by the pure checks of ``model/doctor.py`` and
``model/slots.py``. Shared by the CLI and the console's banner."""

from __future__ import annotations

from pgherd.clients.agent import AgentClient, fan_out, statuses
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import StoreUnavailable
from pgherd.dcs.open import open_store
from pgherd.errors import AgentError, AgentUnreachable
from pgherd.model import doctor as checks
from pgherd.model import slots
from pgherd.model.doctor import Finding, NodeFacts
from pgherd.model.status import Role


def findings(config: ClusterConfig, node: str | None = None) -> list[Finding]:
    """What doctor finds on ``node`` (or every node), most severe first."""
    nodes = [config.node(node)] if node else list(config.nodes)
    all_statuses = statuses(config.nodes)

    def facts_of(n: NodeConfig) -> NodeFacts | None:
        try:
            return AgentClient(n).facts()
        except (AgentUnreachable, AgentError):
            return None

    def node_at(host: str | None, port: int | None) -> str | None:
        found = config.node_at(host, port)
        return found.name if found else None

    found: list[Finding] = [
        f
        for f in checks.check_tls(config.tls_on)
        + checks.check_cluster(all_statuses, config.independent)
        + slots.findings(all_statuses, node_at)
        + slots.removed_in_use(all_statuses, _owned_slots(config), set(config.slots))
        if node is None or f.node in (None, node)
    ]
    by_name = {s.name: s for s in all_statuses}
    for facts in fan_out(nodes, facts_of):
        if facts is not None:
            standby = by_name[facts.name].role is Role.STANDBY
            found.extend(checks.check_node(facts, len(config.nodes), standby, config.tls_on))
    return checks.ordered(found)


def _owned_slots(config: ClusterConfig) -> dict[str, frozenset[str]]:
    """The permanent slots pgherd made on each node, as the store records them (none
    without a store, or when it does not answer: the other checks say so)."""
    if config.ha is None:
        return {}
    try:
        store = open_store(config, timeout=2.0, quick=True)
        try:
            state = dcs_state.parse(store.config())
        finally:
            store.close()
    except StoreUnavailable:
        return {}
    return {n.name: state.slots_owned_by(n.name) for n in config.nodes}
