"""The HA loop of an agent under ``failover: automatic``: observe → decide → act, every
``loop_wait`` seconds (docs/failover.md).

Each cycle reads this node's PostgreSQL, reads the store ONCE (leader, members, the
cluster state), asks the peers' agents only when a decision may move the primary role,
calls :func:`pgherd.model.ha.decide`, performs the actions (ha/execute.py), checks in to
the store, and logs the decision's sentence when it changes. Failover decisions are
recorded as cluster events in the store (``pgherd cluster events``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from pgherd.clients.ops import OpsClient
from pgherd.config import ClusterConfig
from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.dcs.checkin import CHECKIN_TTL_FACTOR, CheckIn
from pgherd.dcs.open import open_store
from pgherd.dcs.store_events import StoreEventLog
from pgherd.errors import PgherdError
from pgherd.ha import observe
from pgherd.ha.execute import Executor, failed
from pgherd.ha.fence import Fence
from pgherd.ha.rejoin_local import divergence
from pgherd.ha.supervisor import Supervisor
from pgherd.model.events import Event, Outcome
from pgherd.model.ha import (
    RECORDED,
    Action,
    Do,
    Local,
    Mode,
    Settings,
    World,
    decide,
    failsafe_holds,
)
from pgherd.model.status import PgState, Role
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.ha")

DIVERGENCE_AFTER = 2.0  # seconds a standby of the leader may not stream before we look why

OPERATIONS = {
    Do.PROMOTE: "failover",
    Do.DEMOTE: "demote",
    Do.REJOIN: "rejoin",
    Do.RELEASE_LEASE: "release-lease",
    Do.FOLLOW: "follow",
    Do.START: "restart",
}


def settings_of(config: ClusterConfig) -> Settings:
    ha = config.ha
    if ha is None:
        return Settings(mode=Mode.MANUAL)
    return Settings(
        mode=Mode.AUTOMATIC if config.automatic else Mode.MANUAL,
        ttl=ha.ttl,
        loop_wait=ha.loop_wait,
        retry_timeout=ha.retry_timeout,
        maximum_lag=ha.maximum_lag,
        primary_start_timeout=ha.primary_start_timeout,
        synchronous=ha.synchronous,
        sync_quorum=ha.synchronous_quorum,
        failsafe=ha.failsafe,
    )


@dataclass(frozen=True)
class HaStatus:
    """What the agent's API tells about its HA loop (GET /ha, the load-balancer checks)."""

    mode: str
    pg: PgState
    role: Role
    leader: str | None
    holds_lease: bool
    lease_left: float | None
    store_ok: bool
    paused: str | None
    decision: str
    decided_at: float | None  # seconds since the epoch
    streaming: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "state": str(self.pg),
            "role": str(self.role),
            "leader": self.leader,
            "holds_lease": self.holds_lease,
            "lease_left": None if self.lease_left is None else round(self.lease_left, 3),
            "store_ok": self.store_ok,
            "paused": self.paused,
            "decision": self.decision,
            "decided_at": self.decided_at,
            "streaming": self.streaming,
        }


