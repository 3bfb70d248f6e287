"""Safety checks: each one passes or fails with a reason that carries its numbers.

An operation runs only when all of its checks pass (or the user accepted a stated risk
with ``--force``, which marks the check as overridden, never as passed). ``--dry-run``
shows them all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgherd.model.cluster import NodeAt
from pgherd.model.status import NodeStatus, PgState, Role


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    reason: str
    hint: str = ""
    overridden: bool = False  # failed, but the user accepted the risk with --force

    @property
    def blocks(self) -> bool:
        return not self.ok and not self.overridden


def passed(name: str, reason: str) -> Check:
    return Check(name, True, reason)


def failed(name: str, reason: str, hint: str = "") -> Check:
    return Check(name, False, reason, hint)


def forceable(check: Check, force: bool) -> Check:
    """A failed check that ``--force`` may override (the reason says what is risked)."""
    if check.ok or not force:
        return check
    return Check(check.name, False, check.reason, check.hint, overridden=True)


def blocking(checks: Sequence[Check]) -> list[Check]:
    return [c for c in checks if c.blocks]


def refusal(operation: str, checks: Sequence[Check]) -> tuple[str, str] | None:
    """``(message, hint)`` naming every blocking check, or None when nothing blocks."""
    failing = blocking(checks)
    if not failing:
        return None
    reasons = "; ".join(c.reason for c in failing)
    return f"{operation} refused: {reasons}", failing[0].hint


# ---- reading a snapshot of statuses -----------------------------------------------------


def by_name(statuses: Sequence[NodeStatus]) -> dict[str, NodeStatus]:
    return {s.name: s for s in statuses}


def running_primaries(statuses: Sequence[NodeStatus]) -> list[NodeStatus]:
    return [s for s in statuses if s.role is Role.PRIMARY and s.state is PgState.RUNNING]


def upstream_of(status: NodeStatus, node_at: NodeAt) -> str | None:
    """The node a standby is configured to stream from (None for a primary)."""
    if status.role is not Role.STANDBY:
        return None
    return node_at(status.upstream_host, status.upstream_port)


def streaming_from(status: NodeStatus, upstream: str, node_at: NodeAt) -> bool:
    """Whether a running standby's wal receiver streams from ``upstream`` right now."""
    receiver = status.wal_receiver
    if status.state is not PgState.RUNNING or receiver is None:
        return False
    if receiver.status != "streaming":
        return False
    return node_at(receiver.sender_host, receiver.sender_port) == upstream


def downstream_of(statuses: Sequence[NodeStatus], name: str, node_at: NodeAt) -> list[str]:
    """Standbys configured to stream from ``name``."""
    return [s.name for s in statuses if s.name != name and upstream_of(s, node_at) == name]


def reachable(name: str, status: NodeStatus | None) -> Check:
    if status is None:
        return failed("reachable", f"{name} is not in the config")
    if status.state is PgState.UNREACHABLE:
        return failed(
            "reachable",
            f"the agent of {name} does not answer ({status.error})",
            f"start it: pgherd agent run --node {name}",
        )
    return passed("reachable", f"the agent of {name} answers")


def known(name: str, statuses: Sequence[NodeStatus]) -> Check:
    names = [s.name for s in statuses]
    if name in names:
        return passed("known", f"{name} is in the config")
    return failed("known", f"unknown node {name!r}", f"known nodes: {', '.join(names)}")
