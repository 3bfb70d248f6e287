"""The "act" of an HA cycle: carries out decide()'s actions, in order, stopping at the
first that fails (a PROMOTE after an ACQUIRE_LEASE that lost the race never runs).

Lease calls measure the lease's deadline from *before* the request is sent, so the
deadline this node believes in is never later than the one the store enforces. Actions
that change PostgreSQL take the agent's action lock (briefly: an operator's operation that
holds it makes the cycle try again next time) and use the same node-level steps as the
operations of issue 3: physical/promote.py, pg_rewind, clones, slots.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from pgherd import metrics
from pgherd.clients.credential import Credential
from pgherd.clients.ops import OpsClient
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.errors import PgherdError, Refused
from pgherd.ha import rejoin_local, sync
from pgherd.ha.clock import SYSTEM, Clock
from pgherd.ha.fence import Fence
from pgherd.ha.supervisor import Supervisor
from pgherd.model.ha import Action, Do
from pgherd.model.ha_settings import Settings
from pgherd.model.haproxy import DRAIN_SECONDS
from pgherd.pg import replication, sync_standbys
from pgherd.pg.local_node import LocalNode
from pgherd.physical import promote, slots

log = logging.getLogger("pgherd.ha")


class Busy(PgherdError):
    """An operator's operation holds the node; the cycle tries again next time."""


@dataclass
class Lease:
    """What this agent knows of its own lease."""

    valid_until: float | None = None  # monotonic; measured from before the request
    clock: Clock = SYSTEM

    def held(self, now: float | None = None) -> bool:
        at = self.clock.monotonic() if now is None else now
        return self.valid_until is not None and at < self.valid_until


@dataclass
class LeaseWhileWaiting:
    """Keeps the lease renewed while an action this cycle decided waits on PostgreSQL (a
    promotion): every ``every`` seconds, as the cycles would, had the action not held
    the loop. A renewal that fails raises, which ends the wait: the fence keeps its last
    deadline and stops the server if nobody renews by then."""

    executor: Executor
    every: float
    last: float = field(init=False)

    def __post_init__(self) -> None:
        self.last = self.executor.clock.monotonic()

    def tick(self) -> None:
        now = self.executor.clock.monotonic()
        if now - self.last < self.every:
            return
        self.last = now
        self.executor.renew(arm=True)


