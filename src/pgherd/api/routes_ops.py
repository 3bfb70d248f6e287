"""The agent's endpoints for cluster operations (switchover, promote, follow, rejoin) and
cluster events.

Reading (``GET /wal``, ``GET /events``) is open like ``/status``; every acting endpoint
needs an operator's or a peer's credential. The orchestrator in ``pgherd.ops`` strings these
primitives together; each one acts on this node only.
"""

from __future__ import annotations

from typing import Protocol

from fastapi import APIRouter, Query
from pydantic import Field

from pgherd.api.auth import authorized
from pgherd.model.events import Event
from pgherd.model.lsn import Lsn
from pgherd.model.node_ops import (
    CheckpointDone,
    CloneSummary,
    NodeWal,
    PromoteResult,
    ReplayWait,
    RewindResult,
    SlotChange,
    SlotState,
)
from pgherd.model.status import Frozen, LsnField, NodeStatus


class OperationsPort(Protocol):
    """What the endpoints need from the agent (ha/operations.py implements it)."""

    def wal_position(self) -> NodeWal: ...

    def recent_events(self, limit: int) -> list[Event]: ...

    def wait_replay(self, past: Lsn, timeout: float) -> ReplayWait: ...

    def save_event(self, event: Event) -> None: ...

    def checkpoint(self) -> CheckpointDone: ...

    def promote(self, timeout: float) -> PromoteResult: ...

    def follow(self, upstream: str, start: bool) -> None: ...

    def rewind(self, source: str, timeout: float) -> RewindResult: ...

    def clone(self, upstream: NodeStatus) -> CloneSummary: ...

    def create_slot(self, slot: str) -> SlotChange: ...

    def drop_slot(self, slot: str) -> SlotChange: ...

    def slot_state(self, slot: str) -> SlotState: ...


class FollowRequest(Frozen):
    upstream: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")  # a node name
    start: bool = True  # start the server if it is stopped


class RewindRequest(Frozen):
    source: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")  # a node name
    timeout: float = Field(default=3600, gt=0, le=86400, allow_inf_nan=False)


class CloneRequest(Frozen):
    upstream: NodeStatus  # the upstream's status, read by the caller just before


class WaitReplayRequest(Frozen):
    past: LsnField
    timeout: float = Field(default=30, gt=0, le=3600, allow_inf_nan=False)


SlotName = Query(pattern=r"^[a-z0-9_]{1,63}$")


def ops_router(ops: OperationsPort) -> APIRouter:
    router = APIRouter()
    acting = APIRouter(dependencies=authorized())

    @router.get("/wal")
    def wal() -> NodeWal:
        """Where the node's WAL ends and the timeline history it holds."""
        return ops.wal_position()

    @router.get("/events")
    def events(limit: int = Query(default=50, ge=1, le=10000)) -> list[Event]:
        return ops.recent_events(limit)

    @acting.post("/events")
    def save_event(event: Event) -> Event:
        ops.save_event(event)
        return event

    @acting.post("/ops/checkpoint")
    def checkpoint() -> CheckpointDone:
        return ops.checkpoint()

    @acting.post("/ops/promote")
    def promote(timeout: float = Query(default=60, gt=0, le=3600)) -> PromoteResult:
        return ops.promote(timeout)

    @acting.post("/ops/follow")
    def follow(request: FollowRequest) -> NodeWal:
        ops.follow(request.upstream, request.start)
        return ops.wal_position()

    @acting.post("/ops/rewind")
    def rewind(request: RewindRequest) -> RewindResult:
        return ops.rewind(request.source, request.timeout)

    @acting.post("/ops/clone")
    def clone(request: CloneRequest) -> CloneSummary:
        return ops.clone(request.upstream)

    @acting.post("/ops/wait-replay")
    def wait_replay(request: WaitReplayRequest) -> ReplayWait:
        return ops.wait_replay(request.past, request.timeout)

    @acting.post("/ops/slots")
    def create_slot(name: str = SlotName) -> SlotChange:
        return ops.create_slot(name)

    @acting.get("/ops/slot-state")
    def slot_state(name: str = SlotName) -> SlotState:
        """A slot's state file (base64), for a standby's copy of a logical slot
        (model/failover_slots.py): a peer's or an operator's credential."""
        return ops.slot_state(name)

    @acting.delete("/ops/slots")
    def drop_slot(name: str = SlotName) -> SlotChange:
        return ops.drop_slot(name)

    router.include_router(acting)
    return router
