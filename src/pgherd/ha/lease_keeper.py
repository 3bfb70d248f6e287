"""The lease keeper: renews the lease on the HA loop's behalf while a cycle that decided
to keep it is held up in PostgreSQL work (the rule, and why, in model/lease_keeping.py).

A small thread, like the fence's, that makes no decision of its own: the loop hands it a
mandate after each decision (:meth:`LeaseKeeper.decided`), and it renews only within
that mandate, only when the loop is overdue, and only a lease this node still believes
it holds. Renewals go through the executor's lease call, so the fence is moved exactly as
a cycle's renewal moves it; the store is called outside the lease lock (a renewal of the
loop's that a slow store holds up does not hold this one up), and a renewal that comes
back after :meth:`decided` ended the mandate, or after the lease was given up, is
dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

from pgherd import metrics
from pgherd.dcs.base import StoreUnavailable
from pgherd.errors import PgherdError
from pgherd.ha.execute import Executor
from pgherd.model import lease_keeping
from pgherd.model.ha import Action
from pgherd.model.lease_keeping import Mandate

log = logging.getLogger("pgherd.ha")


class LeaseKeeper:
    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.settings = executor.settings
        self.mandate: Mandate | None = None
        self.renewals = 0  # made on the loop's behalf since the agent started
        self._stalled = False  # renewing for the loop now (logged once per stall)
        self._stop = threading.Event()

    def decided(self, actions: Iterable[Action], answered: bool, arm: bool) -> None:
        """A cycle decided ``actions`` (its server answered its read: ``answered``); called
        before they are carried out."""
        ex = self.executor
        with ex.lease_lock:
            self.mandate = lease_keeping.after_deciding(
                self.settings, self.mandate, actions, answered, arm, ex.clock.monotonic()
            )
            if self._stalled:
                self._stalled = False
                log.info("the HA cycle is back: it renews its lease itself again")

    def tick(self) -> bool:
        """Renew if a renewal is due on the loop's behalf; True when one was made. The
        store call is not made under the lease lock: a renewal of the loop's that a slow
        store holds up does not hold this one up."""
        ex = self.executor
        with ex.lease_lock:
            now = ex.clock.monotonic()
            mandate = self.mandate
            if mandate is None or not lease_keeping.renewal_due(
                self.settings, mandate, ex.renewed_at, ex.lease.valid_until, now
            ):
                return False
            if not self._stalled:
                self._stalled = True
                log.warning(
                    "the HA cycle is held up (no renewal for %.1f s): renewing the lease on "
                    "its behalf for up to %.1f s more",
                    now - (ex.renewed_at or now),
                    mandate.until - now,
                )
        try:
            ex.renew(arm=mandate.arm, wanted=lambda: self.mandate is not None)
        except StoreUnavailable as exc:
            # Tried again at the next tick while the lease lasts: a store that drops a
            # packet now and then answers the next call.
            log.warning("renewing the lease for the HA cycle: %s", exc.message)
            return False
        except PgherdError as exc:  # another member holds it: nothing left to keep
            log.warning("renewing the lease for the HA cycle: %s", exc.message)
            with ex.lease_lock:
                self.mandate = None
            return False
        self.renewals += 1
        metrics.LEASE_KEPT_FOR_LOOP.inc()
        return True

    def run(self) -> None:
        every = lease_keeping.tick_every(self.settings)
        while not self._stop.wait(every):
            try:
                self.tick()
            except Exception:
                log.exception("the lease keeper failed")

    def close(self) -> None:
        self._stop.set()
        with self.executor.lease_lock:
            self.mandate = None
