"""What the console shows, read from the agents through the API clients (never SQL).

One :class:`ClusterState` is read per refresh (every node's status, subscriptions, the
leader and mesh workers where the agents have them) and shared by the page and its
fragments for a second, so a page with several live parts costs one round of calls.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pgherd.clients.agent import AgentClient, fan_out
from pgherd.clients.logical import LogicalClient
from pgherd.clients.mesh import MeshClient
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.errors import AgentError, AgentUnreachable, PgherdError
from pgherd.model import cluster as cluster_model
from pgherd.model.cluster import ClusterView
from pgherd.model.ha_report import HaReport
from pgherd.model.ha_settings import Mode
from pgherd.model.lsn import lag_bytes
from pgherd.model.mesh import MeshWorkerRow, WorkerState
from pgherd.model.status import NodeStatus, PgState
from pgherd.model.subscription import SubscriptionInfo
from pgherd.ops.events import named_statuses

CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Subscription:
    node: str  # the subscriber
    info: SubscriptionInfo
    source: str  # a node name, or host:port of a publisher outside the config
    source_known: bool
    lag_bytes: int | None
    lag_seconds: float | None


@dataclass(frozen=True)
class MeshPair:
    mesh: str
    source: str
    target: str
    state: WorkerState
    lag_bytes: int | None
    lag_seconds: float | None


@dataclass(frozen=True)
class Leader:
    """The holder of the leader lease, when the agents run the HA loop (``GET /ha`` on
    each agent says whether it holds the lease and for how long it still lasts)."""

    name: str | None
    detail: str = ""
    paused: str | None = None  # automatic failover paused: why (an operation, maintenance)
    maintenance: bool = False  # the pause is maintenance mode (pgherd cluster pause)


@dataclass(frozen=True)
class ClusterState:
    config: ClusterConfig
    statuses: tuple[NodeStatus, ...]
    view: ClusterView
    subscriptions: tuple[Subscription, ...] = ()
    mesh: tuple[MeshPair, ...] = ()
    leader: Leader | None = None  # None: the agents have no HA loop (no leader lease)
    errors: tuple[str, ...] = ()
    read_at: float = field(default_factory=time.time)

    def status(self, name: str) -> NodeStatus:
        for status in self.statuses:
            if status.name == name:
                return status
        raise KeyError(name)

    def node_at(self, host: str | None, port: int | None) -> str | None:
        node = self.config.node_at(host, port)
        return node.name if node else None


@dataclass
class _NodeExtras:
    subscriptions: list[SubscriptionInfo] = field(default_factory=list)
    ha: HaReport | None = None  # GET /ha: the agent's HA loop, or mode "manual"
    mesh: list[MeshWorkerRow] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _extras(node: NodeConfig, status: NodeStatus, token: str) -> _NodeExtras:
    found = _NodeExtras()
    if status.state is PgState.UNREACHABLE:
        return found
    client = AgentClient(node, token, timeout=3)
    try:
        found.ha = client.ha(timeout=2)
    except AgentUnreachable as exc:
        found.errors.append(exc.message)
    except PgherdError:
        pass  # an agent without the endpoint: no HA loop to show
    if status.state is not PgState.RUNNING:
        return found
    try:
        reader = LogicalClient(node)
        reader.agent.timeout = 5
        found.subscriptions = reader.subscriptions()
    except PgherdError as exc:
        found.errors.append(f"{node.name}: subscriptions: {exc.message}")
    with contextlib.suppress(PgherdError):  # no mesh endpoint, or not allowed: no rows
        found.mesh = MeshClient(node, token, timeout=3).workers()
    return found


def read(config: ClusterConfig, token: str) -> ClusterState:
    statuses = named_statuses(config)
    by_name = {s.name: s for s in statuses}
    extras = dict(
        zip(
            config.node_names,
            fan_out(config.nodes, lambda n: _extras(n, by_name[n.name], token)),
            strict=True,
        )
    )

    def node_at(host: str | None, port: int | None) -> str | None:
        node = config.node_at(host, port)
        return node.name if node else (f"{host}:{port}" if host else None)

    view = cluster_model.view(statuses, node_at, config.independent)
    subs = tuple(
        _subscription(config, by_name, name, info)
        for name, extra in extras.items()
        for info in extra.subscriptions
    )
    mesh = _mesh_pairs([row for extra in extras.values() for row in extra.mesh])
    errors = tuple(e for extra in extras.values() for e in extra.errors)
    return ClusterState(
        config=config,
        statuses=tuple(statuses),
        view=view,
        subscriptions=subs,
        mesh=mesh,
        leader=_leader(extras),
        errors=errors,
    )


def _subscription(
    config: ClusterConfig, by_name: dict[str, NodeStatus], node: str, info: SubscriptionInfo
) -> Subscription:
    source_node = config.node_at(info.host, info.port)
    if source_node is None and info.host in ("localhost", "::1"):
        source_node = config.node_at("127.0.0.1", info.port)
    source = source_node.name if source_node else f"{info.host}:{info.port}"
    lag_b: int | None = None
    lag_s: float | None = None
    publisher = by_name.get(source)
    if publisher is not None:
        for row in publisher.replication:
            if row.application_name == info.name:
                lag_b = lag_bytes(publisher.current_lsn, row.replay_lsn)
                lag_s = row.replay_lag_s if row.replay_lag_s is not None else 0.0
    return Subscription(node, info, source, source_node is not None, lag_b, lag_s)


def _mesh_pairs(rows: list[MeshWorkerRow]) -> tuple[MeshPair, ...]:
    pairs: dict[tuple[str, str, str], MeshPair] = {}
    for row in rows:
        pair = MeshPair(row.mesh, row.source, row.target, row.state, row.lag_bytes, row.lag_seconds)
        pairs[(pair.mesh, pair.source, pair.target)] = pair
    return tuple(pairs[k] for k in sorted(pairs))


def _leader(extras: dict[str, _NodeExtras]) -> Leader | None:
    loops = {name: e.ha for name, e in extras.items() if e.ha and e.ha.mode is not Mode.MANUAL}
    if not loops:
        return None  # no agent runs an HA loop: failover is manual, there is no lease
    pauses = [ha for ha in loops.values() if ha.paused]
    paused = pauses[0].paused if pauses else None
    maintenance = any(ha.maintenance for ha in pauses)
    return replace(_holder(loops), paused=paused, maintenance=maintenance)


def _holder(loops: dict[str, HaReport]) -> Leader:
    holders = [name for name, ha in loops.items() if ha.holds_lease]
    if holders:
        left = loops[holders[0]].lease_left
        detail = f"lease left {left:.1f} s" if left is not None else ""
        return Leader(", ".join(holders), detail)
    seen = sorted({ha.leader for ha in loops.values() if ha.leader})
    if seen:
        return Leader(", ".join(seen), "the store names it; it does not answer as leader")
    return Leader(None, "no node holds the leader lease")


class StateCache:
    """The last :class:`ClusterState`, re-read at most once a second."""

    def __init__(self, reader: Callable[[], ClusterState]) -> None:
        self._reader = reader
        self._lock = threading.Lock()
        self._last: ClusterState | None = None

    def get(self, fresh: bool = False) -> ClusterState:
        with self._lock:
            last = self._last
            if fresh or last is None or time.time() - last.read_at > CACHE_SECONDS:
                last = self._reader()
                self._last = last
            return last


def agent_errors(exc: BaseException) -> str:
    if isinstance(exc, AgentUnreachable | AgentError):
        return exc.message
    return str(exc)
