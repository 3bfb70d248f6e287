"""Sequences in a mesh: every member hands out values of its own. Pure.

Logical replication carries rows, not sequence values, so two members that both draw
``nextval`` from a sequence of the same name would hand out the same keys (an
``insert_exists`` conflict, or worse, two rows merged into one). A mesh gives each member
its own residue class: with a *step* ``s`` (``--sequence-step``, 10 by default: room for
that many members) member number ``k`` (its place in ``--nodes``, from 1) draws only values
``≡ k (mod s)``: ``INCREMENT BY s`` and a restart at the first such value a margin above
everything any member has handed out or stored. ``mesh create`` and ``mesh add-node`` set it on
every sequence the mesh's tables use (serial and identity columns, and defaults that call
``nextval``); ``mesh verify`` reports any two members whose sequences could still meet.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict

DEFAULT_STEP = 10
MAX_STEP = 1000
# Steps skipped past the highest value seen: room for what members hand out between the
# reading of their sequences and the change (their applications keep writing).
MARGIN_STEPS = 100


class SequenceFact(BaseModel):
    """A sequence a mesh table uses, as one member has it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    table: str  # schema.table
    column: str
    sequence: str  # schema.name, as stored (not quoted)
    increment: int
    next_value: int  # what nextval would return now
    min_value: int
    max_value: int
    cycle: bool = False
    column_max: int | None = None  # the largest value stored in the column


class SequenceSetting(BaseModel):
    """What one member must do to a sequence: ``ALTER SEQUENCE … INCREMENT BY increment
    RESTART WITH restart``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sequence: str
    increment: int
    restart: int


@dataclass(frozen=True)
class SequencePlan:
    settings: dict[str, list[SequenceSetting]]  # per node
    problems: list[str]


def offset_of(nodes: Sequence[str], node: str) -> int:
    """A member's residue: its place in the mesh's node list, from 1."""
    return nodes.index(node) + 1


def first_above(floor: int, step: int, offset: int) -> int:
    """The smallest value greater than ``floor`` that is ``≡ offset (mod step)``."""
    value = floor + 1
    return value + (offset - value) % step


def is_set(fact: SequenceFact, step: int, offset: int) -> bool:
    """Whether the sequence already draws the member's residue class with the step."""
    return fact.increment == step and fact.next_value % step == offset % step


def plan(
    nodes: Sequence[str],
    step: int,
    facts: Mapping[str, Sequence[SequenceFact]],
) -> SequencePlan:
    """The settings that give each member in ``nodes`` its residue class, for the sequences
    every member reported (``facts`` per node). A sequence already set up is left alone;
    one that cannot be (a negative step, CYCLE, a range too small) is a problem that names
    the fix."""
    problems: list[str] = []
    settings: dict[str, list[SequenceSetting]] = {node: [] for node in nodes}
    if len(nodes) > step:
        problems.append(
            f"{len(nodes)} members but a sequence step of {step}: two members would share "
            "values (the step is fixed when the mesh is created)"
        )
        return SequencePlan(settings, problems)
    by_sequence: dict[str, list[tuple[str, SequenceFact]]] = {}
    for node in nodes:
        for fact in facts.get(node, ()):
            by_sequence.setdefault(fact.sequence, []).append((node, fact))
    for name, found in sorted(by_sequence.items()):
        seen = max(max(f.next_value - f.increment, f.column_max or 0) for _n, f in found)
        floor = seen + MARGIN_STEPS * step
        for node, fact in found:
            offset = offset_of(nodes, node)
            why = _cannot(fact, step)
            if why is not None:
                problems.append(f"{node}: sequence {name} ({fact.table}.{fact.column}) {why}")
                continue
            if is_set(fact, step, offset):
                continue
            restart = first_above(floor, step, offset)
            if restart > fact.max_value:
                problems.append(
                    f"{node}: sequence {name} would restart at {restart}, above its maximum "
                    f"{fact.max_value}"
                )
                continue
            settings[node].append(SequenceSetting(sequence=name, increment=step, restart=restart))
    return SequencePlan(settings, problems)


def _cannot(fact: SequenceFact, step: int) -> str | None:
    if fact.increment <= 0:
        return "counts down: a mesh needs ascending sequences"
    if fact.cycle:
        return "is CYCLE: it would hand out its values again"
    if fact.max_value - fact.min_value < step:
        return f"has too small a range for a step of {step}"
    return None


@dataclass(frozen=True)
class Collision:
    sequence: str
    nodes: tuple[str, str]
    why: str


def could_meet(a: SequenceFact, b: SequenceFact) -> str | None:
    """Why two members' sequences could hand out the same value, or None when they never
    can: both ascend and their next values differ modulo the gcd of the increments."""
    if a.increment <= 0 or b.increment <= 0:
        return "one of them counts down"
    if a.cycle or b.cycle:
        return "one of them cycles"
    gcd = math.gcd(a.increment, b.increment)
    if (a.next_value - b.next_value) % gcd == 0:
        return (
            f"next values {a.next_value} and {b.next_value} with increments "
            f"{a.increment} and {b.increment} meet"
        )
    return None


def collisions(facts: Mapping[str, Sequence[SequenceFact]]) -> list[Collision]:
    """Every pair of members whose sequences of one name could hand out the same value."""
    by_sequence: dict[str, list[tuple[str, SequenceFact]]] = {}
    for node, found in facts.items():
        for fact in found:
            by_sequence.setdefault(fact.sequence, []).append((node, fact))
    found_pairs: list[Collision] = []
    for name, members in sorted(by_sequence.items()):
        for i, (node_a, a) in enumerate(members):
            for node_b, b in members[i + 1 :]:
                why = could_meet(a, b)
                if why is not None:
                    found_pairs.append(Collision(name, (node_a, node_b), why))
    return found_pairs


FIX = (
    "let pgherd give each member its own values (pgherd mesh add-node or create sets "
    "INCREMENT BY <step> on each), or use keys that cannot collide: uuid "
    "(gen_random_uuid()), or an identity column with a per-node START and INCREMENT"
)
