"""``pgherd ddl NODE SQL`` across nodes: the publisher's dry run says what the change
touches; the subscribers of those tables (and the other members of a mesh that holds
them) and the publisher then run it, in the order
:func:`pgherd.model.ddl.order` chooses; subscriptions are refreshed when tables were
added. Stops at the first failure and says where.

Runs where the CLI (or the console) runs and talks only to agents.
"""

from __future__ import annotations

from collections.abc import Callable

from pgherd.clients.logical import LogicalClient
from pgherd.clients.mesh import MeshClient
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.errors import AgentUnreachable, PgherdError, Refused
from pgherd.model import ddl as model
from pgherd.model.ddl import DdlEffect, DdlReport, DdlTarget, StepOutcome
from pgherd.model.subscription import SubscriptionInfo


def subscribers(
    config: ClusterConfig, publisher: NodeConfig, dbname: str, token: str | None
) -> list[tuple[NodeConfig, SubscriptionInfo]]:
    """Every subscription, on the other nodes, that reads ``dbname`` on ``publisher``."""
    found = []
    for node in config.nodes:
        if node.name == publisher.name:
            continue
        try:
            subs = LogicalClient(node, token).subscriptions()
        except AgentUnreachable:
            raise Refused(
                f"the agent of {node.name} does not answer, so pgherd cannot tell whether it "
                "subscribes to the tables this change touches",
                f"start it (pgherd node start {node.name} / its agent), then retry",
            ) from None
        for sub in subs:
            source = config.node_at(sub.host, sub.port)
            if (
                source is not None
                and source.name == publisher.name
                and ((sub.source_dbname or "postgres") == dbname)
            ):
                found.append((node, sub))
    return found


def plan(
    config: ClusterConfig, node: str, statement: str, dbname: str, token: str | None
) -> tuple[DdlEffect, list[DdlTarget], model.Order, str]:
    publisher = config.node(node)
    effect = LogicalClient(publisher, token).ddl_dry_run(statement, dbname)
    wanted = effect.publications
    by_node: dict[tuple[str, str], list[str]] = {}
    for sub_node, sub in subscribers(config, publisher, dbname, token):
        if wanted & set(sub.publications):
            by_node.setdefault((sub_node.name, sub.dbname), []).append(sub.name)
    targets = [
        DdlTarget(node=n, dbname=db, role="subscriber", subscriptions=tuple(subs))
        for (n, db), subs in sorted(by_node.items())
    ]
    specs = MeshClient(publisher, token or "", timeout=30).specs()
    named = {(t.node, t.dbname) for t in targets}
    targets += [
        t
        for t in model.mesh_targets(specs, publisher.name, dbname, effect)
        if (t.node, t.dbname) not in named
    ]
    how, reason = model.order(effect)
    return effect, targets, how, reason


def run(
    config: ClusterConfig,
    node: str,
    statement: str,
    dbname: str,
    token: str | None,
    on_step: Callable[[StepOutcome], None] = lambda _s: None,
) -> DdlReport:
    effect, targets, how, reason = plan(config, node, statement, dbname, token)
    publisher = DdlTarget(node=node, dbname=dbname, role="publisher")
    sequence = model.sequence_of(publisher, targets, how)
    steps: list[StepOutcome] = []
    for index, target in enumerate(sequence):
        client = LogicalClient(config.node(target.node), token)
        try:
            message = client.ddl_apply(statement, target.dbname, target.role == "publisher")
        except PgherdError as exc:
            steps.append(
                StepOutcome(node=target.node, role=target.role, ok=False, message=exc.one_line())
            )
            on_step(steps[-1])
            return DdlReport(
                publisher=node,
                order=how,
                reason=reason,
                effect=effect,
                steps=tuple(steps),
                not_run=tuple(t.node for t in sequence[index + 1 :]),
            )
        steps.append(StepOutcome(node=target.node, role=target.role, ok=True, message=message))
        on_step(steps[-1])
    if any(t.new for t in effect.touched):
        for target in targets:
            client = LogicalClient(config.node(target.node), token)
            for sub in target.subscriptions:
                client.subscription_action("refresh", sub, target.dbname)
                steps.append(
                    StepOutcome(
                        node=target.node,
                        role="subscriber",
                        ok=True,
                        message=f"refreshed subscription {sub!r} (new tables are copied)",
                    )
                )
                on_step(steps[-1])
    return DdlReport(publisher=node, order=how, reason=reason, effect=effect, steps=tuple(steps))
