"""Slots that survive a failover. Pure decisions; the agent's slot keeper (ha/slots.py)
reads its server and the primary's, asks :func:`decide`, and does what it says.

A logical slot lives on the server that made it: after a failover the new primary has none,
and a subscriber (a subscription, a mesh worker, a CDC tool) finds its slot gone, or worse,
a slot that starts later than where it stopped reading. So every standby keeps a copy of
each logical slot of the primary, as Patroni does for its permanent logical slots on
PostgreSQL 11–16:

- **copied** once from the primary: the slot's state file (``pg_replslot/NAME/state``, its
  position, catalog horizon and plugin) written into the standby's data directory while its
  server is stopped (a standby before PostgreSQL 16 cannot create a logical slot);
- **advanced** as the subscriber confirms: ``pg_replication_slot_advance`` to the
  primary's ``confirmed_flush_lsn`` for it, never past what the standby has replayed. The
  standby's copy is never ahead of the subscriber, so after a failover the subscriber asks
  for its own position and gets every change after it, none twice;
- **copied again** when it is ahead of the primary's (a node that was the primary
  rejoins as a standby; a slot dropped and made again under that name): a copy ahead of
  the subscriber would skip changes after the next failover;
- **dropped** when the primary no longer has it.

``hot_standby_feedback`` (pgherd sets it on every node) makes the primary keep the catalog
rows the standby's copies still need (through the standby's physical slot): the copy is
ready for a failover once the primary's physical slot for the standby holds a
``catalog_xmin`` no newer than the copy's.

Permanent slots declared in pgherd.yaml (``slots:``, for consumers outside pgherd such as a
CDC tool) exist on whichever node leads: created on the primary if missing, kept on the
standbys like the others (a physical one advanced to the primary's ``restart_lsn``).

A permanent slot removed from ``slots:`` is dropped on each node where pgherd made it (the
primary's, the standbys' copies), and only there: each node records in the coordination
store, before it creates a permanent slot or copies one, that it owns it (``owned``), so
that a slot made by hand or by another tool under any name is never touched, and a new
primary after a failover knows its copies were pgherd's. A removed slot whose consumer is
connected is not dropped under it: the node waits (:attr:`SlotDo.WAIT`) until it
disconnects. Once the slot is gone from a node, that node forgets it owned it.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from pgherd.model.lsn import Lsn


class SlotKind(StrEnum):
    PHYSICAL = "physical"
    LOGICAL = "logical"


@dataclass(frozen=True)
class Declared:
    """A permanent slot from pgherd.yaml."""

    name: str
    kind: SlotKind
    database: str | None = None  # logical: the database it decodes
    plugin: str = "pgoutput"


@dataclass(frozen=True)
class SlotSeen:
    """A slot as a server reports it (pg_replication_slots)."""

    name: str
    kind: SlotKind
    active: bool = False
    temporary: bool = False
    database: str | None = None
    plugin: str | None = None
    restart_lsn: Lsn | None = None
    confirmed_flush: Lsn | None = None
    catalog_xmin: int | None = None


class SlotDo(StrEnum):
    CREATE = "create"  # a permanent slot missing here
    COPY = "copy"  # the primary's logical slot, from its state file (server stopped)
    ADVANCE = "advance"  # to where the primary's stands (or this standby has replayed)
    DROP = "drop"  # a copy whose slot the primary dropped; a permanent slot removed
    WAIT = "wait"  # a removed permanent slot whose consumer is connected: dropped after
    FORGET = "forget"  # a removed permanent slot gone from here: no longer this node's


@dataclass(frozen=True)
class SlotAction:
    do: SlotDo
    slot: str
    reason: str
    lsn: Lsn | None = None
    kind: SlotKind = SlotKind.LOGICAL
    database: str | None = None
    plugin: str | None = None


def decide(
    primary: bool,
    mine: Sequence[SlotSeen],
    declared: Sequence[Declared],
    members: Collection[str],
    leader: Sequence[SlotSeen] | None = None,
    replayed: Lsn | None = None,
    broken: Collection[str] = (),
    owned: Collection[str] = (),
    retired: Collection[str] = (),
) -> list[SlotAction]:
    """What this node does to its slots. ``members``: the config's node names (their
    physical slots are the standbys', kept by cluster operations, not here); ``leader``:
    the primary's slots (a standby that cannot read them does nothing); ``replayed``: how
    far this standby has replayed; ``broken``: copies this standby failed to advance (WAL
    it no longer has, a copy from before a timeline change), copied again; ``owned``: the
    permanent slots pgherd made on this node (the store's record); ``retired``: slots
    pgherd made for ``slots:`` on any node and no longer declared (a standby neither copies
    nor advances them while the primary waits to drop its own)."""
    here = {s.name: s for s in mine}
    removed = _removed(here, declared, members, owned)
    if primary:
        return [
            SlotAction(
                SlotDo.CREATE,
                d.name,
                f"permanent {d.kind} slot {d.name} is missing on the primary",
                kind=d.kind,
                database=d.database,
                plugin=d.plugin,
            )
            for d in declared
            if d.name not in here
        ] + removed
    if leader is None:
        return []
    gone = {a.slot for a in removed}
    theirs = {s.name: s for s in leader if s.name not in gone and s.name not in retired}
    kept = {name: slot for name, slot in here.items() if name not in gone}
    return _standby(kept, declared, members, theirs, replayed, broken) + removed


def _removed(
    here: Mapping[str, SlotSeen],
    declared: Sequence[Declared],
    members: Collection[str],
    owned: Collection[str],
) -> list[SlotAction]:
    """The permanent slots pgherd made on this node that ``slots:`` no longer declares:
    dropped when nothing reads them, waited for while a consumer is connected, forgotten
    once gone. Any other slot, whatever its name, is not pgherd's to drop."""
    actions: list[SlotAction] = []
    permanent = {d.name for d in declared}
    for name in sorted(owned):
        if name in permanent or name in members:
            continue
        slot = here.get(name)
        if slot is None:
            actions.append(
                SlotAction(SlotDo.FORGET, name, f"permanent slot {name} is gone from here")
            )
        elif slot.active:
            actions.append(
                SlotAction(
                    SlotDo.WAIT,
                    name,
                    f"permanent slot {name} was removed from slots: but its consumer is "
                    "connected; it is dropped once the consumer disconnects",
                    kind=slot.kind,
                )
            )
        elif not slot.temporary:
            actions.append(
                SlotAction(
                    SlotDo.DROP,
                    name,
                    f"permanent slot {name} was removed from slots: (pgherd made it)",
                    kind=slot.kind,
                )
            )
    return actions


def _standby(
    here: Mapping[str, SlotSeen],
    declared: Sequence[Declared],
    members: Collection[str],
    theirs: Mapping[str, SlotSeen],
    replayed: Lsn | None,
    broken: Collection[str],
) -> list[SlotAction]:
    actions: list[SlotAction] = []
    permanent = {d.name: d for d in declared}
    for name, slot in sorted(theirs.items()):
        if slot.temporary or name in members:
            continue
        mine = here.get(name)
        if slot.kind is SlotKind.LOGICAL:
            actions += _logical(name, slot, mine, replayed, name in broken)
        elif name in permanent:
            actions += _physical(name, slot, mine, replayed)
    for name, slot in sorted(here.items()):
        gone = name not in theirs and name not in permanent
        if gone and slot.kind is SlotKind.LOGICAL and not slot.active and not slot.temporary:
            actions.append(
                SlotAction(SlotDo.DROP, name, f"the primary no longer has logical slot {name}")
            )
    return actions


def _logical(
    name: str, primary: SlotSeen, mine: SlotSeen | None, replayed: Lsn | None, broken: bool
) -> list[SlotAction]:
    if mine is None or (broken and not mine.active):
        if primary.confirmed_flush is None:
            return []  # not yet usable on the primary either
        why = "could not be advanced" if mine is not None else "has no copy here"
        return [
            SlotAction(
                SlotDo.COPY,
                name,
                f"logical slot {name} of the primary {why}",
                database=primary.database,
                plugin=primary.plugin,
            )
        ]
    if mine.kind is not SlotKind.LOGICAL or mine.plugin != primary.plugin:
        return []  # another slot of that name: not ours to touch
    ahead = (
        mine.confirmed_flush is not None
        and primary.confirmed_flush is not None
        and mine.confirmed_flush > primary.confirmed_flush
    )
    if ahead and not mine.active:
        # After a failover (this node was the primary, or its copy outran the new
        # primary's timeline) or a slot dropped and made again under that name: a copy
        # ahead of the subscriber would skip changes it never received. Copy it again.
        return [
            SlotAction(
                SlotDo.COPY,
                name,
                f"the copy of {name} is at {mine.confirmed_flush}, ahead of the primary's "
                f"{primary.confirmed_flush}",
                database=primary.database,
                plugin=primary.plugin,
            )
        ]
    target = _bounded(primary.confirmed_flush, replayed)
    if target is None or (mine.confirmed_flush is not None and mine.confirmed_flush >= target):
        return []
    return [
        SlotAction(
            SlotDo.ADVANCE,
            name,
            f"the subscriber of {name} confirmed {primary.confirmed_flush}",
            lsn=target,
            database=mine.database,
        )
    ]


def _physical(
    name: str, primary: SlotSeen, mine: SlotSeen | None, replayed: Lsn | None
) -> list[SlotAction]:
    if mine is None:
        return [
            SlotAction(
                SlotDo.CREATE,
                name,
                f"permanent physical slot {name} has no copy here",
                kind=SlotKind.PHYSICAL,
            )
        ]
    target = _bounded(primary.restart_lsn, replayed)
    if target is None or (mine.restart_lsn is not None and mine.restart_lsn >= target):
        return []
    return [
        SlotAction(
            SlotDo.ADVANCE,
            name,
            f"the consumer of {name} is at {primary.restart_lsn}",
            lsn=target,
            kind=SlotKind.PHYSICAL,
        )
    ]


def _bounded(wanted: Lsn | None, replayed: Lsn | None) -> Lsn | None:
    """A standby's slot never moves past what the standby has replayed."""
    if wanted is None or replayed is None:
        return None
    return min(wanted, replayed)


def ready(copy_catalog_xmin: int | None, feedback_catalog_xmin: int | None) -> bool:
    """A standby's copy of a logical slot can be used after a failover once the primary
    keeps the catalog rows it needs: the standby's physical slot on the primary holds a
    ``catalog_xmin`` (hot_standby_feedback) no newer than the copy's. (Transaction ids
    compared as they are: a copy is months from a wraparound.)"""
    if copy_catalog_xmin is None or feedback_catalog_xmin is None:
        return False
    return feedback_catalog_xmin <= copy_catalog_xmin


def unready_copies(mine: Sequence[SlotSeen], leader: Sequence[SlotSeen], node: str) -> list[str]:
    """This standby's copies of logical slots that a failover could not use yet: the
    primary's physical slot for this standby (``node``) does not yet hold, through
    hot_standby_feedback, the catalog rows the copy needs (:func:`ready`)."""
    feedback = next(
        (s.catalog_xmin for s in leader if s.name == node and s.kind is SlotKind.PHYSICAL), None
    )
    theirs = {s.name for s in leader if s.kind is SlotKind.LOGICAL}
    return sorted(
        s.name
        for s in mine
        if s.kind is SlotKind.LOGICAL and s.name in theirs and not ready(s.catalog_xmin, feedback)
    )


COPY_SPACING = 6.0  # seconds between two standbys' restarts for copies


def copy_delay(node: str, primary: str, members: Sequence[str]) -> float:
    """How long a standby waits, once it lacks a copy, before the restart that loads it:
    the standbys take turns in the config's order, so that they are not down together (a
    synchronous primary's commits would wait on them)."""
    standbys = [m for m in members if m != primary]
    rank = standbys.index(node) if node in standbys else 0
    return rank * COPY_SPACING
