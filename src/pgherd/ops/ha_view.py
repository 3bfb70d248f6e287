"""What ``cluster show`` tells about automatic failover: the leader and its lease, each
member's last check-in, a pause, read straight from the store (one file read for sqlite,
three HTTP requests on one connection for etcd), so the command stays quick.

``cluster show`` starts without pydantic (pgherd.cli.quick), so this module reads the
two documents it needs from the store, the members' check-ins (dcs/checkin.py's
``CheckIn``) and the cluster's state (dcs/state.py's ``ClusterState``), as plain JSON:
only the fields shown here, tolerantly, as those modules do (a document that cannot be
read counts as absent). tests/unit/test_ha_view.py reads documents those models wrote.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pgherd.config_lite import LiteConfig, LiteSqliteDcs, as_lite
from pgherd.dcs.base import Member, StoreUnavailable, Versioned
from pgherd.dcs.open import open_store

if TYPE_CHECKING:
    from pgherd.config import ClusterConfig


@dataclass(frozen=True)
class MemberView:
    """A member of the cluster as its last check-in in the store shows it."""

    name: str
    kind: str  # data, witness
    checked_in_ago: float | None  # None: no check-in in the store
    role: str | None = None
    leader: bool = False
    decision: str = ""
    config_fingerprint: str = ""  # of the pgherd.yaml its agent runs with


@dataclass(frozen=True)
class HaView:
    """Failover as the store shows it: the leader and its lease, a pause, the members."""

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


def describe_store(config: ClusterConfig | LiteConfig) -> str:
    ha = as_lite(config).ha
    assert ha is not None
    if isinstance(ha.dcs, LiteSqliteDcs):
        return f"sqlite {ha.dcs.sqlite}"
    return "etcd " + ",".join(ha.dcs.etcd)


def read(config: ClusterConfig | LiteConfig) -> HaView | None:
    """The store's view of the cluster, or None when it has no store."""
    config = as_lite(config)
    if config.ha is None:
        return None
    mode = "automatic" if config.automatic else "manual"
    where = describe_store(config)
    try:
        store = open_store(config, timeout=2.0, quick=True)
        try:
            leader = store.leader()
            snapshot = store.snapshot()
        finally:
            store.close()
    except StoreUnavailable as exc:
        return HaView(mode, where, False, exc.message)
    now = time.time()
    found = seen_checkins(snapshot.members)
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
                    max(0.0, now - c.at),
                    c.role if kind == "data" else "witness",
                    leader is not None and leader.name == name,
                    c.decision,
                    c.config_fingerprint,
                )
            )
    state = seen_state(snapshot.config, now)
    sync = state.synchronous if config.ha.synchronous else None
    return HaView(
        mode=mode,
        store=where,
        store_ok=True,
        leader=leader.name if leader else None,
        lease_ttl=config.ha.ttl if leader else None,
        lease_left=leader.ttl_left if leader else None,
        paused=state.paused,
        pause_until=state.pause_until,
        maintenance=state.maintenance,
        synchronous=sync,
        members=tuple(members),
    )


# ---- the store's documents, as much as is shown of them --------------------------------


@dataclass(frozen=True)
class SeenCheckIn:
    """Of a member's check-in (dcs/checkin.py ``CheckIn``): what cluster show prints."""

    role: str
    decision: str
    at: float  # seconds since the epoch
    config_fingerprint: str = ""  # of the pgherd.yaml its agent runs with


@dataclass(frozen=True)
class SeenState:
    """Of the cluster's state (dcs/state.py ``ClusterState``), at a moment."""

    paused: str | None = None  # the reason of a pause in force
    pause_until: float | None = None  # its end (seconds since the epoch); None: until resumed
    maintenance: bool = False  # the pause in force is maintenance mode (cluster pause)
    synchronous: tuple[str, ...] | None = None  # the synchronous set's members


def seen_checkins(members: Sequence[Member]) -> dict[str, SeenCheckIn]:
    found = {}
    for member in members:
        try:
            data = json.loads(member.data)
            at = data["at"]
            if not isinstance(at, int | float) or isinstance(at, bool):
                continue
            found[member.name] = SeenCheckIn(
                role=str(data.get("role", "unknown")),
                decision=str(data.get("decision", "")),
                at=float(at),
                config_fingerprint=str(data.get("config_fingerprint") or ""),
            )
        except (ValueError, TypeError, KeyError):
            continue
    return found


def seen_state(config: Versioned | None, now: float) -> SeenState:
    """The state in the store's config key; unreadable or absent: the empty state."""
    if config is None or not config.value.strip():
        return SeenState()
    try:
        data = json.loads(config.value)
        pause, sync = data.get("pause"), data.get("sync")
        members = None
        if isinstance(sync, dict):
            members = tuple(str(m) for m in sync.get("members", ()))
        if isinstance(pause, dict):
            until = None if pause.get("until") is None else float(pause["until"])
            if until is None or until > now:  # in force (no end: until resumed)
                return SeenState(
                    paused=str(pause["reason"]),
                    pause_until=until,
                    maintenance=bool(pause.get("maintenance", False)),
                    synchronous=members,
                )
        return SeenState(synchronous=members)
    except (ValueError, TypeError, KeyError, AttributeError):
        return SeenState()
