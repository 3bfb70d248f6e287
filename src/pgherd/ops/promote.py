"""``pgherd standby promote NODE``: make a standby the primary when the primary is gone."""

from __future__ import annotations

from dataclasses import dataclass, field

from pgherd.errors import Refused
from pgherd.model import promote as model
from pgherd.model.checks import Check, refusal
from pgherd.model.events import Event, Outcome
from pgherd.ops.context import Operation, Step
from pgherd.ops.events import record_refusal
from pgherd.ops.pause import hand_over, paused


@dataclass
class PromoteOutcome:
    node: str
    checks: tuple[Check, ...]
    forced: bool
    timeline_before: int | None = None
    timeline_after: int | None = None
    steps: list[Step] = field(default_factory=list)
    seconds: float = 0.0

    def as_json(self) -> dict[str, object]:
        return {
            "operation": "promote",
            "node": self.node,
            "outcome": "succeeded",
            "forced": self.forced,
            "overridden": [c.reason for c in self.checks if c.overridden],
            "timeline_before": self.timeline_before,
            "timeline_after": self.timeline_after,
            "steps": [s.as_json() for s in self.steps],
            "seconds": round(self.seconds, 4),
        }


def promote(op: Operation, node: str, force: bool = False, timeout: float = 60) -> PromoteOutcome:
    current = op.snapshot()
    checks = model.assess(current, node, force)
    refused = refusal("promote", checks)
    if refused:
        record_refusal(op.events, "promote", node, op.requested_by, refused[0])
        raise Refused(*refused)
    overridden = [c.reason for c in checks if c.overridden]
    event = Event(
        operation="promote",
        node=node,
        requested_by=op.requested_by,
        details={"forced": "yes"} if overridden else {},
    )
    op.events.save(event)  # kept for later when no primary can take it now
    with paused(op.config, f"promotion of {node} by {op.requested_by}", timeout + 60) as store:
        with op.step(f"promote {node}") as step:
            result = op.client(node).promote(timeout)
            step.detail = f"timeline {result.timeline_before} → {result.timeline_after}"
        if store is not None:
            with op.step(f"hand the leader lease to {node}") as step:
                step.detail = hand_over(store, op.config, node, wake=op.client(node, 5).cycle_now)
    reason = f"{node} is the primary on timeline {result.timeline_after}"
    if overridden:
        reason += " (forced: " + "; ".join(overridden) + ")"
    op.events.save(
        event.finish(
            Outcome.SUCCEEDED,
            reason,
            timeline_before=result.timeline_before,
            timeline=result.timeline_after,
            lsn=result.lsn,
        ),
        node,
    )
    return PromoteOutcome(
        node=node,
        checks=checks,
        forced=bool(overridden),
        timeline_before=result.timeline_before,
        timeline_after=result.timeline_after,
        steps=op.steps,
        seconds=op.seconds,
    )
