"""Before a subscription is created: would it close a loop, a cycle of subscriptions that
sends a change back to the node that made it (model/forwarding.py decides)? Read through
the agents: every node's subscriptions and the tables their publications hold.

Only publishers that are nodes of the config are seen; a cycle through another cluster is
the operator's to avoid.
"""

from __future__ import annotations

from pgherd.clients.agent import AgentClient, fan_out
from pgherd.clients.logical import LogicalClient
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.errors import PgherdError, Refused
from pgherd.model.forwarding import Edge, Loop, loops
from pgherd.model.publication import PG16, PublicationInfo
from pgherd.model.subscription import SubscriptionInfo, SubscriptionSpec
from pgherd.pg import remote


def _vertex(node: str, dbname: str) -> str:
    return f"{node}/{dbname}"


def _tables(publications: list[PublicationInfo], names: tuple[str, ...]) -> frozenset[str]:
    """What ``names`` publish, as schema.table; ``*`` for all tables, ``schema.*`` for a
    schema (model/forwarding.py matches them)."""
    found: set[str] = set()
    for publication in publications:
        if publication.name not in names:
            continue
        if publication.all_tables:
            found.add("*")
        found.update(f"{s}.*" for s in publication.schemas)
        found.update(f"{t.schema_name}.{t.name}" for t in publication.tables)
    return frozenset(found)


class _Publications:
    """Each publisher's publications, read once per database."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._seen: dict[tuple[str, str], list[PublicationInfo]] = {}

    def of(self, node: NodeConfig, dbname: str) -> list[PublicationInfo]:
        key = (node.name, dbname)
        if key not in self._seen:
            self._seen[key] = LogicalClient(node, self.token).publications(dbname)
        return self._seen[key]


def edges(config: ClusterConfig, token: str | None) -> list[Edge]:
    """Every subscription of the config's nodes whose publisher is a node of the config."""
    found: list[Edge] = []
    publications = _Publications(token)

    def subscriptions(node: NodeConfig) -> list[SubscriptionInfo]:
        try:
            return LogicalClient(node, token).subscriptions()
        except PgherdError as exc:
            raise Refused(
                f"cannot read {node.name}'s subscriptions ({exc.message}), so pgherd cannot "
                "tell whether this subscription closes a loop",
                f"start {node.name}'s agent, then retry",
            ) from None

    for node, infos in zip(config.nodes, fan_out(config.nodes, subscriptions), strict=True):
        for info in infos:
            publisher = config.node_at(info.host, info.port)
            if publisher is None:
                continue
            source_db = info.source_dbname or info.dbname
            tables = _tables(publications.of(publisher, source_db), info.publications)
            found.append(
                Edge(
                    name=info.name,
                    publisher=_vertex(publisher.name, source_db),
                    subscriber=_vertex(node.name, info.dbname),
                    tables=tables,
                    forwards=info.origin != "none",
                )
            )
    return found


def refuse_loops(
    config: ClusterConfig, token: str | None, node: str, spec: SubscriptionSpec
) -> None:
    """Refuse, changing nothing, a subscription that closes a loop."""
    shown = remote.describe(spec.conninfo)
    publisher = publisher_in(config, shown.get("host"), shown.get("port"))
    if publisher is None:
        return
    source_db = shown.get("dbname", spec.dbname)
    new = Edge(
        name=spec.name,
        publisher=_vertex(publisher.name, source_db),
        subscriber=_vertex(node, spec.dbname),
        tables=_tables(_Publications(token).of(publisher, source_db), spec.publications),
        forwards=spec.origin != "none",
    )
    found = loops(edges(config, token), new)
    if found:
        raise Refused(
            f"subscription {spec.name!r} would close a loop: {found[0].describe()} — a change "
            "would come back to the node that made it",
            _hint(config, node, found[0]),
        )


def publisher_in(config: ClusterConfig, hosts: str | None, ports: str | None) -> NodeConfig | None:
    """The node of this config a conninfo names. A multi-host one (an HA publisher that a
    subscription follows through its failovers, ``target_session_attrs=read-write``) names
    several: the first of them in this config stands for its cluster."""
    host_list = (hosts or "").split(",")
    port_list = (ports or "5432").split(",")
    if len(port_list) == 1:
        port_list *= len(host_list)
    for host, port in zip(host_list, port_list, strict=False):
        found = config.node_at(host or None, int(port) if port.isdigit() else 5432)
        if found is not None:
            return found
    return None


def _hint(config: ClusterConfig, node: str, loop: Loop) -> str:
    try:
        version = AgentClient(config.node(node), timeout=5).status().version_num or 0
    except PgherdError:
        version = 0
    mesh = "for two-way replication use a mesh (pgherd mesh create), which cuts loops itself"
    if version and version < PG16:
        return (
            f"PostgreSQL {version // 10000} cannot filter by origin (origin = none is 16+): {mesh}"
        )
    names = ", ".join(e.name for e in loop.edges)
    return f"{mesh}, or create two of the loop's subscriptions ({names}) with --origin none"
