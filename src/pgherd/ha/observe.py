"""The "observe" of an HA cycle: this node's PostgreSQL, the store read once, and peers.

Everything here reads; nothing changes a server or the store. The result is the plain
values :func:`pgherd.model.ha.decide` takes.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from pgherd.clients.agent import AgentClient
from pgherd.clients.credential import Credential
from pgherd.clients.ops import OpsClient
from pgherd.config import ClusterConfig, NodeConfig
from pgherd.dcs import checkin as checkin_mod
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Snapshot
from pgherd.dcs.checkin import CheckIn
from pgherd.errors import AgentError, AgentUnreachable, PgherdError
from pgherd.ha.rejoin_local import divergence
from pgherd.ha.supervisor import Supervisor
from pgherd.model.ha import Peer, World
from pgherd.model.lsn import Lsn
from pgherd.model.status import Desired, NodeStatus, PgState, Role
from pgherd.pg import queries
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.ha")


@dataclass(frozen=True)
class LocalState:
    """This node's PostgreSQL this cycle."""

    pg: PgState
    role: Role
    timeline: int | None = None
    position: Lsn | None = None
    upstream: str | None = None
    streaming: bool = False
    streaming_standbys: tuple[str, ...] = ()
    down_for: float | None = None
    never_ran: bool = False  # not since this agent started: a boot, not a crash
    restarting_for: float | None = None  # down, then starting again since (Supervisor)


def standby_position(receive: Lsn | None, replay: Lsn | None) -> Lsn | None:
    """How far a standby got: what it received (promotion replays all of it) or replayed."""
    known = [p for p in (receive, replay) if p is not None]
    return max(known) if known else None


class LocalReader:
    """Reads the local server over one connection kept open between cycles."""

    def __init__(self, local: LocalNode, supervisor: Supervisor) -> None:
        self.local = local
        self.supervisor = supervisor
        self._conn: psycopg.Connection[Any] | None = None

    @contextlib.contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        if self._conn is None or self._conn.closed:
            self._conn = self.local.instance.open(application_name="pgherd_ha")
        try:
            yield self._conn
        except psycopg.Error:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):
                self._conn.close()
            self._conn = None

    def read(self) -> LocalState:
        pg = self.supervisor.state()
        down_for = self.supervisor.down_for()
        if pg is PgState.RUNNING:
            try:
                with self._connection() as conn:
                    server = queries.server_state(conn)
            except (psycopg.Error, PgherdError):
                pg = PgState.STARTING  # up but not answering yet (or any more)
            else:
                return self._running(server)
        self.close()
        offline = self._offline(pg, down_for)
        return replace(
            offline,
            never_ran=not self.supervisor.ran,
            restarting_for=self.supervisor.restarting_for(),
        )

    def _running(self, server: queries.ServerState) -> LocalState:
        if not server.in_recovery:
            names = set(self.local.config.node_names)
            streaming = tuple(
                r.application_name
                for r in server.replication
                if r.state == "streaming" and r.application_name in names
            )
            return LocalState(
                PgState.RUNNING,
                Role.PRIMARY,
                server.timeline,
                server.current_lsn,
                streaming_standbys=streaming,
            )
        node = self.local.config.node_at(server.upstream_host, server.upstream_port)
        receiver = server.wal_receiver
        return LocalState(
            PgState.RUNNING,
            Role.STANDBY,
            server.timeline,
            standby_position(server.receive_lsn, server.replay_lsn),
            upstream=node.name if node else None,
            streaming=receiver is not None and receiver.status == "streaming",
        )

    def _offline(self, pg: PgState, down_for: float | None) -> LocalState:
        instance = self.local.instance
        if not instance.exists:
            return LocalState(pg, Role.UNKNOWN, down_for=down_for)
        role = Role.STANDBY if instance.standby_configured else Role.PRIMARY
        timeline = None
        if pg in (PgState.STOPPED, PgState.CRASHED):
            with contextlib.suppress(PgherdError, ValueError):
                timeline = instance.controldata().timeline
        return LocalState(pg, role, timeline, down_for=down_for)


def _api_position(status: NodeStatus) -> Lsn | None:
    if status.role is Role.PRIMARY:
        return status.current_lsn
    return standby_position(status.receive_lsn, status.replay_lsn)


