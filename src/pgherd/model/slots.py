"""Replication slots: every standby has a physical slot named after itself on its upstream.

Slots keep WAL for a standby that is away, which is their point and their danger: a slot
nobody uses any more keeps WAL until the disk fills. Operations move slots with the
standby (created on the new upstream before the standby is pointed at it, dropped on the
old one afterwards); ``doctor`` reports the ones left behind.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from pgherd.model.checks import upstream_of
from pgherd.model.cluster import NodeAt
from pgherd.model.doctor import INACTIVE_SLOT_WARN_BYTES, Finding, Severity
from pgherd.model.status import NodeStatus, PgState, Role, Slot


def stale_slots(
    statuses: Sequence[NodeStatus],
    node: str,
    node_at: NodeAt,
    keep: Sequence[str] = (),
) -> list[str]:
    """Inactive physical slots on ``node`` named after a configured node that is not (any
    more) configured to stream from it. Slots with other names may belong to other tools
    (pg_receivewal, a removed node) and are left to the operator: doctor reports them."""
    by_name = {s.name: s for s in statuses}
    found = []
    for status in statuses:
        if status.name != node:
            continue
        for slot in status.slots:
            if slot.slot_type != "physical" or slot.active or slot.name in keep:
                continue
            owner = by_name.get(slot.name)
            if owner is not None and _left_over(owner, node, node_at) is not None:
                found.append(slot.name)
    return found


def _left_over(owner: NodeStatus, holder: str, node_at: NodeAt) -> str | None:
    """Why ``owner``'s slot on ``holder`` is not needed there, or None when it is (or when
    that cannot be told: a standby whose upstream is not a configured node)."""
    if owner.name == holder:
        return f"it is {holder}'s own name"
    if owner.role is Role.PRIMARY:
        return f"{owner.name} is a primary"
    if owner.role is not Role.STANDBY:
        return None
    upstream = upstream_of(owner, node_at)
    if upstream is None or upstream == holder:
        return None
    return f"{owner.name} streams from {upstream}"


def _drop_fix(node: str, slot: str) -> str:
    return (
        f'if nothing needs it, drop it: psql "$(pgherd connstr {node})" '
        f"-c \"SELECT pg_drop_replication_slot('{slot}')\""
    )


def _held(slot: Slot) -> str:
    if slot.retained_bytes is None:
        return "an unknown amount of WAL"
    size = slot.retained_bytes
    if size >= 1024 * 1024:
        return f"{size / (1024 * 1024):.1f} MB of WAL"
    return f"{size / 1024:.1f} kB of WAL"


def findings(statuses: Sequence[NodeStatus], node_at: NodeAt) -> list[Finding]:
    """Inactive slots and the WAL they hold, classified by what their name says."""
    by_name = {s.name: s for s in statuses}
    found: list[Finding] = []
    for status in statuses:
        if status.state is not PgState.RUNNING:
            continue
        for slot in status.slots:
            if slot.active:
                continue
            finding = _classify(status.name, slot, by_name, node_at)
            if finding is not None:
                found.append(finding)
    return found


def _classify(
    node: str, slot: Slot, by_name: dict[str, NodeStatus], node_at: NodeAt
) -> Finding | None:
    held = _held(slot)
    big = slot.retained_bytes is not None and slot.retained_bytes >= INACTIVE_SLOT_WARN_BYTES
    if slot.slot_type != "physical":
        if not big:
            return None
        return Finding(
            Severity.WARNING,
            node,
            "inactive-slot",
            f"inactive {slot.slot_type} replication slot {slot.name!r} holds {held}",
            _drop_fix(node, slot.name),
        )
    owner = by_name.get(slot.name)
    if owner is None:
        return Finding(
            Severity.WARNING,
            node,
            "orphan-slot",
            f"inactive slot {slot.name!r} belongs to no node in the config (a removed node, "
            f"or another tool) and holds {held}",
            _drop_fix(node, slot.name),
        )
    why = _left_over(owner, node, node_at)
    if why is not None:
        return Finding(
            Severity.WARNING,
            node,
            "stale-slot",
            f"slot {slot.name!r} is left over ({why}) and holds {held}",
            _drop_fix(node, slot.name),
        )
    if not big:
        return None
    return Finding(
        Severity.WARNING,
        node,
        "inactive-slot",
        f"the slot of standby {slot.name} is inactive ({slot.name} is "
        f"{owner.state if owner.state is not PgState.RUNNING else 'not streaming'}) and "
        f"holds {held}",
        f"start {slot.name} (pgherd node start {slot.name}); if it is gone for good, "
        + _drop_fix(node, slot.name).removeprefix("if nothing needs it, "),
    )


def removed_in_use(
    statuses: Sequence[NodeStatus],
    owned: Mapping[str, Collection[str]],
    declared: Collection[str],
) -> list[Finding]:
    """Permanent slots removed from ``slots:`` that pgherd made (``owned``: per node, the
    store's record) and has not dropped because a consumer still reads them: the agent
    drops each once its consumer disconnects (model/failover_slots.py)."""
    found: list[Finding] = []
    for status in statuses:
        if status.state is not PgState.RUNNING:
            continue
        mine = owned.get(status.name, ())
        for slot in status.slots:
            if slot.active and slot.name in mine and slot.name not in declared:
                found.append(
                    Finding(
                        Severity.WARNING,
                        status.name,
                        "removed-slot-in-use",
                        f"permanent slot {slot.name!r} was removed from slots: and is dropped "
                        "once its consumer disconnects",
                        "stop its consumer to have it dropped, or declare it in slots: again "
                        "to keep it",
                    )
                )
    return found
