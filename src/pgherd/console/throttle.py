"""The console's record of failed logins, per user name and per client address, for
:mod:`pgherd.model.throttle` to judge. In memory: a console restart forgets them, which
costs a guesser a restart it cannot cause."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from pgherd.model import throttle

MAX_KEYS = 10_000  # bounded: a flood of made-up names does not grow it without end


class Failures:
    def __init__(
        self, policy: throttle.Policy = throttle.DEFAULT, clock: Callable[[], float] = time.time
    ) -> None:
        self.policy = policy
        self.clock = clock
        self._by_key: OrderedDict[str, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def wait(self, user: str, address: str) -> float:
        """Seconds before a login as ``user`` from ``address`` may be checked."""
        now = self.clock()
        with self._lock:
            return max(
                throttle.wait(self._by_key.get(f"user:{user}", []), now, self.policy),
                throttle.wait(self._by_key.get(f"addr:{address}", []), now, self.policy),
            )

    def failed(self, user: str, address: str) -> None:
        now = self.clock()
        with self._lock:
            for key in (f"user:{user}", f"addr:{address}"):
                kept = throttle.recent(self._by_key.pop(key, []), now, self.policy)
                self._by_key[key] = [*kept, now][-64:]
            while len(self._by_key) > MAX_KEYS:
                self._by_key.popitem(last=False)

    def succeeded(self, user: str, address: str) -> None:
        with self._lock:
            self._by_key.pop(f"user:{user}", None)
            self._by_key.pop(f"addr:{address}", None)
