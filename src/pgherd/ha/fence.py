"""The fence: stops a primary whose right to take writes runs out, whatever the HA loop
is doing.

The HA loop demotes a primary that cannot renew its lease a cycle before the lease can
expire (model/ha.py). That relies on the loop getting to run: a store call that hangs, a
starved CPU or a bug could hold it up. This watchdog is the backstop: the loop tells it
until when the primary may take writes (the lease deadline, measured from *before* the
renewal was sent; in failsafe, a TTL past the moment every member confirmed it), and a
small thread that does nothing else stops PostgreSQL at once (immediate shutdown) when
that moment is ``margin`` away.

The same moment is published (``publish``) to the postmaster's keeper (pg/keeper.py),
which stops PostgreSQL then if the agent is gone: a killed or stopped agent's primary
never takes writes past its lease either. And a watchdog device, when the node has one
(ha/watchdog.py), follows the fence: armed and pinged while the node may take writes,
closed when it may not — it resets the machine if nothing on it gets to run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from pgherd.ha.watchdog import Watchdog

log = logging.getLogger("pgherd.ha")


class Fence:
    def __init__(
        self,
        stop_now: Callable[[], None],
        margin: float = 0.3,
        clock: Callable[[], float] = time.monotonic,
        publish: Callable[[float | None], None] | None = None,
        watchdog: Watchdog | None = None,
    ) -> None:
        self._stop_now = stop_now
        self.watchdog = watchdog
        self._publish = publish or (lambda _at: None)
        self.margin = margin
        self._clock = clock
        self._until: float | None = None
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self.fired = 0  # how many times it had to stop PostgreSQL

    def allow_until(self, deadline: float) -> None:
        """The primary may take writes until ``deadline`` (monotonic seconds). With a
        watchdog, it is armed (or pinged) first: when arming fails (WatchdogError) the
        deadline does not move."""
        with self._lock:
            if self.watchdog is not None:
                self.watchdog.follow(deadline)
            earlier = self._until is None or deadline < self._until
            self._until = deadline
            self._publish(deadline - self.margin)
        if earlier:
            self._wake.set()  # the thread sleeps until the old deadline: wake it

    def disarm(self) -> None:
        """Not a primary any more (or never was): nothing to fence."""
        with self._lock:
            self._until = None
            self._publish(None)
            self._release_watchdog()

    def _release_watchdog(self) -> None:
        if self.watchdog is not None:
            try:
                self.watchdog.follow(None)
            except Exception:
                log.exception("watchdog: could not disarm it")

    @property
    def until(self) -> float | None:
        return self._until

    def check(self) -> bool:
        """Fence now if the deadline is near; True if it did."""
        with self._lock:
            until = self._until
            if until is None or self._clock() < until - self.margin:
                return False
            self._until = None
            self._publish(None)
        log.error(
            "fencing: the lease may expire in %.2f s and was not renewed: stopping "
            "PostgreSQL now (immediate shutdown)",
            until - self._clock(),
        )
        self.fired += 1
        try:
            self._stop_now()
        except Exception:
            log.exception("fencing failed")
        with self._lock:
            if self._until is None:  # not armed again meanwhile: PostgreSQL is stopped
                self._release_watchdog()
        return True

    def run(self, longest: float = 1.0) -> None:
        """Sleep until the deadline is ``margin`` away (at most ``longest`` at a time)."""
        while not self._closed:
            self.check()
            until = self._until
            pause = longest if until is None else until - self.margin - self._clock()
            self._wake.wait(min(max(pause, 0.005), longest))
            self._wake.clear()

    def close(self) -> None:
        """End the thread; what was last published stays (the agent is stopping: the keeper
        holds PostgreSQL to it). A watchdog is closed with the magic character: nothing
        on this machine pings it any more."""
        self._closed = True
        self._wake.set()
        if self.watchdog is not None:
            self.watchdog.close()
