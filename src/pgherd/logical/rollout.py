"""``pgherd ddl NODE SQL`` across nodes: the publisher's dry run says what the change
touches; the subscribers of those tables (and the other members of a mesh that holds
them) and the publisher then run it, in the order
:func:`pgherd.model.ddl.order` chooses; subscriptions are refreshed when tables were
added. Stops at the first failure and says where.

Runs where the CLI (or the console) runs and talks only to agents.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pgherd.clients.logical import LogicalClient
from pgherd.clients.mesh import MeshClient
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.errors import AgentUnreachable, PgherdError, Refused
from pgherd.model import ddl as model
from pgherd.model.ddl import DdlEffect, DdlReport, DdlTarget, StepOutcome
from pgherd.model.subscription import SubscriptionInfo

STREAM_WAIT = 30.0  # seconds to wait for mesh members to run a change from the stream


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
    wait: float = STREAM_WAIT,
) -> DdlReport:
    effect, targets, how, reason = plan(config, node, statement, dbname, token)
    publisher = DdlTarget(node=node, dbname=dbname, role="publisher")
    sequence = model.sequence_of(publisher, targets, how)
    meshes = sorted({m for t in targets for m in t.meshes})
    steps: list[StepOutcome] = []
    captured: tuple[tuple[str, int], ...] = ()
    for index, target in enumerate(sequence):
        client = LogicalClient(config.node(target.node), token)
        is_publisher = target.role == "publisher"
        try:
            applied = client.ddl_apply(
                statement, target.dbname, is_publisher, meshes if is_publisher else ()
            )
            message = applied.message
            if is_publisher and applied.captured:
                captured = applied.captured
                message += f"; logged for mesh {', '.join(m for m, _i in captured)}"
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
    for target in (t for t in targets if t.by_stream):
        steps.append(_carried(config, token, node, target, captured, wait))
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


def _carried(
    config: ClusterConfig,
    token: str | None,
    publisher: str,
    target: DdlTarget,
    captured: tuple[tuple[str, int], ...],
    wait: float,
) -> StepOutcome:
    """A mesh member gets the change from the publisher's stream: wait (a while) until its
    worker has run it, or say why not yet."""
    client = MeshClient(config.node(target.node), token or "", timeout=10)
    wanted = [(mesh, ident) for mesh, ident in captured if mesh in target.meshes]
    deadline = time.monotonic() + wait
    started = time.monotonic()
    while True:
        try:
            done = all(
                any(d.origin_node == publisher and d.id == ident for d in client.ddl_log(mesh))
                for mesh, ident in wanted
            )
        except PgherdError as exc:
            return StepOutcome(
                node=target.node,
                role=target.role,
                ok=True,
                message=f"carried by the mesh's stream; could not tell whether it ran yet "
                f"({exc.message})",
            )
        if done:
            return StepOutcome(
                node=target.node,
                role=target.role,
                ok=True,
                message=f"ran it from {publisher}'s stream after "
                f"{time.monotonic() - started:.1f} s",
            )
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    worker = next(
        (w for w in client.workers() if w.source == publisher and w.mesh in target.meshes), None
    )
    if worker is not None and worker.error:
        return StepOutcome(
            node=target.node,
            role=target.role,
            ok=False,
            message=f"its worker from {publisher} stopped: {worker.error}",
        )
    return StepOutcome(
        node=target.node,
        role=target.role,
        ok=True,
        message=f"carried by {publisher}'s stream; not run yet after {wait:.0f} s "
        f"(its worker: {worker.state if worker else 'not running'}); it runs when the "
        "worker reaches it",
    )
