"""``pgherd standby follow NODE [--upstream NODE2]``: point a standby at the primary or at
another standby (cascading), moving its replication slot with it."""

from __future__ import annotations

from dataclasses import dataclass, field

from pgherd.errors import Refused
from pgherd.model.checks import Check, by_name, refusal, streaming_from, upstream_of
from pgherd.model.events import Event, Outcome
from pgherd.model.follow import default_upstream, follow_checks
from pgherd.model.node_ops import NodeWal
from pgherd.model.status import PgState, Role
from pgherd.model.timeline import Divergence, compare
from pgherd.ops.context import Operation, Step
from pgherd.ops.events import record_refusal
from pgherd.ops.pause import paused


@dataclass
class FollowOutcome:
    node: str
    upstream: str
    previous_upstream: str | None
    changed: bool
    checks: tuple[Check, ...]
    reason: str
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "operation": "follow",
            "node": self.node,
            "upstream": self.upstream,
            "previous_upstream": self.previous_upstream,
            "changed": self.changed,
            "outcome": "succeeded",
            "reason": self.reason,
            "steps": [s.as_json() for s in self.steps],
            "seconds": round(self.seconds, 4),
        }


def divergence(op: Operation, node: str, upstream: str) -> tuple[Divergence, NodeWal, NodeWal]:
    """Compare the node's WAL with the upstream's timeline history, both read from agents."""
    mine = op.client(node).wal()
    theirs = op.client(upstream).wal()
    end = theirs.lsn if theirs.running and theirs.role is Role.PRIMARY else None
    verdict = compare(
        mine.parsed_history(),
        mine.position(),
        theirs.parsed_history(),
        end,
        node,
        upstream,
        mine.unknown,
    )
    return verdict, mine, theirs


def follow(op: Operation, node: str, upstream: str | None = None) -> FollowOutcome:
    with paused(op.config, f"follow of {node} by {op.requested_by}", 300):
        return _follow(op, node, upstream)


def _follow(op: Operation, node: str, upstream: str | None) -> FollowOutcome:
    current = op.snapshot()
    if upstream is None:
        upstream = default_upstream(current, node)
        if upstream is None:
            raise Refused(
                f"there is no single running primary for {node} to follow",
                "name the upstream: pgherd standby follow NODE --upstream NODE2",
            )
    checks = follow_checks(current, node, upstream, op.node_at, None)
    if refusal("follow", checks) is None:
        verdict, _, _ = divergence(op, node, upstream)
        checks = follow_checks(current, node, upstream, op.node_at, verdict)
    refused = refusal("follow", checks)
    if refused:
        record_refusal(op.events, "follow", node, op.requested_by, refused[0])
        raise Refused(*refused)
    status = by_name(current)[node]
    previous = upstream_of(status, op.node_at)
    if previous == upstream and (
        status.state is not PgState.RUNNING or streaming_from(status, upstream, op.node_at)
    ):
        return FollowOutcome(
            node, upstream, previous, False, checks, f"{node} already follows {upstream}"
        )
    event = Event(
        operation="follow",
        node=node,
        requested_by=op.requested_by,
        details={"upstream": upstream, "previous_upstream": previous or ""},
    )
    op.events.save(event)
    with op.step(f"create slot {node} on {upstream}") as step:
        step.detail = op.client(upstream).create_slot(node).detail
    with op.step(f"point {node} at {upstream}") as step:
        op.client(node).follow(upstream, start=False)
        step.detail = "settings rewritten" + (
            ", reloaded" if status.state is PgState.RUNNING else "; it stays stopped"
        )
    if status.state is PgState.RUNNING:
        with op.step(f"wait for {node} to stream from {upstream}"):
            op.wait_streaming([node], upstream)
    if previous and previous != upstream:
        with op.step(f"drop slot {node} on {previous}") as step:
            step.detail = "dropped" if op.drop_slot(previous, node) else "there was none"
    reason = f"{node} follows {upstream}" + (f" (was {previous})" if previous else "")
    op.events.save(event.finish(Outcome.SUCCEEDED, reason))
    return FollowOutcome(
        node, upstream, previous, True, checks, reason, steps=op.steps, seconds=op.seconds
    )
