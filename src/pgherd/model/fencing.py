"""What an HA cycle leaves of its fence and lease once it has acted. Pure.

:func:`pgherd.model.ha.decide` says what to do; these rules then keep the agent's own
bookkeeping true to what the store and the server say, so that the fence (ha/fence.py)
stops exactly the servers that could take writes without the right to:

- failsafe: with the store down, a primary that every other member answered as their
  primary may take writes for one more TTL, counted from when those answers came in;
- a lease the store gives to somebody else (or to nobody) is forgotten, unless this cycle
  has just taken it;
- a server that takes no writes (a running standby, a stopped or crashed server) needs no
  fence, unless the cycle is about to promote it or start it as the primary.

The executor carries the orders out (ha/execute.py) after decide()'s actions, whether or
not those succeeded.
"""

from __future__ import annotations

from pgherd.model.ha import Action, Do, Local, World, failsafe_holds
from pgherd.model.ha_settings import Settings
from pgherd.model.status import PgState, Role


def after_acting(
    settings: Settings, me: Local, world: World, decided: tuple[Action, ...]
) -> tuple[Action, ...]:
    """The fence and lease orders for a cycle that decided ``decided`` on ``me`` in
    ``world`` (both observed again if the store stopped answering while it acted)."""
    dos = {a.do for a in decided}
    orders: list[Action] = []
    if failsafe_holds(settings, me, world):
        orders.append(
            Action(
                Do.EXTEND_FENCE,
                "failsafe: every member answered me as their primary: writes allowed for "
                f"one more ttl ({settings.ttl:g} s)",
                until=world.observed_at + settings.ttl,
            )
        )
    if world.store_ok and world.leader != me.name and Do.ACQUIRE_LEASE not in dos:
        holder = world.leader or "nobody"
        orders.append(Action(Do.FORGET_LEASE, f"the store says {holder} holds the lease"))
    takes_no_writes = (me.pg is PgState.RUNNING and me.role is Role.STANDBY) or me.pg in (
        PgState.STOPPED,
        PgState.CRASHED,
    )
    if takes_no_writes and not dos & {Do.PROMOTE, Do.START}:
        orders.append(Action(Do.DISARM_FENCE, f"PostgreSQL takes no writes ({me.pg}, {me.role})"))
    return tuple(orders)
