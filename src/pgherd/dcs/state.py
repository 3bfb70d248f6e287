"""The cluster's shared state in the store's ``config`` key: an operator's pause and the
synchronous set. Read from the HA cycle's one snapshot; changed only by compare-and-set.

``pause``: while an operator's operation (a switchover, a promotion) moves the primary
role by hand, the agents hold still (docs/failover.md). It carries its own end, so an
operation that dies half-way does not leave automatic failover off for good. A
*maintenance* pause (``pgherd cluster pause [--for D]``) is the operator's own: the agents
take no automatic action at all (no failover, no restart in place, no rejoin) until
``cluster resume`` or its end; operations run under it and leave it in place.

``last_leader``: written when a member takes the lease.

``owned_slots``: the permanent slots (``slots:`` in pgherd.yaml) pgherd made, and on which
node: each agent records one before it creates or copies it, and forgets it once the slot,
removed from ``slots:``, is gone from its node (model/failover_slots.py). A new primary
after a failover reads here that its copies were pgherd's; a slot no entry names is never
dropped.

``sync``: in synchronous mode, who may be promoted and how many of them acknowledged each
commit. The primary keeps it a superset of the standbys its server waits for, with a
quorum no larger than the server's (see ha/sync.py for the order of the steps): any set of
``len(members) - quorum + 1`` members then holds every acknowledged commit.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from pydantic import ConfigDict, ValidationError

from pgherd.dcs.base import Store, StoreUnavailable, Versioned
from pgherd.model.status import Frozen


class _Stored(Frozen):
    """A part of the state. Fields a newer pgherd added are skipped, not fatal: during a
    rolling upgrade an older agent must still read the pause and the synchronous set
    (reading the whole state as empty would forget who may be promoted). What it writes
    back lacks them — for owned_slots that errs the safe way: a slot no entry names is
    never dropped."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)


class Pause(_Stored):
    reason: str  # "switchover to node2 by root@host"
    # seconds since the epoch (wall clock: the store is shared by hosts); None: until
    # resumed (maintenance only: an operation's pause always ends)
    until: float | None
    maintenance: bool = False  # cluster pause: no automatic action of any kind
    since: float | None = None  # when it began (seconds since the epoch)

    def active(self, now: float | None = None) -> bool:
        return self.until is None or self.until > (time.time() if now is None else now)


class SyncState(_Stored):
    leader: str  # the primary whose commits the set acknowledged
    members: tuple[str, ...] = ()
    quorum: int = 0  # 0: nobody may be promoted (a set being rebuilt)


class OwnedSlot(_Stored):
    """A permanent slot pgherd made on ``node`` (created there, or copied from the primary)."""

    name: str
    node: str


class ClusterState(_Stored):
    pause: Pause | None = None
    sync: SyncState | None = None
    last_leader: str | None = None  # who took the lease last (ties in a failover go to it)
    owned_slots: tuple[OwnedSlot, ...] = ()  # sorted by (name, node)

    def slots_owned_by(self, node: str) -> frozenset[str]:
        """The permanent slots pgherd made on ``node``."""
        return frozenset(o.name for o in self.owned_slots if o.node == node)

    def with_slot(self, name: str, node: str, owned: bool) -> ClusterState:
        """This state with ``node``'s ownership of slot ``name`` recorded, or forgotten."""
        others = {o for o in self.owned_slots if (o.name, o.node) != (name, node)}
        if owned:
            others.add(OwnedSlot(name=name, node=node))
        ordered = tuple(sorted(others, key=lambda o: (o.name, o.node)))
        return self.model_copy(update={"owned_slots": ordered})

    def paused(self, now: float | None = None) -> str | None:
        """Why automatic failover is paused now, or None."""
        if self.pause is not None and self.pause.active(now):
            return self.pause.reason
        return None

    def maintenance(self, now: float | None = None) -> Pause | None:
        """The maintenance pause in force now (``cluster pause``), or None."""
        pause = self.pause
        if pause is not None and pause.maintenance and pause.active(now):
            return pause
        return None


def parse(config: Versioned | None) -> ClusterState:
    """The state in ``config``; an absent or unreadable value is the empty state (a value
    written by a newer pgherd must not stop the HA loop)."""
    if config is None or not config.value.strip():
        return ClusterState()
    try:
        return ClusterState.model_validate_json(config.value)
    except ValidationError:
        return ClusterState()


def update(
    store: Store, change: Callable[[ClusterState], ClusterState], tries: int = 20
) -> ClusterState:
    """Apply ``change`` with compare-and-set, retrying when another writer came first."""
    for _ in range(tries):
        current = store.config()
        before = parse(current)
        after = change(before)
        if after == before:
            return before
        # Fields at their defaults are left out: an agent of an older pgherd, during a
        # rolling upgrade, still reads a state that uses nothing it does not know.
        value = after.model_dump_json(exclude_defaults=True)
        if store.set_config(value, 0 if current is None else current.version):
            return after
        time.sleep(0.01)
    raise StoreUnavailable(f"the store's config kept changing under {tries} attempts to update it")