@dataclass
class Executor:
    local: LocalNode
    supervisor: Supervisor
    settings: Settings
    token: Credential
    fence: Fence
    lock: threading.Lock
    store: Callable[[], Store]
    clock: Clock = SYSTEM
    lease: Lease = field(init=False)
    lock_wait: float = 0.2
    least_left: float | None = None  # the least of its lease left at a renewal, seen so far
    renewed_at: float | None = None  # monotonic: when the last lease call that worked was sent
    # Guards what this agent knows of its lease, changed by the loop and by the lease
    # keeper's thread (ha/lease_keeper.py); never held across a store call.
    lease_lock: threading.RLock = field(default_factory=threading.RLock)
    _lease_epoch: int = 0  # bumped whenever the lease is given up here (forget_lease)
    # Told the moment the server left recovery, before the slots are made: load balancers
    # may send writes from then on.
    on_promoted: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        self.lease = Lease(clock=self.clock)

    @property
    def me(self) -> str:
        return self.local.node.name

    @contextmanager
    def _locked(self) -> Iterator[None]:
        if not self.lock.acquire(timeout=self.lock_wait):
            raise Busy("an operation holds this node; the next cycle tries again")
        try:
            yield
        finally:
            self.lock.release()

    # ---- one action ------------------------------------------------------------------

    def perform(self, action: Action, primary_ahead: bool) -> str | None:
        """Carry out ``action``; returns a detail for the log (None: nothing to add).
        Raises when it failed. ``primary_ahead``: this node runs, or is about to run, as
        the primary, so a lease it gets arms the fence."""
        do = action.do
        if do is Do.WAIT:
            return None
        if do is Do.EXTEND_FENCE:
            assert action.until is not None
            self.fence.allow_until(action.until)
            return None
        if do is Do.FORGET_LEASE:
            self.forget_lease()
            return None
        if do is Do.DISARM_FENCE:
            self.fence.disarm()
            return None
        if do is Do.RENEW_LEASE:
            return self.renew(arm=primary_ahead)
        if do is Do.ACQUIRE_LEASE:
            detail = self._lease_call(self.store().acquire_leader, "acquire", primary_ahead)
            with contextlib.suppress(StoreUnavailable):
                dcs_state.update(
                    self.store(), lambda s: s.model_copy(update={"last_leader": self.me})
                )
            return detail
        if do is Do.RELEASE_LEASE:
            self.store().release_leader(self.me)
            self.forget_lease()
            self.fence.disarm()
            return "released"
        if do is Do.PROMOTE:
            return self._promote()
        if do is Do.DEMOTE:
            return self._demote(action.target)
        if do is Do.FOLLOW:
            assert action.target is not None
            return self._follow(action.target)
        if do is Do.REJOIN:
            assert action.target is not None
            return self._rejoin(action.target)
        if do is Do.START:
            if primary_ahead:
                self._require_watchdog()
            with self._locked():
                # A primary restarting in place under its lease does not back off:
                # primary_start_timeout bounds its attempts, then a standby takes over.
                started = self.supervisor.spawn_when_due(urgent=primary_ahead)
            return "started" if started else "waiting for the restart backoff"
        if do is Do.SET_SYNC:
            return sync.apply(
                self.store(),
                self.local.instance,
                self.me,
                action.members,
                self.settings.sync_quorum,
            )
        raise ValueError(f"unknown action {do}")

    def renew(self, arm: bool, wanted: Callable[[], bool] = lambda: True) -> str:
        """Renew the lease (``arm``: and move the fence's deadline with it). ``wanted``
        is asked, once the store has answered, whether the renewal still counts."""
        return self._lease_call(self.store().renew_leader, "renew", arm, wanted)

    def forget_lease(self) -> None:
        """This node no longer holds the lease, by its own reckoning: and a renewal still
        under way (the lease keeper's) must not bring it back."""
        with self.lease_lock:
            self.lease.valid_until = None
            self._lease_epoch += 1

    def _lease_call(
        self,
        call: Callable[[str, float], bool],
        what: str,
        arm: bool,
        wanted: Callable[[], bool] = lambda: True,
    ) -> str:
        """The store is called outside the lease lock: the loop and the lease keeper may
        each have a renewal under way (a slow store answers one of them in time); each
        result is applied under the lock, the later deadline winning, and one that
        comes back after the lease was given up meanwhile is dropped."""
        with self.lease_lock:
            epoch = self._lease_epoch
        sent_at = self.clock.monotonic()
        got = call(self.me, self.settings.ttl)
        with self.lease_lock:
            if not got:
                self.forget_lease()
                raise Refused(f"could not {what} the lease: another member holds it")
            if epoch != self._lease_epoch or not wanted():
                return "renewed in the store, but given up here meanwhile"
            before = self.lease.valid_until
            until = sent_at + self.settings.ttl
            if before is None or until > before:
                self.lease.valid_until = until
                self.renewed_at = sent_at
            if before is not None:
                self._note_left(before - sent_at)
            if arm:
                self.fence.allow_until(self.lease.valid_until or until)
        return f"lease valid for {self.settings.ttl:g} s"

    def _promote(self) -> str:
        if not self.lease.held():
            raise Refused("not promoting: my lease is not certainly valid")
        with self._locked():
            if self.settings.synchronous:
                sync.before_promotion(self.store(), self.me)
            self.fence.allow_until(self.lease.valid_until or self.clock.monotonic())
            self._require_watchdog()
            renewing = LeaseWhileWaiting(self, every=self.settings.loop_wait)
            result = promote.promote(self.local, timeout=30, while_waiting=renewing.tick)
            if self.on_promoted is not None:
                self.on_promoted()
            slots.for_other_nodes(self.local)  # before they come to stream from us
            if not self.settings.synchronous:
                self._clear_sync_names()
        return (
            f"timeline {result.timeline_before} → {result.timeline_after} in {result.seconds:.2f} s"
        )

    def _note_left(self, left: float) -> None:
        """How much of its lease the leader had left when it renewed it (metrics)."""
        metrics.LEASE_LEFT.observe(left)
        if self.least_left is None or left < self.least_left:
            self.least_left = left
            metrics.LEASE_LEFT_MIN.set(left)

    def _require_watchdog(self) -> None:
        """A node with a watchdog takes writes only once it is armed (the fence arms it at
        the lease's renewal; not when the lease is already too close to its end)."""
        watchdog = self.fence.watchdog
        if watchdog is not None and not watchdog.armed:
            raise Refused(
                f"the watchdog {watchdog.path} is not armed: "
                f"{watchdog.problem or 'the lease was too close to its end to arm it'}",
                "the next cycle tries again",
            )

    def _clear_sync_names(self) -> None:
        try:
            with self.local.instance.connect() as conn:
                if sync_standbys.current(conn):
                    sync_standbys.set_names(conn, "")
        except PgherdError as exc:
            log.warning("could not clear synchronous_standby_names: %s", exc.message)

    def _demote(self, target: str | None) -> str:
        """Stop taking writes now (immediate shutdown), then come back as a standby."""
        with self._locked():
            self.forget_lease()  # first: no renewal under way re-arms the fence
            self.fence.disarm()
            self.supervisor.stop("immediate", timeout=10)
            # Load balancers see /primary fail and drop it before it takes connections
            # again as a standby (model/haproxy.py), so no write gets "read-only".
            time.sleep(DRAIN_SECONDS)
            if target is not None:
                try:
                    return "stopped; " + rejoin_local.rejoin(
                        self.local, self.supervisor, target, self.token
                    )
                except PgherdError as exc:
                    log.warning("rejoining %s at once failed (%s)", target, exc.message)
            rejoin_local.configure_standby(self.local, target)
            self.supervisor.spawn_when_due()
        where = f"a standby of {target}" if target else "a standby (read-only)"
        return f"stopped at once; started again as {where}"

    def _follow(self, target: str) -> str:
        try:
            OpsClient(self.local.config.node(target), self.token, timeout=5).create_slot(self.me)
        except PgherdError as exc:
            log.warning("could not create slot %s on %s: %s", self.me, target, exc.message)
        with self._locked(), self.local.instance.connect() as conn:
            if not replication.in_recovery(conn):
                raise Refused(f"{self.me} runs as a primary", "it must be demoted first")
            self.local.write_config(upstream=self.local.config.node(target))
            replication.reload(conn)
        return f"now streaming from {target} (settings reloaded)"

    def _rejoin(self, target: str) -> str:
        with self._locked():
            try:
                return rejoin_local.rejoin(self.local, self.supervisor, target, self.token)
            except BaseException:
                # Left down while it should run: a later cycle tries again.
                self.supervisor.mark_down()
                raise


def failed(exc: BaseException) -> str:
    if isinstance(exc, StoreUnavailable):
        return f"the store did not answer: {exc.message}"
    if isinstance(exc, PgherdError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"
