"""The HA loop of an agent under ``failover: automatic``: observe → decide → act, every
``loop_wait`` seconds (docs/failover.md).

Each cycle reads this node's PostgreSQL, reads the store ONCE (leader, members, the
cluster state), asks the peers' agents only when a decision may move the primary role
and the leader's agent only when this standby may have forked from it (both decided by
model/observing.py), calls :func:`pgherd.model.ha.decide`, performs the actions
(ha/execute.py), then the fence and lease orders of :func:`pgherd.model.fencing.after_acting`,
checks in to the store, and logs the decision's sentence when it changes. Failover
decisions are recorded as cluster events in the store (``pgherd cluster events``).

Nothing here decides: the rules are in model/, the I/O in the collaborators
:func:`build` hands to :class:`HaLoop`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from pgherd import metrics
from pgherd.clients.credential import Credential
from pgherd.config import ClusterConfig, fingerprint
from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.dcs.checkin import CheckIn, keep_for
from pgherd.dcs.counting import CountingStore
from pgherd.dcs.open import open_store
from pgherd.dcs.store_events import StoreEventLog
from pgherd.errors import PgherdError
from pgherd.ha import observe
from pgherd.ha.clock import SYSTEM, Clock, system_monotonic
from pgherd.ha.execute import Executor, failed
from pgherd.ha.fence import Fence
from pgherd.ha.lease_keeper import LeaseKeeper
from pgherd.ha.supervisor import Supervisor
from pgherd.ha.watchdog import Watchdog
from pgherd.model import failover_report
from pgherd.model import watchdog as watchdog_model
from pgherd.model.events import Event, Outcome
from pgherd.model.fencing import after_acting
from pgherd.model.ha import RECORDED, Action, Do, Local, Peer, World, decide
from pgherd.model.ha_report import HaReport
from pgherd.model.ha_settings import Mode, Settings
from pgherd.model.observing import (
    CheckinSilence,
    DivergenceWatch,
    needs_fresh_peers,
    watch_divergence,
)
from pgherd.model.status import PgState, Role
from pgherd.pg.local_node import LocalNode

log = logging.getLogger("pgherd.ha")

OPERATIONS = {
    Do.PROMOTE: "failover",
    Do.DEMOTE: "demote",
    Do.REJOIN: "rejoin",
    Do.RELEASE_LEASE: "release-lease",
    Do.FOLLOW: "follow",
    Do.START: "restart",
}


def settings_of(config: ClusterConfig) -> Settings:
    if config.ha is None:
        return Settings(mode=Mode.MANUAL)
    return config.ha.settings(Mode.AUTOMATIC if config.automatic else Mode.MANUAL)


class LocalReading(Protocol):
    def read(self) -> observe.LocalState: ...


class PeerReading(Protocol):
    def read(self) -> tuple[Peer, ...]: ...


class DivergenceProbing(Protocol):
    def diverged(self, leader: str, running: bool = True) -> bool: ...


class StoreHandle:
    """The store, opened on first use and kept: an agent may start before its store
    answers, and the loop and its executor share one client."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self._store: CountingStore | None = None

    def __call__(self) -> Store:
        if self._store is None:
            self._store = CountingStore(open_store(self.config))
        return self._store

    def calls(self) -> dict[str, int]:
        """The calls made to the store so far (the loop's, its executor's and its fence's),
        by kind; none before it was opened."""
        return {} if self._store is None else self._store.counts()


