"""Operations that move the primary role by hand, under automatic failover.

A switchover (or a promotion, a rejoin, a follow) changes who runs as the primary while
the agents' HA loops watch: left alone, the new primary would see the old one's lease and
demote itself, or a standby would take a lease that expires mid-way. So, when the cluster
fails over automatically, the operation pauses failover in the store for its duration
(the holder keeps its lease, nobody promotes, demotes or re-points), hands the lease to
the new primary once it is promoted, and lifts the pause. The pause carries an end, so an
operation killed half-way does not switch automatic failover off for good. In maintenance
mode (``cluster pause``) the operation runs under the operator's pause and leaves it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

from pgherd.config import ClusterConfig
from pgherd.dcs import state as dcs_state
from pgherd.dcs.base import Store, StoreUnavailable
from pgherd.dcs.open import open_store
from pgherd.dcs.state import ClusterState, Pause, SyncState
from pgherd.errors import PgherdError, Refused, TimedOut


def _store(config: ClusterConfig) -> Store | None:
    if not config.automatic:
        return None
    return open_store(config, timeout=5.0)


@contextlib.contextmanager
def paused(config: ClusterConfig, reason: str, seconds: float) -> Iterator[Store | None]:
    """Pause automatic failover while the block runs (nothing to do under manual
    failover: yields None). Refused when another operation holds a pause."""
    store = _store(config)
    if store is None:
        yield None
        return
    mine = Pause(reason=reason, until=time.time() + seconds)

    def take(state: ClusterState) -> ClusterState:
        if state.maintenance() is not None:
            return state  # maintenance holds the agents still already: run under it
        other = state.paused()
        if other is not None and other != reason:
            raise Refused(
                f"automatic failover is paused by another operation ({other})",
                "wait for it to finish (pgherd cluster show says when the pause ends)",
            )
        return state.model_copy(update={"pause": mine})

    try:
        dcs_state.update(store, take)
    except StoreUnavailable as exc:
        raise Refused(
            f"cannot pause automatic failover: {exc.message}",
            "an operation that moves the primary needs the store; check it, then retry",
        ) from None
    try:
        yield store
    finally:
        with contextlib.suppress(StoreUnavailable):
            dcs_state.update(
                store,
                lambda s: s.model_copy(update={"pause": None}) if s.pause == mine else s,
            )
        store.close()


def release_stopped_leader(store: Store, old: str) -> None:
    """Free the lease of ``old``, whose PostgreSQL was shut down cleanly under an
    operation's pause (best effort: :func:`hand_over` releases it otherwise). While paused
    only a *running* primary takes a free lease, so nobody takes it before the promotion."""
    with contextlib.suppress(StoreUnavailable):
        store.release_leader(old)


def hand_over(
    store: Store | None,
    config: ClusterConfig,
    new: str,
    timeout: float = 15,
    wake: Callable[[], object] | None = None,
) -> str:
    """Give the leader lease to ``new`` (just promoted): release the old holder's, and
    wait for ``new``'s HA loop to take it (``wake`` asks it to cycle now rather than at its
    next ``loop_wait``: its load balancer's check answers 200 once it holds the lease).
    Returns what happened, for the step's detail."""
    if store is None:
        return "manual failover: no lease"
    assert config.ha is not None
    if config.ha.synchronous:
        # Nobody may be promoted over the new primary until its HA loop has set its
        # synchronous standbys (ha/sync.py).
        dcs_state.update(store, lambda s: s.model_copy(update={"sync": SyncState(leader=new)}))
    holder = store.leader()
    if holder is not None and holder.name != new:
        store.release_leader(holder.name)
    if wake is not None:
        with contextlib.suppress(PgherdError):
            wake()  # best effort: its own next cycle takes the lease anyway
    deadline = time.monotonic() + timeout
    while True:
        holder = store.leader()
        if holder is not None and holder.name == new:
            return f"{new} holds the leader lease"
        if time.monotonic() >= deadline:
            raise TimedOut(
                f"{new} did not take the leader lease within {timeout:g} s",
                f"see the agent log of {new}",
            )
        time.sleep(0.05)
