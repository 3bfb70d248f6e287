"""An in-process store for unit tests, with a clock the test controls.

``MemoryStore(cluster=...)`` views of one backing (``store.cluster_view(name)``) share its
keys the way clusters share an etcd: each sees only the keys under its own name.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pgherd.dcs.base import Leader, Member, Snapshot, Versioned

LEADER = "leader"
CONFIG = "config"
INITIALIZE = "initialize"
MEMBER = "members/"


@dataclass
class _Backing:
    """What every cluster's view of one memory store shares."""

    clock: Callable[[], float]
    lock: threading.Lock = field(default_factory=threading.Lock)
    kv: dict[str, tuple[str, float | None, int]] = field(default_factory=dict)
    events: list[tuple[str, str]] = field(default_factory=list)  # (cluster, event)
    version: int = 0


class MemoryStore:
    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        cluster: str = "",
        _backing: _Backing | None = None,
    ) -> None:
        self._b = _backing or _Backing(clock)
        self._clock = self._b.clock
        self._lock = self._b.lock
        self.cluster = cluster
        self._prefix = f"{cluster}/" if cluster else ""

    def cluster_view(self, cluster: str) -> MemoryStore:
        """Another cluster's view of the same store."""
        return MemoryStore(cluster=cluster, _backing=self._b)

    def _live(self, name: str) -> tuple[str, float | None, int] | None:
        key = self._prefix + name
        entry = self._b.kv.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= self._clock():
            del self._b.kv[key]
            return None
        return entry

    def _put(self, name: str, value: str, ttl: float | None) -> None:
        self._b.version += 1
        expires = None if ttl is None else self._clock() + ttl
        self._b.kv[self._prefix + name] = (value, expires, self._b.version)

    def _delete(self, name: str) -> None:
        self._b.kv.pop(self._prefix + name, None)

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
            self._delete(LEADER)
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
            self._delete(MEMBER + name)

    def members(self) -> tuple[Member, ...]:
        with self._lock:
            return self._members()

    def _members(self) -> tuple[Member, ...]:
        found = []
        start = self._prefix + MEMBER
        for key in sorted(self._b.kv):
            if key.startswith(start):
                name = key.removeprefix(self._prefix)
                entry = self._live(name)
                if entry is not None:
                    left = None if entry[1] is None else entry[1] - self._clock()
                    found.append(Member(name.removeprefix(MEMBER), entry[0], left))
        return tuple(found)

    def _versioned(self, name: str) -> Versioned | None:
        entry = self._live(name)
        return None if entry is None else Versioned(entry[0], entry[2])

    def _put_if_version(self, name: str, value: str, expected_version: int) -> bool:
        entry = self._live(name)
        if (0 if entry is None else entry[2]) != expected_version:
            return False
        self._put(name, value, None)
        return True

    def config(self) -> Versioned | None:
        with self._lock:
            return self._versioned(CONFIG)

    def set_config(self, value: str, expected_version: int) -> bool:
        with self._lock:
            return self._put_if_version(CONFIG, value, expected_version)

    def initialize(self, value: str, expected_version: int = 0) -> bool:
        with self._lock:
            return self._put_if_version(INITIALIZE, value, expected_version)

    def initialization(self) -> Versioned | None:
        with self._lock:
            return self._versioned(INITIALIZE)

    def cancel_initialization(self, expected_version: int) -> bool:
        with self._lock:
            entry = self._live(INITIALIZE)
            if entry is None or entry[2] != expected_version:
                return False
            self._delete(INITIALIZE)
            return True

    def append_event(self, event: str) -> None:
        with self._lock:
            self._b.events.append((self.cluster, event))

    def events(self, limit: int = 100) -> tuple[str, ...]:
        with self._lock:
            mine = [e for c, e in self._b.events if c == self.cluster]
            return tuple(mine[-limit:])

    def snapshot(self) -> Snapshot:
        with self._lock:
            return Snapshot(
                self._leader(),
                self._members(),
                self._versioned(CONFIG),
                self._clock(),
                self._versioned(INITIALIZE),
            )

    def close(self) -> None:
        pass
