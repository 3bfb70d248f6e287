"""Where operations record their events.

:class:`EventLog` is the port; :class:`AgentEventLog` keeps events in the primary's
``pgherd`` database through the primary's agent (replicated to every standby). The
coordination store (etcd or sqlite) will be another implementation of the same port.
"""

from __future__ import annotations

from typing import Protocol

from pgherd.clients.agent import statuses
from pgherd.clients.ops import OpsClient
from pgherd.config import ClusterConfig
from pgherd.errors import AgentError, AgentUnreachable, PgherdError, Refused
from pgherd.model.checks import running_primaries
from pgherd.model.events import Event, Outcome
from pgherd.model.status import NodeStatus, PgState


def named_statuses(config: ClusterConfig) -> list[NodeStatus]:
    """Every node's status, named as the config names it (an agent that answers with
    another name serves some other node: its status still counts under this name)."""
    found = statuses(config.nodes)
    return [
        s if s.name == n.name else s.model_copy(update={"name": n.name})
        for n, s in zip(config.nodes, found, strict=True)
    ]


class EventLog(Protocol):
    def save(self, event: Event, primary: str | None = None) -> bool:
        """Write (or rewrite, same id) ``event``; ``primary`` names the node to write it on
        when the caller knows it. False when no node could take it (nothing raised: an
        operation never fails because its history could not be written)."""
        ...

    def recent(self, limit: int = 50) -> list[Event]:
        """The latest ``limit`` events, oldest first."""
        ...


class AgentEventLog:
    def __init__(self, config: ClusterConfig, token: str) -> None:
        self.config = config
        self.token = token
        self.unsaved: dict[str, Event] = {}

    def _client(self, name: str) -> OpsClient:
        return OpsClient(self.config.node(name), self.token)

    def _primary(self) -> str | None:
        primaries = running_primaries(named_statuses(self.config))
        return primaries[0].name if len(primaries) == 1 else None

    def save(self, event: Event, primary: str | None = None) -> bool:
        target = primary or self._primary()
        if target is None:
            self.unsaved[event.id] = event
            return False
        try:
            self._client(target).save_event(event)
        except (AgentUnreachable, AgentError, Refused):
            self.unsaved[event.id] = event
            return False
        self.unsaved.pop(event.id, None)
        return True

    def recent(self, limit: int = 50) -> list[Event]:
        """From the primary when there is one, else from any running node (a standby has
        the table by replication, maybe a moment behind)."""
        current = named_statuses(self.config)
        primaries = running_primaries(current)
        order = [p.name for p in primaries] + [
            s.name for s in current if s.state is PgState.RUNNING and s not in primaries
        ]
        last: PgherdError | None = None
        for name in order:
            try:
                return self._client(name).events(limit)
            except (AgentUnreachable, AgentError, Refused) as exc:
                last = exc
        if last is not None:
            raise last
        raise Refused(
            "no node of the cluster runs, so no event can be read",
            "start one: pgherd node start NODE",
        )


def record_refusal(
    log: EventLog,
    operation: str,
    node: str,
    requested_by: str,
    reason: str,
    details: dict[str, str] | None = None,
) -> None:
    """A refused operation is history too: who asked for what, and why it was refused."""
    event = Event(operation=operation, node=node, requested_by=requested_by, details=details or {})
    log.save(event.finish(Outcome.REFUSED, reason))
