"""What ``cluster show`` tells about automatic failover: the leader and its lease, each
member's last check-in, a pause, read straight from the store (one file read for sqlite,
two HTTP requests for etcd), so the command stays quick."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pgherd.config import ClusterConfig
from pgherd.dcs import checkin as checkin_mod
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import StoreUnavailable
from pgherd.dcs.open import open_store


@dataclass(frozen=True)
class MemberView:
    name: str
    kind: str  # data, witness
    checked_in_ago: float | None  # None: no check-in in the store
    role: str | None = None
    leader: bool = False
    decision: str = ""
    config_fingerprint: str = ""  # of the pgherd.yaml its agent runs with


@dataclass(frozen=True)
class HaView:
    mode: str
    store: str  # "sqlite /path" or "etcd URL,URL"
    store_ok: bool
    problem: str = ""
    leader: str | None = None
    lease_ttl: float | None = None
    lease_left: float | None = None
    paused: str | None = None
    pause_until: float | None = None  # seconds since the epoch; None: until resumed
    maintenance: bool = False  # the pause is maintenance mode (cluster pause)
    synchronous: tuple[str, ...] | None = None
    members: tuple[MemberView, ...] = field(default_factory=tuple)

    @property
    def lease_age(self) -> float | None:
        """Seconds since the leader last renewed its lease."""
        if self.lease_ttl is None or self.lease_left is None:
            return None
        return max(0.0, self.lease_ttl - self.lease_left)

    def problems(self) -> list[str]:
        found = []
        if not self.store_ok:
            found.append(f"the coordination store does not answer: {self.problem}")
        elif self.mode == "automatic" and self.leader is None:
            found.append("no member holds the leader lease")
        if self.maintenance:
            found.append(f"maintenance mode: no automatic failover ({self.paused})")
        elif self.paused:
            found.append(f"automatic failover is paused: {self.paused}")
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "store": self.store,
            "store_ok": self.store_ok,
            "problem": self.problem or None,
            "leader": self.leader,
            "lease_ttl": self.lease_ttl,
            "lease_left": None if self.lease_left is None else round(self.lease_left, 3),
            "lease_age": None if self.lease_age is None else round(self.lease_age, 3),
            "paused": self.paused,
            "pause_until": self.pause_until,
            "maintenance": self.maintenance,
            "synchronous": list(self.synchronous) if self.synchronous is not None else None,
            "members": [
                {
                    "name": m.name,
                    "kind": m.kind,
                    "checked_in_ago": None
                    if m.checked_in_ago is None
                    else round(m.checked_in_ago, 3),
                    "role": m.role,
                    "leader": m.leader,
                    "decision": m.decision,
                    "config_fingerprint": m.config_fingerprint or None,
                }
                for m in self.members
            ],
        }


def describe_store(config: ClusterConfig) -> str:
    assert config.ha is not None
    dcs = config.ha.dcs
    if hasattr(dcs, "sqlite"):
        return f"sqlite {dcs.sqlite}"
    return "etcd " + ",".join(getattr(dcs, "etcd", ()))


def read(config: ClusterConfig) -> HaView | None:
    """The store's view of the cluster, or None when it has no store."""
    if config.ha is None:
        return None
    mode = "automatic" if config.automatic else "manual"
    where = describe_store(config)
    try:
        store = open_store(config, timeout=2.0)
        try:
            leader = store.leader()
            snapshot = store.snapshot()
        finally:
            store.close()
    except StoreUnavailable as exc:
        return HaView(mode, where, False, exc.message)
    now = time.time()
    found = checkin_mod.checkins(snapshot.members)
    names = [n.name for n in config.nodes] + [w.name for w in config.witnesses]
    members = []
    for name in names:
        c = found.get(name)
        kind = "witness" if config.witness(name) is not None else "data"
        if c is None:
            members.append(MemberView(name, kind, None))
        else:
            members.append(
                MemberView(
                    name,
                    kind,
                    c.age(now),
                    str(c.role) if kind == "data" else "witness",
                    leader is not None and leader.name == name,
                    c.decision,
                    c.config_fingerprint,
                )
            )
    state = dcs_state.parse(snapshot.config)
    sync = state.sync.members if config.ha.synchronous and state.sync else None
    return HaView(
        mode=mode,
        store=where,
        store_ok=True,
        leader=leader.name if leader else None,
        lease_ttl=config.ha.ttl if leader else None,
        lease_left=leader.ttl_left if leader else None,
        paused=state.paused(now),
        pause_until=state.pause.until if state.paused(now) and state.pause else None,
        maintenance=state.maintenance(now) is not None,
        synchronous=sync,
        members=tuple(members),
    )
