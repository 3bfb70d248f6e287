"""What the load-balancer checks and ``/cluster``, ``/history``, ``/failsafe``, ``/quorum``
read on an agent (``api/routes_ha.py`` serves them, ``model/serving.py`` decides).

Under automatic failover everything comes from the HA loop's last cycle (its local read,
its one read of the store, the peers it asked) and the supervisor's live state: a check
costs no SQL and no store call, so HAProxy may ask every 100 ms. Under manual failover
the node's status is read (one query).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pgherd.clients.agent import statuses
from pgherd.config import ClusterConfig
from pgherd.dcs import checkin as checkin_mod
from pgherd.errors import PgherdError
from pgherd.model.ha_report import HaReport
from pgherd.model.ha_settings import Mode
from pgherd.model.lsn import lag_bytes
from pgherd.model.serving import Serving
from pgherd.model.status import NodeStatus, PgState, Role
from pgherd.pg.local_node import LocalNode
from pgherd.physical import wal_position

if TYPE_CHECKING:
    from pgherd.ha.loop import HaLoop


class AgentChecks:
    """The ``HaPort`` of ``api/routes_ha.py`` for one agent."""

    def __init__(
        self,
        config: ClusterConfig,
        local: LocalNode,
        status: Callable[[], NodeStatus],
        ha: HaLoop | None,
    ) -> None:
        self.config = config
        self.local = local
        self.status = status
        self.ha = ha
        self._streamed_at: float | None = None  # monotonic: when it was last seen streaming

    @property
    def me(self) -> str:
        return self.local.node.name

    # ---- the checks --------------------------------------------------------------------

    def serving(self) -> Serving:
        node = self.local.node
        if self.ha is None:
            return self._manual(self.status())
        ha = self.ha.status()
        now = self.ha.clock.monotonic()
        if ha.streaming:
            self._streamed_at = now
        quiet = None if self._streamed_at is None else now - self._streamed_at
        # The lease this agent holds by its own last call (renew, or a take this very cycle,
        # after its read of the store found the lease free): the store named nobody else.
        lease = ha.holds_lease and (ha.leader in (None, self.me) or not ha.store_ok)
        failsafe = self.ha.failsafe_active and ha.role is Role.PRIMARY
        return Serving(
            pg=ha.state,
            role=ha.role,
            may_write=lease or failsafe,
            streaming=ha.streaming,
            not_streaming_for=quiet,
            lag_bytes=self._lag() if ha.role is Role.STANDBY else None,
            demoting=self.ha.demoting,
            failsafe=failsafe and not lease,
            noloadbalance=node.noloadbalance,
            alive=self._alive(),
            detail={"leader": ha.leader, "lease_left": ha.lease_left},
        )

    def _manual(self, status: NodeStatus) -> Serving:
        streaming = status.wal_receiver is not None and status.wal_receiver.status == "streaming"
        return Serving(
            pg=status.state,
            role=status.role,
            may_write=status.role is Role.PRIMARY,  # manual failover: no lease
            streaming=streaming,
            noloadbalance=self.local.node.noloadbalance,
        )

    def _lag(self) -> int | None:
        """Bytes this standby trails the leader's last published position (its check-in)."""
        assert self.ha is not None
        leader_at = checkin_mod.last_primary_position(self.ha.last_view.checkins)
        return lag_bytes(leader_at, self.ha.last_local.position)

    def _alive(self) -> bool:
        """The HA loop decided within a lease and a cycle (on the agent's monotonic clock:
        a step of the wall clock says nothing about the loop)."""
        assert self.ha is not None
        decided = self.ha.decided_mono
        if decided is None:
            return True  # the first cycle has not ended yet
        settings = self.ha.settings
        return self.ha.clock.monotonic() - decided < settings.ttl + settings.loop_wait

    # ---- documents ---------------------------------------------------------------------

    def ha_state(self) -> HaReport:
        if self.ha is None:
            return HaReport(mode=Mode.MANUAL, state=self.status().state)
        return self.ha.status()

    def members(self) -> dict[str, Any]:
        """Patroni's ``/cluster``: every member with its role, state, timeline and lag."""
        if self.ha is None:
            return self._members_from_agents()
        view = self.ha.last_view
        found = view.checkins
        leader_at = checkin_mod.last_primary_position(found)
        state = view.state
        sync = set(state.sync.members) if state.sync else set()
        rows = []
        for node in self.config.nodes:
            c = found.get(node.name)
            row: dict[str, Any] = {
                "name": node.name,
                "host": node.host,
                "port": node.port,
                "api_url": node.api_url,
                "tags": _tags(node),
            }
            if c is None:
                row |= {"role": "unknown", "state": "unreachable"}
            else:
                role = (
                    "leader"
                    if view.leader == node.name
                    else (
                        "sync_standby"
                        if node.name in sync
                        else "replica"
                        if c.role is Role.STANDBY
                        else str(c.role)
                    )
                )
                stale = c.age() > self.ha.settings.ttl
                row |= {
                    "role": role,
                    "state": "unreachable" if stale else str(c.state),
                    "timeline": c.timeline,
                    "lsn": str(c.position) if c.position else None,
                    "lag": lag_bytes(leader_at, c.position) if c.role is Role.STANDBY else None,
                    "checked_in_ago": round(c.age(), 3),
                }
            rows.append(row)
        body: dict[str, Any] = {"scope": self.config.cluster, "members": rows}
        paused = state.paused()
        if paused:
            body["pause"] = True
            body["paused"] = paused
        return body

    def _members_from_agents(self) -> dict[str, Any]:
        rows = []
        found = statuses(self.config.nodes, timeout=2.0)
        primary = next(
            (s for s in found if s.role is Role.PRIMARY and s.state is PgState.RUNNING), None
        )
        for node, status in zip(self.config.nodes, found, strict=True):
            role = (
                "leader"
                if status is primary
                else ("replica" if status.role is Role.STANDBY else str(status.role))
            )
            rows.append(
                {
                    "name": node.name,
                    "host": node.host,
                    "port": node.port,
                    "api_url": node.api_url,
                    "tags": _tags(node),
                    "role": role,
                    "state": str(status.state),
                    "timeline": status.timeline,
                    "lsn": str(status.position) if status.position else None,
                    "lag": lag_bytes(primary.current_lsn, status.position)
                    if primary is not None and status.role is Role.STANDBY
                    else None,
                }
            )
        return {"scope": self.config.cluster, "members": rows}

    def timeline_history(self) -> list[list[Any]]:
        """Patroni's ``/history``: ``[timeline, switch LSN (bytes), reason]`` per timeline
        that ended, oldest first, from the node's newest history file."""
        running = self.status().state is PgState.RUNNING
        try:
            wal = wal_position.read(self.local, running)
        except PgherdError:
            return []
        return [[s.timeline, s.lsn.value, s.reason] for s in wal.parsed_history().switches]

    def failsafe_state(self) -> tuple[bool, dict[str, Any]]:
        """200 while failsafe keeps this primary writable with the store down."""
        if self.ha is None:
            return False, {"enabled": False, "active": False, "reason": "failover is manual"}
        world = self.ha.last_world
        active = self.ha.failsafe_active
        body: dict[str, Any] = {
            "enabled": self.ha.settings.failsafe,
            "active": active,
            "store_ok": self.ha.last_view.ok,
            "members": {
                p.name: {"answers": p.reachable, "role": str(p.role)}
                for p in (world.peers if world is not None else ())
            },
        }
        if not self.ha.settings.failsafe:
            body["reason"] = "failsafe is off (ha.failsafe: false)"
        elif self.ha.last_view.ok:
            body["reason"] = "the store answers: the leader lease decides"
        elif active:
            body["reason"] = "the store is down and every member answers this primary"
        else:
            body["reason"] = "the store is down and not every member answers this node as primary"
        return active, body

    def quorum_state(self) -> tuple[bool, dict[str, Any]]:
        """200 on a standby of the synchronous quorum (it acknowledges commits and may be
        promoted); the body has the set and the quorum the leader published."""
        if self.ha is None:
            return False, {"synchronous": False, "reason": "failover is manual"}
        state = self.ha.last_view.state
        sync = state.sync
        members = list(sync.members) if sync else []
        body: dict[str, Any] = {
            "synchronous": self.ha.settings.synchronous,
            "leader": sync.leader if sync else self.ha.last_view.leader,
            "members": members,
            "quorum": sync.quorum if sync else 0,
            "member": self.me in members,
        }
        ok = self.me in members and self.ha.last_local.role is Role.STANDBY
        if not self.ha.settings.synchronous:
            body["reason"] = "synchronous mode is off"
        elif ok:
            body["reason"] = "a synchronous standby: it acknowledges commits, it may be promoted"
        else:
            body["reason"] = "not a synchronous standby"
        return ok, body

    def cycle_now(self) -> None:
        if self.ha is not None:
            self.ha.wake()


def _tags(node: Any) -> dict[str, Any]:
    return {
        name: True
        for name in ("nofailover", "noloadbalance", "nosync")
        if getattr(node, name, False)
    }
