"""Where operations record their events.

:class:`~pgherd.model.events.EventLog` is the port; :class:`AgentEventLog` keeps events in
the primary's ``pgherd`` database through the primary's agent (replicated to every
standby); ``dcs.store_events.StoreEventLog`` keeps them in the coordination store, and
:func:`event_log` chooses between the two for a cluster.
"""

from __future__ import annotations

from pgherd.clients.agent import statuses
from pgherd.clients.ops import OpsClient
from pgherd.config import ClusterConfig
from pgherd.dcs.open import open_store
from pgherd.dcs.store_events import StoreEventLog
from pgherd.errors import AgentError, AgentUnreachable, PgherdError, Refused
from pgherd.model.checks import running_primaries
from pgherd.model.event_lite import nodes_to_ask
from pgherd.model.events import Event, EventLog, Outcome
from pgherd.model.status import NodeStatus


def named_statuses(config: ClusterConfig) -> list[NodeStatus]:
    """Every node's status, named as the config names it (an agent that answers with
    another name serves some other node: its status still counts under this name)."""
    found = statuses(config.nodes)
    return [
        s if s.name == n.name else s.model_copy(update={"name": n.name})
        for n, s in zip(config.nodes, found, strict=True)
    ]


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
        last: PgherdError | None = None
        for name in nodes_to_ask(named_statuses(self.config)):
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


def event_log(config: ClusterConfig, token: str) -> EventLog:
    """Where this cluster's events live: the store if it has one, else the primary's
    ``pgherd`` database through its agent."""
    if config.ha is None:
        return AgentEventLog(config, token)
    return StoreEventLog(open_store(config, timeout=5.0))


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
