"""Calling the agents' operation endpoints (api/routes_ops.py) with typed results."""

from __future__ import annotations

from pgherd.clients.agent import AgentClient
from pgherd.model.events import Event
from pgherd.model.ha_report import HaReport
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
from pgherd.model.status import NodeStatus

# Seconds of HTTP slack on top of an operation's own time limit.
SLACK = 15.0


class OpsClient(AgentClient):
    def wal(self) -> NodeWal:
        return NodeWal.model_validate(self._request("GET", "/wal"))

    def events(self, limit: int = 50) -> list[Event]:
        rows = self._request("GET", "/events", params={"limit": str(limit)})
        return [Event.model_validate(row) for row in rows]

    def save_event(self, event: Event) -> Event:
        """Write ``event`` on this node; the event as stored."""
        return Event.model_validate(
            self._request("POST", "/events", body=event.model_dump(mode="json"))
        )

    def checkpoint(self, timeout: float = 300) -> CheckpointDone:
        return CheckpointDone.model_validate(self._request("POST", "/ops/checkpoint", timeout))

    def promote(self, timeout: float = 60) -> PromoteResult:
        data = self._request(
            "POST", "/ops/promote", timeout + SLACK, params={"timeout": str(timeout)}
        )
        return PromoteResult.model_validate(data)

    def follow(self, upstream: str, start: bool = True, timeout: float = 90) -> NodeWal:
        body = {"upstream": upstream, "start": start}
        return NodeWal.model_validate(self._request("POST", "/ops/follow", timeout, body=body))

    def rewind(self, source: str, timeout: float = 3600) -> RewindResult:
        body = {"source": source, "timeout": timeout}
        data = self._request("POST", "/ops/rewind", timeout + SLACK, body=body)
        return RewindResult.model_validate(data)

    def clone(self, upstream: NodeStatus, timeout: float = 7200) -> CloneSummary:
        body = {"upstream": upstream.model_dump(mode="json")}
        return CloneSummary.model_validate(self._request("POST", "/ops/clone", timeout, body=body))

    def wait_replay(self, past: Lsn, timeout: float) -> ReplayWait:
        body = {"past": str(past), "timeout": timeout}
        data = self._request("POST", "/ops/wait-replay", timeout + SLACK, body=body)
        return ReplayWait.model_validate(data)

    def cycle_now(self) -> HaReport:
        """Ask the agent's HA loop to run a cycle now (``POST /ha/cycle``): after an
        operation moved the lease, the new holder takes it at once. The answer is the loop's
        state before that cycle."""
        return HaReport.model_validate(self._request("POST", "/ha/cycle", 5))

    def create_slot(self, name: str) -> SlotChange:
        return SlotChange.model_validate(self._request("POST", "/ops/slots", params={"name": name}))

    def slot_state(self, name: str) -> SlotState:
        """A slot's state file (for a standby's copy of a logical slot)."""
        data = self._request("GET", "/ops/slot-state", params={"name": name})
        return SlotState.model_validate(data)

    def drop_slot(self, name: str) -> SlotChange:
        return SlotChange.model_validate(
            self._request("DELETE", "/ops/slots", params={"name": name})
        )
