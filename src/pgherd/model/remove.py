"""Whether a node may be removed from the cluster (``pgherd node remove NODE``), and what
that takes: its replication slot dropped wherever one is kept for it (a slot nobody
streams through keeps WAL forever and fills the disk), its member key in the store
removed (it would count as a member, a lost one, in every HA cycle).

Refused while the node leads (its lease, or it runs as the primary: switch over first),
while its agent still answers (it would check in again and its server may still stream),
or while a slot named after it is active (it still streams). The node's data directory is
left alone: removing a node from the cluster destroys nothing on its host.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pgherd.model.status import NodeStatus, PgState, Role


@dataclass(frozen=True)
class RemovePlan:
    node: str
    refused: str | None = None
    hint: str = ""
    drop_slot_on: tuple[str, ...] = ()  # nodes that keep a slot named after it
    remove_member: bool = False  # its member key is in the store
    still_configured: bool = False  # pgherd.yaml still lists it
    warnings: tuple[str, ...] = ()


def plan(
    name: str,
    statuses: Sequence[NodeStatus],
    *,
    configured: bool,
    leader: str | None = None,
    member: bool = False,
) -> RemovePlan:
    """``statuses``: every configured node's, the one to remove included when listed."""
    switch = "switch over first: pgherd standby switchover --to ANOTHER_NODE"
    if leader == name:
        return RemovePlan(name, f"{name} holds the leader lease", switch)
    target = next((s for s in statuses if s.name == name), None)
    if target is not None and target.state is not PgState.UNREACHABLE:
        if target.state is PgState.RUNNING and target.role is Role.PRIMARY:
            return RemovePlan(name, f"{name} runs as the primary", switch)
        return RemovePlan(
            name,
            f"the agent of {name} still runs (PostgreSQL {target.state})",
            f"stop its PostgreSQL (pgherd node stop {name}), then its agent "
            f"(systemctl stop pgherd@{name}), then remove it",
        )
    others = [s for s in statuses if s.name != name]
    for status in others:
        for slot in status.slots:
            if slot.name == name and slot.active:
                return RemovePlan(
                    name,
                    f"{name} still streams from {status.name} (its slot is active)",
                    f"stop its PostgreSQL first (pgherd node stop {name}, or on its host)",
                )
    holders = tuple(s.name for s in others if any(slot.name == name for slot in s.slots))
    unreachable = [s.name for s in others if s.state is PgState.UNREACHABLE]
    if not holders and not member and not configured:
        return RemovePlan(
            name,
            f"no node keeps a slot for {name} and the store has no member {name}",
            "check the name (pgherd cluster show lists the members)",
        )
    warnings = [
        f"{n} did not answer: a slot for {name} there, if any, stays (run this again later)"
        for n in unreachable
    ]
    if configured:
        warnings.append(
            f"pgherd.yaml still lists {name}: remove it on every host, then pgherd agent "
            "reload (a primary creates slots for the nodes it lists)"
        )
    return RemovePlan(
        name,
        drop_slot_on=holders,
        remove_member=member,
        still_configured=configured,
        warnings=tuple(warnings),
    )