def peer_from_status(node: NodeConfig, status: NodeStatus | None) -> Peer:
    if status is None:
        return Peer(node.name, reachable=False, nofailover=node.nofailover, nosync=node.nosync)
    return Peer(
        node.name,
        reachable=True,
        pg=status.state,
        role=status.role,
        timeline=status.timeline,
        position=_api_position(status),
        nofailover=node.nofailover,
        nosync=node.nosync,
        returning=(
            status.role is Role.PRIMARY
            and status.state in (PgState.STOPPED, PgState.STARTING)
            and status.desired is Desired.RUNNING
            and status.bootstrap is None
        ),
    )


def peer_from_checkin(
    node: NodeConfig, checkin: CheckIn | None, fresh_within: float, now: float | None = None
) -> Peer:
    if checkin is None or checkin.age(now) > fresh_within:
        return Peer(node.name, reachable=False, nofailover=node.nofailover, nosync=node.nosync)
    return Peer(
        node.name,
        reachable=True,
        pg=checkin.state,
        role=checkin.role,
        timeline=checkin.timeline,
        position=checkin.position,
        nofailover=node.nofailover,
        nosync=node.nosync,
    )


@dataclass
class PeerReader:
    """Asks the other agents for their status, all at once, with a short timeout."""

    config: ClusterConfig
    me: str
    timeout: float
    _pool: ThreadPoolExecutor = field(init=False)

    def __post_init__(self) -> None:
        others = max(len(self.config.nodes) - 1, 1)
        self._pool = ThreadPoolExecutor(max_workers=others, thread_name_prefix="peers")

    def _ask(self, node: NodeConfig) -> NodeStatus | None:
        try:
            return AgentClient(node, timeout=self.timeout).status()
        except (AgentUnreachable, AgentError, ValueError):
            return None

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    def read(self) -> tuple[Peer, ...]:
        others = [n for n in self.config.nodes if n.name != self.me]
        found = list(self._pool.map(self._ask, others))
        return tuple(peer_from_status(n, s) for n, s in zip(others, found, strict=True))


class DivergenceProbe:
    """Compares this node's WAL history with the leader's, through the leader's agent (the
    HA loop asks when model.observing.watch_divergence says it is due)."""

    def __init__(self, local: LocalNode, token: Credential, timeout: float = 3) -> None:
        self.local = local
        self.token = token
        self.timeout = timeout

    def diverged(self, leader: str, running: bool = True) -> bool:
        """True when this node's WAL is no longer a prefix of ``leader``'s; False when it
        is, or when the leader could not tell (the next comparison tries again).
        ``running``: read this node's position from its server, else from its files."""
        client = OpsClient(self.local.config.node(leader), self.token, self.timeout)
        try:
            verdict = divergence(self.local, client, running)
        except PgherdError as exc:
            log.info("could not compare my WAL with %s's: %s", leader, exc.message)
            return False
        if not verdict.can_follow:
            log.warning("not streaming from %s: %s", leader, verdict.reason)
        return not verdict.can_follow


@dataclass(frozen=True)
class StoreView:
    """The store, as one snapshot read this cycle (or the fact that it did not answer)."""

    ok: bool
    snapshot: Snapshot | None = None
    problem: str = ""

    @property
    def leader(self) -> str | None:
        if not self.ok or self.snapshot is None or self.snapshot.leader is None:
            return None
        return self.snapshot.leader.name

    @property
    def state(self) -> dcs_state.ClusterState:
        if not self.ok or self.snapshot is None:
            return dcs_state.ClusterState()
        return dcs_state.parse(self.snapshot.config)

    @property
    def checkins(self) -> dict[str, CheckIn]:
        if not self.ok or self.snapshot is None:
            return {}
        return checkin_mod.checkins(self.snapshot.members)


def world(
    config: ClusterConfig,
    me: str,
    view: StoreView,
    peers: tuple[Peer, ...] | None,
    fresh_within: float,
    observed_at: float = 0.0,
    now: float | None = None,
) -> World:
    """The World of model/ha.py from the store's view and, when asked, the peers' own word.
    ``now``: this agent's wall clock (check-ins and pauses carry wall times)."""
    now = time.time() if now is None else now
    found = view.checkins
    if peers is None:
        peers = tuple(
            peer_from_checkin(n, found.get(n.name), fresh_within, now)
            for n in config.nodes
            if n.name != me
        )
    state = view.state
    sync = state.sync
    return World(
        store_ok=view.ok,
        leader=view.leader,
        peers=peers,
        last_primary_position=checkin_mod.last_primary_position(found),
        sync_set=sync.members if sync else (),
        sync_quorum=sync.quorum if sync else 0,
        paused=state.paused(now),
        maintenance=state.maintenance(now) is not None,
        last_leader=state.last_leader,
        observed_at=observed_at,
    )
