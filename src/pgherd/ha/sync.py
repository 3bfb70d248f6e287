"""Synchronous mode, carried out: synchronous_standby_names on the leader and the
synchronous set in the store, changed in an order that never lets a failover lose an
acknowledged commit.

A commit is acknowledged once ``q`` standbys of the server's set ``S`` have it
(``ANY q (S)``). A candidate may be promoted only if it is in the store's set ``D`` and is
the most advanced of at least ``len(D) - quorum + 1`` members of ``D`` (model/ha.py).
That set of members meets every group of ``q`` acknowledging standbys as long as
``S ⊆ D`` and the store's ``quorum ≤ q``. So every change goes in three steps:

1. store: ``D ∪ S_old ∪ S_new`` with the smaller quorum (widening first is always safe);
2. server: ``ANY q_new (S_new)``, then wait until the walsenders applied it;
3. store: ``S_new`` with ``q_new``.

(The other order, server first when adding, would let a new member acknowledge commits
the store does not yet consider; a failover among the old members could then lose them.)
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence

from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Store
from pgherd.dcs.state import SyncState
from pgherd.model.ha import sync_set_while_promoting, sync_standby_names
from pgherd.pg import sync_standbys
from pgherd.pg.instance import Instance

_ANY = re.compile(r"^\s*ANY\s+(\d+)\s*\(", re.IGNORECASE)


def server_quorum(names: str) -> int:
    """How many listed standbys a commit waits for, by the setting's text (0: none)."""
    if not names.strip():
        return 0
    match = _ANY.match(names)
    if match:
        return int(match.group(1))
    first = re.match(r"^\s*(?:FIRST\s+)?(\d+)\s*\(", names, re.IGNORECASE)
    return int(first.group(1)) if first else 1


def _set(store: Store, sync: SyncState) -> None:
    dcs_state.update(store, lambda s: s.model_copy(update={"sync": sync}))


def apply(
    store: Store,
    instance: Instance,
    leader: str,
    members: Sequence[str],
    quorum: int,
    applied_within: float = 2.0,
) -> str | None:
    """Make ``members`` the synchronous set of ``leader`` (this node); returns what changed,
    None when nothing had to."""
    wanted = tuple(sorted(members))
    names = sync_standby_names(wanted, quorum)
    new_q = min(quorum, len(wanted)) if wanted else 0
    target = SyncState(leader=leader, members=wanted, quorum=new_q)
    with instance.connect() as conn:
        on_server = sync_standbys.current(conn)
        stored = dcs_state.parse(store.config()).sync
        if on_server == names and stored == target:
            return None
        mine = stored if stored is not None and stored.leader == leader else None
        waited = sync_standbys.waited_for(conn)
        widened = SyncState(
            leader=leader,
            members=tuple(sorted({*(mine.members if mine else ()), *waited, *wanted})),
            quorum=min(
                mine.quorum if mine else new_q, server_quorum(on_server) if waited else 0, new_q
            ),
        )
        if stored != widened:
            _set(store, widened)
        if on_server != names:
            sync_standbys.set_names(conn, names)
        deadline = time.monotonic() + applied_within
        while not sync_standbys.waited_for(conn) <= set(wanted):
            if time.monotonic() > deadline:
                return f"synchronous_standby_names = {names!r}; waiting for the walsenders"
            time.sleep(0.02)
    _set(store, target)
    return f"synchronous_standby_names = {names!r}" if names else "no synchronous standby"


def before_promotion(store: Store, me: str) -> None:
    """A new leader's commits are acknowledged by whatever its server's (stale) setting
    names until its first cycle sets it: nobody but itself may be promoted until then
    (model/ha.py's sync_set_while_promoting)."""
    members, quorum = sync_set_while_promoting(me)
    _set(store, SyncState(leader=me, members=members, quorum=quorum))
