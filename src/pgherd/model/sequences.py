"""Sequence values for a cut-over: publisher's value plus a safety margin. Pure.

Logical replication does not carry sequences: rows arrive with their ids, but the
subscriber's sequences stay where they were, and the first insert after a cut-over would
collide. ``sync-sequences`` moves each subscriber sequence ahead of the publisher's last
value by ``margin`` increments (room for what the publisher hands out meanwhile), and
never moves a sequence backwards.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pgherd.model.names import QualifiedName

DEFAULT_MARGIN = 1000


@dataclass(frozen=True)
class SequenceState:
    name: QualifiedName
    last_value: int | None  # None: never used (or not readable)
    increment: int
    min_value: int
    max_value: int
    readable: bool = True


@dataclass(frozen=True)
class SequenceStep:
    name: QualifiedName
    publisher_value: int | None
    subscriber_value: int | None
    new_value: int | None  # None: leave the subscriber's sequence alone
    note: str


def target_value(publisher_last: int, increment: int, margin: int, low: int, high: int) -> int:
    """``margin`` increments past the publisher's last value, within the sequence's range."""
    return max(low, min(high, publisher_last + margin * increment))


def plan(
    publisher: Sequence[SequenceState],
    subscriber: Mapping[QualifiedName, SequenceState],
    margin: int = DEFAULT_MARGIN,
    role: str = "the replication role",
) -> list[SequenceStep]:
    steps = []
    for seq in publisher:
        local = subscriber.get(seq.name)
        have = local.last_value if local else None
        if local is None:
            steps.append(
                SequenceStep(seq.name, seq.last_value, None, None, "not on the subscriber")
            )
            continue
        if not seq.readable:
            steps.append(
                SequenceStep(
                    seq.name,
                    None,
                    have,
                    None,
                    f"{role} may not read it on the publisher: "
                    f"GRANT SELECT ON SEQUENCE {seq.name} TO {role}",
                )
            )
            continue
        if seq.last_value is None:
            steps.append(SequenceStep(seq.name, None, have, None, "never used on the publisher"))
            continue
        target = target_value(
            seq.last_value, seq.increment, margin, local.min_value, local.max_value
        )
        ahead = have is not None and (have >= target if seq.increment > 0 else have <= target)
        if ahead:
            steps.append(SequenceStep(seq.name, seq.last_value, have, None, "already ahead"))
        else:
            steps.append(
                SequenceStep(seq.name, seq.last_value, have, target, f"set (+{margin} steps)")
            )
    return steps
