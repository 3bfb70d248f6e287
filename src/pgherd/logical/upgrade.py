"""``pgherd upgrade plan|start|status|cutover``: a major-version upgrade by logical
replication into another node of the config (see :mod:`pgherd.model.upgrade`).

Runs where the CLI runs and drives the two agents; nothing is kept besides what the two
clusters themselves hold (a publication and a subscription named ``pgherd_upgrade``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from pgherd.clients.agent import AgentClient
from pgherd.clients.logical import LogicalClient
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.errors import InvalidInput, PgherdError, Refused, TimedOut
from pgherd.logical import source as source_mod
from pgherd.model import upgrade as model
from pgherd.model.lsn import Lsn
from pgherd.model.publication import PublicationSpec
from pgherd.model.subscription import SequenceSync, SubscriptionSpec, SubscriptionStatus
from pgherd.model.upgrade import NAME, Phase, UpgradePlan

Step = Callable[[str], None]


def plan(
    config: ClusterConfig, source: str, target: str, dbname: str, token: str | None
) -> UpgradePlan:
    if source == target:
        raise InvalidInput("--from and --to name the same node", "upgrade into another node")
    src, dst = config.node(source), config.node(target)
    src_status, dst_status = AgentClient(src).status(), AgentClient(dst).status()
    src_tables = LogicalClient(src, token).tables(dbname) if _up(src_status) else []
    dst_tables = LogicalClient(dst, token).tables(dbname) if _up(dst_status) else []
    return UpgradePlan(
        source=source,
        target=target,
        source_version=_version(src_status.version_num),
        target_version=_version(dst_status.version_num),
        checks=tuple(model.checks(src_status, dst_status, src_tables, dst_tables)),
        steps=model.steps(source, target),
    )


def _up(status: object) -> bool:
    return getattr(status, "state", None) == "running"


def _version(num: int | None) -> str | None:
    return f"{num // 10000}.{num % 10000}" if num else None


def start(
    config: ClusterConfig, source: str, target: str, dbname: str, token: str | None, step: Step
) -> UpgradePlan:
    checked = plan(config, source, target, dbname, token)
    errors = [c for c in checked.checks if c.level is model.Level.ERROR]
    if errors:
        raise Refused(f"cannot start the upgrade: {errors[0].text}", errors[0].fix)
    src, dst = LogicalClient(config.node(source), token), LogicalClient(config.node(target), token)
    if not any(p.name == NAME for p in src.publications(dbname)):
        result = src.create_publication(PublicationSpec(name=NAME, dbname=dbname, all_tables=True))
        step(
            f"{source}: publication {NAME} FOR ALL TABLES ({len(result.publication.tables)} tables)"
        )
        for warning in result.warnings:
            step(f"warning: {warning}")
    conninfo = source_mod.for_node(config, source, dbname)
    dst.create_subscription(
        SubscriptionSpec(
            name=NAME,
            dbname=dbname,
            conninfo=conninfo,
            publications=(NAME,),
            sync_schema="database",
        )
    )
    step(f"{target}: schema copied from {source}; subscription {NAME} created, copying tables")
    return checked


@dataclass(frozen=True)
class UpgradeStatus:
    phase: Phase
    subscription: SubscriptionStatus | None


def status(config: ClusterConfig, target: str, dbname: str | None) -> UpgradeStatus:
    client = LogicalClient(config.node(target))
    if not any(s.name == NAME for s in client.subscriptions()):
        return UpgradeStatus(Phase.NOT_STARTED, None)
    sub = client.subscription_status(NAME, dbname)
    return UpgradeStatus(model.phase(sub), sub)


def source_of(config: ClusterConfig, sub: SubscriptionStatus) -> NodeConfig:
    node = config.node_at(sub.subscription.host, sub.subscription.port)
    if node is None:
        raise Refused(
            f"the upgrade's source {sub.subscription.host}:{sub.subscription.port} is not a "
            "node of the config",
            "run the cut-over with the config that lists both clusters",
        )
    return node


@dataclass(frozen=True)
class CutoverReport:
    source: str
    target: str
    stop_lsn: Lsn
    seconds: float
    sequences: list[SequenceSync]


def cutover(
    config: ClusterConfig,
    target: str,
    dbname: str | None,
    token: str | None,
    timeout: float,
    margin: int,
    step: Step,
) -> CutoverReport:
    started = time.monotonic()
    current = status(config, target, dbname)
    if current.subscription is None:
        raise Refused(f"no upgrade into {target} was started", "run `pgherd upgrade start`")
    blockers = model.cutover_blockers(current.subscription)
    if blockers:
        raise Refused(f"not ready for the cut-over: {blockers[0]}", "see `pgherd upgrade status`")
    src_node = source_of(config, current.subscription)
    src = LogicalClient(src_node, token)
    dst = LogicalClient(config.node(target), token)
    stop_lsn = src.stop_writes(timeout)
    step(f"{src_node.name}: read-only now, no transaction writing (WAL at {stop_lsn})")
    try:
        _wait_confirmed(dst, dbname, stop_lsn, timeout)
    except PgherdError:
        src.resume_writes()
        step(f"{src_node.name}: writes allowed again")
        raise
    step(f"{target}: has everything up to {stop_lsn} (lag zero)")
    synced = dst.sync_sequences(NAME, dbname, margin)
    moved = sum(1 for s in synced if s.new_value is not None)
    step(f"{target}: {moved} sequences moved past {src_node.name}'s values (+{margin} steps)")
    dst.drop_subscription(NAME, dbname, local_only=False)
    src.drop_publication(NAME, current.subscription.subscription.source_dbname or "postgres")
    step(f"dropped subscription and publication {NAME}; {target} stands on its own")
    return CutoverReport(src_node.name, target, stop_lsn, time.monotonic() - started, synced)


def _wait_confirmed(client: LogicalClient, dbname: str | None, lsn: Lsn, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last: SubscriptionStatus | None = None
    while time.monotonic() < deadline:
        last = client.subscription_status(NAME, dbname)
        if last.confirmed_lsn is not None and last.confirmed_lsn >= lsn:
            return
        time.sleep(0.2)
    raise TimedOut(
        f"the target did not confirm {lsn} within {timeout:.0f} s "
        f"(confirmed {last.confirmed_lsn if last else '?'})",
        "see `pgherd subscription status` on the target; the source was made writable again",
    )