class HaLoop:
    """One agent's HA loop. Its collaborators come in built (:func:`build` wires the real
    ones; the tests give fakes): the executor and its fence, the readers of this node,
    of the peers and of the store, and the probe that compares WAL with the leader's."""

    def __init__(
        self,
        config: ClusterConfig,
        local: LocalNode,
        executor: Executor,
        reader: LocalReading,
        peers: PeerReading,
        store: Callable[[], Store],
        probe: DivergenceProbing,
        clock: Clock = SYSTEM,
    ) -> None:
        self.config = config
        self.clock = clock
        self.local = local
        self.settings = executor.settings
        self.me = local.node.name
        self.executor = executor
        self.fence = executor.fence
        self.keeper = LeaseKeeper(executor)
        self.supervisor = executor.supervisor
        self.reader = reader
        self.peers = peers
        self._store = store
        self.probe = probe
        # When the loop started (the bootstrap waited for the store before), for model.ha's
        # boot grace: reset by run().
        self.started_at = self.clock.monotonic()
        self._saw_leader = False  # a leader at work since then (streamed from, or us)
        self._stop = threading.Event()
        self._stopped = threading.Event()  # run() returned
        self._wake = threading.Event()
        self._events: StoreEventLog | None = None
        self._watch = DivergenceWatch()
        self._silence = CheckinSilence(self.started_at)
        self.sentence = "starting"
        self.decided_at: float | None = None  # wall clock, for people
        self.decided_mono: float | None = None  # the same moment, for liveness
        self.cycles = 0  # since the agent started (GET /ha, with the store calls)
        self.last_local = observe.LocalState(PgState.STOPPED, Role.UNKNOWN)
        self.last_view = observe.StoreView(False, problem="not read yet")
        self.last_world: World | None = None
        self.failsafe_active = False  # the store is down and failsafe keeps us writable
        self.demoting = False  # a DEMOTE is under way: /primary answers 503 from now
        executor.on_promoted = self._promoted

    # ---- the store -------------------------------------------------------------------

    def _open_store(self) -> Store:
        store = self._store()
        if self._events is None:
            self._events = StoreEventLog(store)
        return store

    def _read_store(self) -> observe.StoreView:
        try:
            return observe.StoreView(True, self._open_store().snapshot())
        except StoreUnavailable as exc:
            return observe.StoreView(False, problem=exc.message)

    # ---- one cycle -------------------------------------------------------------------

    def cycle(self) -> tuple[Action, ...]:
        self.cycles += 1
        local_state = self.reader.read()
        view = self._read_store()
        world, me = self._observe(local_state, view)
        actions = decide(self.settings, me, world)
        self.last_local, self.last_view = local_state, view
        answered = local_state.pg is PgState.RUNNING
        self.keeper.decided(actions, answered, arm=_primary_ahead(me, actions))
        store_lost = self._act(actions, me, world)
        if store_lost and view.ok:
            # The store stopped answering during this cycle (the renewal failed). The next
            # cycle would first wait for it again, and the fence may fire before that cycle
            # ends: check failsafe now, and make no more store calls in this cycle.
            view = observe.StoreView(False, problem="the store stopped answering")
            world, me = self._observe(local_state, view)
        orders = after_acting(self.settings, me, world, actions)
        self.last_world = world
        self.failsafe_active = not world.store_ok and Do.EXTEND_FENCE in [o.do for o in orders]
        for order in orders:
            self.executor.perform(order, primary_ahead=False)
        self._check_in(me, view, actions)
        return actions

    def _observe(
        self, local_state: observe.LocalState, view: observe.StoreView
    ) -> tuple[World, Local]:
        """The world as this cycle sees it, and this node in it. The peers are asked when a
        decision may move the primary role; the leader, when this standby may have
        diverged from it."""
        paused = view.state.paused() is not None
        fresh = needs_fresh_peers(view.ok, view.leader, local_state.pg, paused)
        now = self.clock.monotonic()
        if view.ok:
            checked_in = {name: c.at for name, c in view.checkins.items()}
            self._silence = self._silence.note(checked_in, now)
        peers = self.peers.read() if fresh else None
        if peers is not None:
            ttl = self.settings.ttl
            peers = tuple(
                replace(p, in_store=self._silence.silent_for(p.name, now) < ttl) for p in peers
            )
        world = observe.world(
            self.config,
            self.me,
            view,
            peers,
            self.settings.ttl,
            observed_at=self.clock.monotonic(),
            now=self.clock.time(),
        )
        return world, self._local(local_state, world)

    def _local(self, state: observe.LocalState, world: World) -> Local:
        now = self.clock.monotonic()
        check = watch_divergence(
            self._watch,
            self.me,
            state.pg,
            state.role,
            state.streaming,
            state.upstream,
            world.leader,
            now,
        )
        self._watch = check.watch
        diverged = (
            check.compare_now
            and world.leader is not None
            and self.probe.diverged(world.leader, running=state.pg is PgState.RUNNING)
        )
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
            diverged_from_leader=diverged,
            streaming_standbys=state.streaming_standbys,
            replicate_from=self.local.node.replicate_from,
            never_ran=state.never_ran,
            restarting_for=state.restarting_for,
            watchdog_problem=self.fence.watchdog.unfit() if self.fence.watchdog else None,
            booting_for=self._booting_for(state, world, now),
        )

    def _booting_for(self, state: observe.LocalState, world: World, now: float) -> float | None:
        """Seconds since this loop started while it has seen no leader at work (model.ha's
        boot grace); None from the moment it streams from a leader or leads."""
        if not self._saw_leader and world.leader is not None:
            streams = state.role is Role.STANDBY and state.streaming
            leads = world.leader == self.me and state.pg is PgState.RUNNING
            self._saw_leader = streams or leads
        return None if self._saw_leader else now - self.started_at

    def _act(self, actions: tuple[Action, ...], me: Local, world: World) -> bool:
        """Carry out ``actions`` in order, up to the first that fails; True when that one
        failed because the store did not answer."""
        primary_ahead = _primary_ahead(me, actions)
        sentence = " / ".join(a.reason for a in actions)
        for action in actions:
            # A standby coming back is routine; a primary's restart in place is a choice
            # against a failover, and recorded like one.
            recorded = action.do in RECORDED and not (
                action.do is Do.START and me.role is not Role.PRIMARY
            )
            event = self._event(action, world, me) if recorded else None
            self.demoting = action.do is Do.DEMOTE  # load balancers drop it before it stops
            try:
                detail = self.executor.perform(action, primary_ahead)
            except Exception as exc:
                self.demoting = False
                why = failed(exc)
                self._log(f"{sentence} — {action.do} failed: {why}", logging.WARNING)
                if event is not None:
                    self._save(event.finish(Outcome.FAILED, f"{action.reason}: {why}"))
                if not isinstance(exc, PgherdError):
                    log.exception("HA action %s failed", action.do)
                return isinstance(exc, StoreUnavailable)
            self.demoting = False
            if action.do is Do.PROMOTE:
                metrics.FAILOVERS.inc()
            if event is not None:
                text = f"{action.reason} ({detail})" if detail else action.reason
                if action.do is Do.PROMOTE:
                    text = f"{text}: {self._explain(me, world)}"
                self._save(event.finish(Outcome.SUCCEEDED, text))
            if detail and action.do not in (Do.RENEW_LEASE, Do.WAIT):
                log.info("%s: %s", action.do, detail)
        self._log(sentence, logging.INFO)
        return False

    def _promoted(self) -> None:
        """/primary answers 200 from now (the lease is held), not at the next cycle's read."""
        self.last_local = replace(self.last_local, role=Role.PRIMARY)

    def _lost_leader(self, world: World) -> failover_report.LostLeader:
        name = world.last_leader
        seen = self.last_view.checkins.get(name) if name else None
        return failover_report.LostLeader(name, seen.at if seen is not None else None)

    def _explain(self, me: Local, world: World) -> str:
        """A failover's why: the lost leader, when it last renewed, every candidate."""
        found = failover_report.candidates(self.settings, me, world)
        return failover_report.sentence(self._lost_leader(world), found, self.clock.time())

    def _event(self, action: Action, world: World, me: Local) -> Event:
        details = {"decided_by": self.me}
        if action.target:
            details["target"] = action.target
        if world.leader:
            details["leader"] = world.leader
        if action.do is Do.PROMOTE:
            found = failover_report.candidates(self.settings, me, world)
            details |= failover_report.details(self._lost_leader(world), found)
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

    def say(self, sentence: str) -> None:
        """What GET /ha shows as the last decision (the bootstrap's, before the loop runs)."""
        self.sentence = sentence
        self._decided()

    def _decided(self) -> None:
        self.decided_at = self.clock.time()
        self.decided_mono = self.clock.monotonic()

    def _log(self, sentence: str, level: int) -> None:
        self._decided()
        if sentence != self.sentence:
            log.log(level, "%s", sentence)
            self.sentence = sentence

    def _check_in(self, me: Local, view: observe.StoreView, actions: tuple[Action, ...]) -> None:
        if not view.ok:
            return
        holds = self.executor.lease.held()
        acquired = Do.ACQUIRE_LEASE in [a.do for a in actions]
        leader = holds and (view.leader == self.me or acquired)
        checkin = CheckIn.of(
            me,
            self.local.node.api_url,
            leader,
            self.sentence,
            self.clock.time(),
            config_fingerprint=fingerprint(self.config),
        )
        with contextlib.suppress(StoreUnavailable):
            self._open_store().touch_member(
                self.me, checkin.model_dump_json(), keep_for(self.settings.ttl)
            )

    # ---- the thread ------------------------------------------------------------------

    def run(self) -> None:
        self.started_at = self.clock.monotonic()
        self._silence = CheckinSilence(self.started_at)
        threading.Thread(target=self.fence.run, name="fence", daemon=True).start()
        threading.Thread(target=self.keeper.run, name="lease-keeper", daemon=True).start()
        log.info(
            "automatic failover: ttl %g s, loop_wait %g s, retry_timeout %g s%s%s",
            self.settings.ttl,
            self.settings.loop_wait,
            self.settings.retry_timeout,
            ", synchronous" if self.settings.synchronous else "",
            ", failsafe" if self.settings.failsafe else "",
        )
        try:
            while not self._stop.is_set():
                started = self.clock.monotonic()
                try:
                    with metrics.HA_CYCLE_SECONDS.time():
                        self.cycle()
                except Exception:
                    log.exception("HA cycle failed")
                took = self.clock.monotonic() - started
                self._wake.wait(
                    min(max(0.0, self.settings.loop_wait - took), self.settings.loop_wait)
                )
                self._wake.clear()
        finally:
            self._stopped.set()

    def wake(self) -> None:
        self._wake.set()

    def reconfigure(self, config: ClusterConfig) -> None:
        """A reloaded pgherd.yaml (ha/reload.py): the members and their addresses. The HA
        settings (store, ttl, timing) stay those the agent started with."""
        old = self.peers
        self.config = config
        if isinstance(old, observe.PeerReader):
            self.peers = observe.PeerReader(config, self.me, old.timeout)
            old.close()

    def stop(self, wait: float = 0.0) -> bool:
        """Stop deciding, and the fence thread; wait up to ``wait`` seconds for a cycle in
        progress to end (True if it did). The keeper keeps the last fence deadline: the
        agent is stopping, PostgreSQL runs on (ha/handover.py)."""
        self._stop.set()
        self._wake.set()
        self.keeper.close()
        self.fence.close()
        return self._stopped.wait(wait)

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

    def status(self) -> HaReport:
        local, view = self.last_local, self.last_view
        now = self.clock.monotonic()
        until = self.executor.lease.valid_until
        return HaReport(
            mode=self.settings.mode,
            state=self.supervisor.state(),
            role=local.role,
            leader=view.leader,
            holds_lease=self.executor.lease.held(now),
            lease_left=None if until is None else round(max(0.0, until - now), 3),
            store_ok=view.ok,
            paused=view.state.paused(),
            maintenance=view.state.maintenance() is not None,
            failsafe_active=self.failsafe_active,
            decision=self.sentence,
            decided_at=self.decided_at,
            streaming=local.streaming,
            watchdog=self._watchdog_state(),
            cycles=self.cycles,
            store_calls=self._store.calls() if isinstance(self._store, StoreHandle) else {},
        )

    def _watchdog_state(self) -> str | None:
        watchdog = self.fence.watchdog
        if watchdog is None:
            return None
        if watchdog.armed:
            return f"armed ({watchdog.path}, {watchdog.timeout} s)"
        return f"cannot be armed: {watchdog.problem}" if watchdog.problem else "disarmed"


