"""Follow: whether a standby may be pointed at another upstream (the primary or, for
cascading, another standby), and rejoin: how an old or failed node comes back.

Both are refused when the upstream is not a copy of the same cluster (system identifiers
differ) and follow is refused when the node's WAL diverged from the upstream's history:
``rejoin`` repairs that with pg_rewind or a new clone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from pgherd.model.checks import (
    Check,
    by_name,
    failed,
    known,
    passed,
    reachable,
    running_primaries,
    upstream_of,
)
from pgherd.model.cluster import NodeAt
from pgherd.model.status import NodeStatus, PgState, Role
from pgherd.model.timeline import Divergence, Verdict


def same_cluster(node: NodeStatus, upstream: NodeStatus) -> Check:
    if (
        node.system_identifier is None
        or upstream.system_identifier is None
        or node.system_identifier == upstream.system_identifier
    ):
        return passed("same-cluster", f"{node.name} and {upstream.name} are one cluster")
    return failed(
        "same-cluster",
        f"{upstream.name} belongs to another cluster: its system identifier "
        f"{upstream.system_identifier} differs from {node.name}'s {node.system_identifier}",
        "a standby can only follow a copy of its own cluster; check --upstream",
    )


def loop_through(
    statuses: Sequence[NodeStatus], node: str, upstream: str, node_at: NodeAt
) -> list[str] | None:
    """The chain upstream → … → node if following ``upstream`` would close a loop."""
    nodes = by_name(statuses)
    chain = [upstream]
    current = nodes.get(upstream)
    while current is not None:
        above = upstream_of(current, node_at)
        if above is None or above in chain:
            return None
        chain.append(above)
        if above == node:
            return chain
        current = nodes.get(above)
    return None


def default_upstream(statuses: Sequence[NodeStatus], node: str) -> str | None:
    primaries = [p for p in running_primaries(statuses) if p.name != node]
    return primaries[0].name if len(primaries) == 1 else None


def follow_checks(
    statuses: Sequence[NodeStatus],
    node: str,
    upstream: str,
    node_at: NodeAt,
    divergence: Divergence | None,
) -> tuple[Check, ...]:
    """Checks for pointing ``node`` at ``upstream``; ``divergence`` compares their WAL
    (None when it could not be read because a check below already fails)."""
    nodes = by_name(statuses)
    checks = [known(node, statuses), known(upstream, statuses)]
    mine, theirs = nodes.get(node), nodes.get(upstream)
    if mine is None or theirs is None:
        return tuple(checks)
    checks += [reachable(node, mine), reachable(upstream, theirs)]
    if any(c.blocks for c in checks):
        return tuple(checks)
    if node == upstream:
        checks.append(failed("upstream", f"{node} cannot follow itself", "pick another upstream"))
        return tuple(checks)
    if mine.role is Role.PRIMARY:
        checks.append(
            failed(
                "node-standby",
                f"{node} is a primary" + (" and running" if mine.state is PgState.RUNNING else ""),
                f"to bring an old primary back as a standby: pgherd node rejoin {node}",
            )
        )
        return tuple(checks)
    checks.append(passed("node-standby", f"{node} is a standby"))
    if theirs.state is not PgState.RUNNING:
        checks.append(
            failed(
                "upstream-running",
                f"{upstream} is {theirs.state}",
                f"start it first: pgherd node start {upstream}",
            )
        )
        return tuple(checks)
    checks.append(same_cluster(mine, theirs))
    chain = loop_through(statuses, node, upstream, node_at)
    if chain is not None:
        checks.append(
            failed(
                "no-loop",
                f"{' → '.join(chain)} streams from {node}: following {upstream} would make a "
                "loop with no primary in it",
                f"point {upstream} elsewhere first, or pick another upstream",
            )
        )
    if divergence is not None:
        checks.append(timeline_check(divergence, node))
    return tuple(checks)


def timeline_check(divergence: Divergence, node: str) -> Check:
    if divergence.can_follow:
        return passed("timeline", divergence.reason)
    return failed(
        "timeline",
        divergence.reason,
        f"bring it back with pg_rewind or a new clone: pgherd node rejoin {node}",
    )


class RejoinMethod(StrEnum):
    FOLLOW = "follow"  # nothing diverged: configure it as a standby and start it
    REWIND = "rewind"
    CLONE = "clone"


@dataclass(frozen=True)
class RejoinPlan:
    method: RejoinMethod
    reason: str


def rejoin_checks(
    statuses: Sequence[NodeStatus], node: str, node_at: NodeAt
) -> tuple[str | None, tuple[Check, ...]]:
    """The primary to rejoin and the checks before reading the node's WAL."""
    nodes = by_name(statuses)
    checks = [known(node, statuses)]
    mine = nodes.get(node)
    if mine is None:
        return None, tuple(checks)
    checks.append(reachable(node, mine))
    primaries = running_primaries(statuses)
    others = [p for p in primaries if p.name != node]
    primary = others[0].name if len(others) == 1 else None
    if not others:
        checks.append(
            failed(
                "one-primary",
                f"there is no running primary for {node} to rejoin",
                "promote a standby first: pgherd standby promote NODE",
            )
        )
    elif len(others) > 1:
        checks.append(
            failed(
                "one-primary",
                "more than one running primary: " + ", ".join(p.name for p in others),
                "stop all but one first",
            )
        )
    else:
        checks.append(passed("one-primary", f"{primary} is the running primary"))
    if mine.role is Role.PRIMARY and mine.state is PgState.RUNNING:
        checks.append(
            failed(
                "node-stopped",
                f"{node} is running as a primary"
                + (f" beside {primary}" if primary else "")
                + "; rejoining it discards what it wrote since it diverged",
                f"stop it first: pgherd node stop {node}",
            )
        )
    if primary is not None and mine.state is not PgState.UNREACHABLE:
        checks.append(same_cluster(mine, nodes[primary]))
    return primary, tuple(checks)


def rejoin_plan(divergence: Divergence, force_clone: bool, rewind_possible: bool) -> RejoinPlan:
    if force_clone:
        return RejoinPlan(RejoinMethod.CLONE, "a new clone was asked for (--force-clone)")
    if divergence.verdict is Verdict.FOLLOW:
        return RejoinPlan(RejoinMethod.FOLLOW, divergence.reason)
    if divergence.verdict is Verdict.RECLONE:
        return RejoinPlan(RejoinMethod.CLONE, divergence.reason)
    if not rewind_possible:
        return RejoinPlan(
            RejoinMethod.CLONE,
            f"{divergence.reason}; pg_rewind needs data checksums or wal_log_hints",
        )
    return RejoinPlan(RejoinMethod.REWIND, divergence.reason)
