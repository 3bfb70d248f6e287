"""What an agent tells of its HA loop (``GET /ha``; the console's leader line)."""

from __future__ import annotations

from pydantic import Field

from pgherd.model.ha_settings import Mode
from pgherd.model.status import Frozen, PgState, Role


class HaReport(Frozen):
    """The HA loop as its last cycle left it. Under manual failover there is no loop:
    only ``mode`` and ``state`` (the supervisor's) say anything."""

    mode: Mode
    state: PgState
    role: Role = Role.UNKNOWN
    leader: str | None = None  # the holder of the lease, as the store said last
    holds_lease: bool = False  # this agent's lease is certainly valid now
    lease_left: float | None = None  # seconds (rounded to ms), when it holds one
    store_ok: bool = False
    paused: str | None = None  # why automatic failover is paused, when it is
    maintenance: bool = False  # the pause is maintenance mode (pgherd cluster pause)
    failsafe_active: bool = False  # the store is down and failsafe keeps this primary writable
    decision: str = ""  # the last cycle's sentence
    decided_at: float | None = None  # seconds since the epoch
    streaming: bool = False  # a standby that streams from its upstream
    cycles: int = 0  # HA cycles run since the agent started
    # Calls to the coordination store since the agent started (the loop's, the lease's and
    # the fence's), by kind: snapshot, renew_leader, touch_member…
    store_calls: dict[str, int] = Field(default_factory=dict)