def _primary_ahead(me: Local, actions: tuple[Action, ...]) -> bool:
    """It runs, or is about to run, as the primary: a lease it gets arms the fence, and a
    restart does not wait for the crash backoff."""
    return me.role is Role.PRIMARY or Do.PROMOTE in [a.do for a in actions]


def build(
    config: ClusterConfig,
    local: LocalNode,
    supervisor: Supervisor,
    lock: threading.Lock,
    token: Credential,
    clock: Clock = SYSTEM,
) -> HaLoop:
    """The agent's HA loop with its real parts, on ``clock``."""
    settings = settings_of(config)
    store = StoreHandle(config)

    def publish(at: float | None) -> None:  # the keeper holds it too, on the system's clock
        supervisor.post_fence(None if at is None else system_monotonic(clock, at))

    device = local.node.watchdog or (config.ha.watchdog if config.ha else None)
    watchdog = (
        Watchdog(device, watchdog_model.timeout_for(settings.ttl), clock.monotonic)
        if device is not None
        else None
    )
    fence = Fence(supervisor.fence, clock=clock.monotonic, publish=publish, watchdog=watchdog)
    executor = Executor(local, supervisor, settings, token, fence, lock, store, clock)
    return HaLoop(
        config,
        local,
        executor,
        observe.LocalReader(local, supervisor),
        observe.PeerReader(config, local.node.name, min(settings.retry_timeout, 1.0)),
        store,
        observe.DivergenceProbe(local, token),
        clock,
    )
