"""A rolling restart (``pgherd cluster restart``), planned: which nodes, in which order,
and whether it can be done without taking writes away for longer than a switchover.

The nodes to restart are those with settings pending a restart (PostgreSQL's own
``pending_restart``), or every node with ``--all``. Standbys go first, one at a time, each
back and streaming before the next. The primary is never restarted as the primary: a
switchover hands its role to the most advanced standby that may lead (running,
streaming, not ``nofailover``, nothing pending after its own restart), then the old
primary — a standby by then — restarts like the others (a switchover's demotion restarts
it already, so that step is often a check only).

Refused, with the reason, before anything is done: no running primary or more than one,
a node that is not running or a standby that does not stream (a restart would leave the
cluster with one node less for a while), and a primary to restart with no standby to hand
its role to (``pgherd node restart`` restarts it in place: writes stop meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pgherd.model.checks import streaming_from
from pgherd.model.status import NodeStatus, PgState, Role

NodeAt = Callable[[str | None, int | None], str | None]


class Do(StrEnum):
    RESTART = "restart"
    SWITCHOVER = "switchover"


@dataclass(frozen=True)
class Step:
    do: Do
    node: str  # the node restarted, or the standby that becomes the primary
    reason: str

    def sentence(self) -> str:
        if self.do is Do.SWITCHOVER:
            return f"switch over to {self.node}: {self.reason}"
        return f"restart {self.node}: {self.reason}"


@dataclass(frozen=True)
class RestartPlan:
    steps: tuple[Step, ...] = ()
    refused: str | None = None
    hint: str = ""

    @property
    def nothing_to_do(self) -> bool:
        return self.refused is None and not self.steps


def plan(
    statuses: Sequence[NodeStatus],
    node_at: NodeAt,
    *,
    every_node: bool = False,
    nofailover: Collection[str] = (),
) -> RestartPlan:
    primaries = [s for s in statuses if s.role is Role.PRIMARY and s.state is PgState.RUNNING]
    if len(primaries) != 1:
        names = ", ".join(p.name for p in primaries)
        return RestartPlan(
            refused="no running primary" if not primaries else f"more than one primary: {names}",
            hint="pgherd cluster show; fix the cluster before a rolling restart",
        )
    (primary,) = primaries
    for status in statuses:
        if status.state is not PgState.RUNNING:
            return RestartPlan(
                refused=f"{status.name} is {status.state}: a rolling restart needs every node "
                "running",
                hint=f"start it (pgherd node start {status.name}), or restart nodes one by "
                "one with pgherd node restart NODE",
            )
        receiver = status.wal_receiver
        if status.role is Role.STANDBY and (receiver is None or receiver.status != "streaming"):
            return RestartPlan(
                refused=f"{status.name} does not stream from its upstream",
                hint=f"pgherd doctor {status.name}; a rolling restart needs every standby "
                "streaming",
            )
    wanted = {s.name for s in statuses if every_node or s.pending_restart}
    if not wanted:
        return RestartPlan()
    why = {
        s.name: "every node (--all)"
        if every_node and not s.pending_restart
        else f"pending restart: {', '.join(s.pending_restart)}"
        for s in statuses
    }
    standbys = [s for s in statuses if s.role is Role.STANDBY]
    steps = [Step(Do.RESTART, s.name, why[s.name]) for s in standbys if s.name in wanted]
    if primary.name not in wanted:
        return RestartPlan(tuple(steps))
    candidates = [
        s for s in standbys if s.name not in nofailover and streaming_from(s, primary.name, node_at)
    ]
    if not candidates:
        return RestartPlan(
            refused=f"the primary {primary.name} must restart ({why[primary.name]}) and no "
            "standby can take its role (none streams from it that may be promoted)",
            hint=f"restart it in place with pgherd node restart {primary.name} (writes stop "
            "while it restarts), or add a standby",
        )
    target = max(
        candidates, key=lambda s: (s.position.value if s.position else 0, _reverse(s.name))
    )
    steps.append(
        Step(Do.SWITCHOVER, target.name, f"{primary.name} is the primary and must restart")
    )
    steps.append(Step(Do.RESTART, primary.name, f"{why[primary.name]} (a standby by then)"))
    return RestartPlan(tuple(steps))


def _reverse(name: str) -> tuple[int, ...]:
    """Sorts the lower name last, so that max() picks it among equals."""
    return tuple(-ord(c) for c in name)