class HaLoop:
    def __init__(
        self,
        config: ClusterConfig,
        local: LocalNode,
        supervisor: Supervisor,
        lock: threading.Lock,
        token: str,
    ) -> None:
        self.config = config
        self.local = local
        self.supervisor = supervisor
        self.settings = settings_of(config)
        self.me = local.node.name
        self.fence = Fence(supervisor.fence)
        self._store: Store | None = None
        self.executor = Executor(
            local, supervisor, self.settings, token, self.fence, lock, self._open_store
        )
        self.reader = observe.LocalReader(local, supervisor)
        self.peers = observe.PeerReader(config, self.me, min(self.settings.retry_timeout, 1.0))
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._events: StoreEventLog | None = None
        self._not_streaming_since: float | None = None
        self._last_divergence_check = 0.0
        self.sentence = "starting"
        self.decided_at: float | None = None
        self.last_local = observe.LocalState(PgState.STOPPED, Role.UNKNOWN)
        self.last_view = observe.StoreView(False, problem="not read yet")

    # ---- the store -------------------------------------------------------------------

    def _open_store(self) -> Store:
        if self._store is None:
            self._store = open_store(self.config)
            self._events = StoreEventLog(self._store)
        return self._store

    def _read_store(self) -> observe.StoreView:
        try:
            return observe.StoreView(True, self._open_store().snapshot())
        except StoreUnavailable as exc:
            return observe.StoreView(False, problem=exc.message)

    # ---- one cycle -------------------------------------------------------------------

    def cycle(self) -> tuple[Action, ...]:
        local_state = self.reader.read()
        view = self._read_store()
        world, me, peers_at = self._observe(local_state, view)
        actions = decide(self.settings, me, world)
        self.last_local, self.last_view = local_state, view
        store_lost = self._act(actions, me, world)
        if store_lost and view.ok:
            # The store stopped answering during this cycle (the renewal failed). The next
            # cycle would first wait for it again, and the fence may fire before that cycle
            # ends: check failsafe now, and make no more store calls in this cycle.
            view = observe.StoreView(False, problem="the store stopped answering")
            world, me, peers_at = self._observe(local_state, view)
        if failsafe_holds(self.settings, me, world) and not world.store_ok:
            # Every member answered us as their primary: allowed one more lease's time.
            self.fence.allow_until(peers_at + self.settings.ttl)
        if (
            world.store_ok
            and world.leader != self.me
            and Do.ACQUIRE_LEASE not in [a.do for a in actions]
        ):
            self.executor.lease.valid_until = None  # the store says we do not hold it
        # Only a server that may take writes needs the fence: not a running standby, not
        # a stopped server (unless it is about to be promoted or started as the primary).
        takes_no_writes = (me.pg is PgState.RUNNING and me.role is Role.STANDBY) or me.pg in (
            PgState.STOPPED,
            PgState.CRASHED,
        )
        if takes_no_writes and not any(a.do in (Do.PROMOTE, Do.START) for a in actions):
            self.fence.disarm()
        self._check_in(local_state, view, actions)
        return actions

    def _observe(
        self, local_state: observe.LocalState, view: observe.StoreView
    ) -> tuple[World, Local, float]:
        """The world as this cycle sees it, this node in it, and when the peers were asked
        (they are, when a decision may move the primary role)."""
        peers = self.peers.read() if observe.needs_fresh_peers(view, local_state) else None
        peers_at = time.monotonic()
        world = observe.world(self.config, self.me, view, peers, self.settings.ttl)
        return world, self._local(local_state, world), peers_at

    def _local(self, state: observe.LocalState, world: World) -> Local:
        now = time.monotonic()
        return Local(
            name=self.me,
            pg=state.pg,
            role=state.role,
            timeline=state.timeline,
            position=state.position,
            upstream=state.upstream,
            streaming=state.streaming,
            nofailover=self.local.node.nofailover,
            crashed_for=state.down_for,
            holds_lease=world.leader == self.me,
            lease_valid_until=self.executor.lease.valid_until,
            now=now,
            diverged_from_leader=self._diverged(state, world, now),
            streaming_standbys=state.streaming_standbys,
            replicate_from=self.local.node.replicate_from,
        )

    def _diverged(self, state: observe.LocalState, world: World, now: float) -> bool:
        """A standby of the leader that has not streamed for a while: is its WAL still a
        prefix of the leader's? (Asked at most every DIVERGENCE_AFTER seconds.)"""
        leader = world.leader
        if (
            state.pg is not PgState.RUNNING
            or state.role is not Role.STANDBY
            or state.streaming
            or leader is None
            or leader == self.me
            or state.upstream != leader
        ):
            self._not_streaming_since = None
            return False
        if self._not_streaming_since is None:
            self._not_streaming_since = now
        if now - self._not_streaming_since < DIVERGENCE_AFTER:
            return False
        if now - self._last_divergence_check < DIVERGENCE_AFTER:
            return False
        self._last_divergence_check = now
        try:
            verdict = divergence(
                self.local, OpsClient(self.config.node(leader), self.executor.token, 3), True
            )
        except PgherdError as exc:
            log.info("could not compare my WAL with %s's: %s", leader, exc.message)
            return False
        if not verdict.can_follow:
            log.warning("not streaming from %s: %s", leader, verdict.reason)
        return not verdict.can_follow

    def _act(self, actions: tuple[Action, ...], me: Local, world: World) -> bool:
        """Carry out ``actions`` in order, up to the first that fails; True when that one
        failed because the store did not answer."""
        # It runs, or is about to run, as the primary: a lease it gets arms the fence, and
        # a restart does not wait for the crash backoff.
        primary_ahead = me.role is Role.PRIMARY or Do.PROMOTE in [a.do for a in actions]
        sentence = " / ".join(a.reason for a in actions)
        for action in actions:
            # A standby coming back is routine; a primary's restart in place is a choice
            # against a failover, and recorded like one.
            recorded = action.do in RECORDED and not (
                action.do is Do.START and me.role is not Role.PRIMARY
            )
            event = self._event(action, world) if recorded else None
            try:
                detail = self.executor.perform(action, primary_ahead)
            except Exception as exc:
                why = failed(exc)
                self._log(f"{sentence} — {action.do} failed: {why}", logging.WARNING)
                if event is not None:
                    self._save(event.finish(Outcome.FAILED, f"{action.reason}: {why}"))
                if not isinstance(exc, PgherdError):
                    log.exception("HA action %s failed", action.do)
                return isinstance(exc, StoreUnavailable)
            if event is not None:
                text = f"{action.reason} ({detail})" if detail else action.reason
                self._save(event.finish(Outcome.SUCCEEDED, text))
            if detail and action.do not in (Do.RENEW_LEASE, Do.WAIT):
                log.info("%s: %s", action.do, detail)
        self._log(sentence, logging.INFO)
        return False

    def _event(self, action: Action, world: World) -> Event:
        details = {"decided_by": self.me}
        if action.target:
            details["target"] = action.target
        if world.leader:
            details["leader"] = world.leader
        return Event(
            operation=OPERATIONS.get(action.do, str(action.do)),
            node=self.me,
            requested_by=f"pgherd-agent@{self.me}",
            details=details,
        )

    def _save(self, event: Event) -> None:
        if self._events is None:
            try:
                self._open_store()
            except StoreUnavailable:
                return
        assert self._events is not None
        self._events.save(event)

    def _log(self, sentence: str, level: int) -> None:
        self.decided_at = time.time()
        if sentence != self.sentence:
            log.log(level, "%s", sentence)
            self.sentence = sentence

    def _check_in(
        self, state: observe.LocalState, view: observe.StoreView, actions: tuple[Action, ...]
    ) -> None:
        if not view.ok:
            return
        holds = self.executor.lease.held()
        acquired = Do.ACQUIRE_LEASE in [a.do for a in actions]
        checkin = CheckIn(
            name=self.me,
            api_url=self.local.node.api_url,
            state=state.pg,
            role=state.role,
            timeline=state.timeline,
            position=state.position,
            upstream=state.upstream,
            streaming=state.streaming,
            nofailover=self.local.node.nofailover,
            leader=holds and (view.leader == self.me or acquired),
            decision=self.sentence,
            at=time.time(),
        )
        with contextlib.suppress(StoreUnavailable):
            self._open_store().touch_member(
                self.me, checkin.model_dump_json(), self.settings.ttl * CHECKIN_TTL_FACTOR
            )

    # ---- the thread ------------------------------------------------------------------

    def run(self) -> None:
        threading.Thread(target=self.fence.run, name="fence", daemon=True).start()
        log.info(
            "automatic failover: ttl %g s, loop_wait %g s, retry_timeout %g s%s%s",
            self.settings.ttl,
            self.settings.loop_wait,
            self.settings.retry_timeout,
            ", synchronous" if self.settings.synchronous else "",
            ", failsafe" if self.settings.failsafe else "",
        )
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.cycle()
            except Exception:
                log.exception("HA cycle failed")
            self._wake.wait(max(0.0, self.settings.loop_wait - (time.monotonic() - started)))
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Stop deciding (the agent shuts PostgreSQL down next), keep the fence off."""
        self._stop.set()
        self._wake.set()
        self.fence.close()
        self.fence.disarm()

    def release(self) -> None:
        """Give up the lease at shutdown, once PostgreSQL is stopped: a standby takes over
        without waiting for the lease to expire."""
        if not self.executor.lease.held():
            return
        try:
            self._open_store().release_leader(self.me)
        except StoreUnavailable as exc:
            log.warning("could not release the lease: %s", exc.message)
        with contextlib.suppress(StoreUnavailable):
            self._open_store().remove_member(self.me)

    def status(self) -> HaStatus:
        local, view = self.last_local, self.last_view
        now = time.monotonic()
        until = self.executor.lease.valid_until
        return HaStatus(
            mode=str(self.settings.mode),
            pg=self.supervisor.state(),
            role=local.role,
            leader=view.leader,
            holds_lease=self.executor.lease.held(now),
            lease_left=None if until is None else max(0.0, until - now),
            store_ok=view.ok,
            paused=view.state.paused(),
            decision=self.sentence,
            decided_at=self.decided_at,
            streaming=local.streaming,
        )
