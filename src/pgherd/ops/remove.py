"""``pgherd node remove NODE``: drop the slots kept for a node that leaves the cluster and
its member key in the store (model/remove.py decides whether it may go, and what to do).
The node may already be gone from pgherd.yaml: what is left of it is found by name."""

from __future__ import annotations

from dataclasses import dataclass, field

from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.dcs.open import open_store
from pgherd.errors import Refused
from pgherd.model import remove as model
from pgherd.model.events import Event, Outcome
from pgherd.ops.context import Operation, Step
from pgherd.ops.events import record_refusal


@dataclass
class RemoveResult:
    node: str
    dropped_slots: list[str] = field(default_factory=list)  # the nodes it was dropped on
    member_removed: bool = False
    still_in_config: bool = False
    warnings: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)

    def as_json(self) -> dict[str, object]:
        return {
            "operation": "node-remove",
            "node": self.node,
            "dropped_slots": self.dropped_slots,
            "member_removed": self.member_removed,
            "still_in_config": self.still_in_config,
            "warnings": self.warnings,
            "steps": [s.as_json() for s in self.steps],
        }


def remove(op: Operation, name: str) -> RemoveResult:
    store = _store(op)
    try:
        leader, member = _leader_and_member(store, name)
        decided = model.plan(
            name,
            op.snapshot(),
            configured=name in op.config.node_names,
            leader=leader,
            member=member,
        )
        if decided.refused is not None:
            record_refusal(op.events, "node-remove", name, op.requested_by, decided.refused)
            raise Refused(f"node remove refused: {decided.refused}", decided.hint)
        result = RemoveResult(
            name,
            still_in_config=decided.still_configured,
            warnings=list(decided.warnings),
            steps=op.steps,
        )
        event = Event(operation="node-remove", node=name, requested_by=op.requested_by)
        for holder in decided.drop_slot_on:
            with op.step(f"drop slot {name} on {holder}") as step:
                op.drop_slot(holder, name)
                step.detail = "dropped"
            result.dropped_slots.append(holder)
        if decided.remove_member and store is not None:
            with op.step(f"remove {name}'s member key from the store"):
                store.remove_member(name)
            result.member_removed = True
    finally:
        if store is not None:
            store.close()
    done = ", ".join(s.name for s in result.steps) or "nothing left to remove"
    op.events.save(event.finish(Outcome.SUCCEEDED, done))
    return result


def _store(op: Operation) -> Store | None:
    if op.config.ha is None:
        return None
    return open_store(op.config, timeout=5.0)


def _leader_and_member(store: Store | None, name: str) -> tuple[str | None, bool]:
    if store is None:
        return None, False
    try:
        leader = store.leader()
        members = store.members()
    except StoreUnavailable as exc:
        raise Refused(
            f"node remove refused: the store does not answer ({exc.message})",
            "removing a member needs the store; check it, then retry",
        ) from None
    return (leader.name if leader else None), any(m.name == name for m in members)
