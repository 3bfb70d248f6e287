"""A store that counts the calls made through it: how much an agent asks of its
coordination store (``GET /ha``'s ``store_calls``; bench/scale.py divides them by the HA
cycles at 3 and 10 members). Counting is a dictionary increment under a lock: free beside
a store call."""

from __future__ import annotations

import threading

from pgherd.dcs.base import Leader, Member, Snapshot, Store, Versioned


class CountingStore:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def counts(self) -> dict[str, int]:
        """Calls so far, by method name."""
        with self._lock:
            return dict(self._counts)

    def _count(self, call: str) -> None:
        with self._lock:
            self._counts[call] = self._counts.get(call, 0) + 1

    def acquire_leader(self, name: str, ttl: float) -> bool:
        self._count("acquire_leader")
        return self.store.acquire_leader(name, ttl)

    def renew_leader(self, name: str, ttl: float) -> bool:
        self._count("renew_leader")
        return self.store.renew_leader(name, ttl)

    def release_leader(self, name: str) -> bool:
        self._count("release_leader")
        return self.store.release_leader(name)

    def leader(self) -> Leader | None:
        self._count("leader")
        return self.store.leader()

    def touch_member(self, name: str, data: str, ttl: float) -> None:
        self._count("touch_member")
        self.store.touch_member(name, data, ttl)

    def remove_member(self, name: str) -> None:
        self._count("remove_member")
        self.store.remove_member(name)

    def members(self) -> tuple[Member, ...]:
        self._count("members")
        return self.store.members()

    def config(self) -> Versioned | None:
        self._count("config")
        return self.store.config()

    def set_config(self, value: str, expected_version: int) -> bool:
        self._count("set_config")
        return self.store.set_config(value, expected_version)

    def initialize(self, value: str, expected_version: int = 0) -> bool:
        self._count("initialize")
        return self.store.initialize(value, expected_version)

    def initialization(self) -> Versioned | None:
        self._count("initialization")
        return self.store.initialization()

    def cancel_initialization(self, expected_version: int) -> bool:
        self._count("cancel_initialization")
        return self.store.cancel_initialization(expected_version)

    def append_event(self, event: str) -> None:
        self._count("append_event")
        self.store.append_event(event)

    def events(self, limit: int = 100) -> tuple[str, ...]:
        self._count("events")
        return self.store.events(limit)

    def snapshot(self) -> Snapshot:
        self._count("snapshot")
        return self.store.snapshot()

    def close(self) -> None:
        self.store.close()
