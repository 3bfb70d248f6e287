"""An in-process store for unit tests, with a clock the test controls."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pgherd.dcs.base import Leader, Member, Snapshot, Versioned

LEADER = "leader"
CONFIG = "config"
MEMBER = "members/"


class MemoryStore:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._kv: dict[str, tuple[str, float | None, int]] = {}  # value, expires_at, version
        self._events: list[str] = []
        self._version = 0

    def _live(self, key: str) -> tuple[str, float | None, int] | None:
        entry = self._kv.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self._clock():
            del self._kv[key]
            return None
        return entry

    def _put(self, key: str, value: str, ttl: float | None) -> None:
        self._version += 1
        expires = None if ttl is None else self._clock() + ttl
        self._kv[key] = (value, expires, self._version)

    def acquire_leader(self, name: str, ttl: float) -> bool:
        with self._lock:
            if self._live(LEADER) is not None:
                return False
            self._put(LEADER, name, ttl)
            return True

    def renew_leader(self, name: str, ttl: float) -> bool:
        with self._lock:
            entry = self._live(LEADER)
            if entry is None or entry[0] != name:
                return False
            self._put(LEADER, name, ttl)
            return True

    def release_leader(self, name: str) -> bool:
        with self._lock:
            entry = self._live(LEADER)
            if entry is None or entry[0] != name:
                return False
            del self._kv[LEADER]
            return True

    def leader(self) -> Leader | None:
        with self._lock:
            return self._leader()

    def _leader(self) -> Leader | None:
        entry = self._live(LEADER)
        if entry is None:
            return None
        left = None if entry[1] is None else entry[1] - self._clock()
        return Leader(entry[0], left)

    def touch_member(self, name: str, data: str, ttl: float) -> None:
        with self._lock:
            self._put(MEMBER + name, data, ttl)

    def remove_member(self, name: str) -> None:
        with self._lock:
            self._kv.pop(MEMBER + name, None)

    def members(self) -> tuple[Member, ...]:
        with self._lock:
            return self._members()

    def _members(self) -> tuple[Member, ...]:
        found = []
        for key in sorted(self._kv):
            if key.startswith(MEMBER):
                entry = self._live(key)
                if entry is not None:
                    left = None if entry[1] is None else entry[1] - self._clock()
                    found.append(Member(key.removeprefix(MEMBER), entry[0], left))
        return tuple(found)

    def config(self) -> Versioned | None:
        with self._lock:
            entry = self._live(CONFIG)
            return None if entry is None else Versioned(entry[0], entry[2])

    def set_config(self, value: str, expected_version: int) -> bool:
        with self._lock:
            entry = self._live(CONFIG)
            current = 0 if entry is None else entry[2]
            if current != expected_version:
                return False
            self._put(CONFIG, value, None)
            return True

    def append_event(self, event: str) -> None:
        with self._lock:
            self._events.append(event)

    def events(self, limit: int = 100) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._events[-limit:])

    def snapshot(self) -> Snapshot:
        with self._lock:
            entry = self._live(CONFIG)
            config = None if entry is None else Versioned(entry[0], entry[2])
            return Snapshot(self._leader(), self._members(), config, self._clock())

    def close(self) -> None:
        pass
