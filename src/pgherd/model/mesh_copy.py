"""Nodes that join a mesh with an initial copy of the rows: who copies from whom, where each
pair's stream starts, and the copy's progress as a node reports it. Pure.

A joining node (a *newcomer*: the node of ``mesh add-node``, or every member but the source
of ``mesh create --initial-copy-from``, or every member of ``mesh create --merge``) copies
the mesh's tables from its *sources* in one local transaction. For the copy and the streams
to meet exactly — nothing lost, nothing applied twice — each pair's stream must start
where the copy's snapshot ends:

- from a source of the copy, the pair's slot is made by the copy itself, on the source,
  with an exported snapshot (``CREATE_REPLICATION_SLOT … EXPORT_SNAPSHOT``), and the rows
  are read in that very snapshot (``SET TRANSACTION SNAPSHOT``): the slot's first change is
  the first one the snapshot does not hold;
- from a member already in the mesh that is not a source (add-node: every member but the
  reference), the pair's slot is a copy of the slot that feeds the reference
  (``pg_copy_logical_replication_slot``, same position: it keeps at least what the
  reference has not yet applied), and the newcomer starts it where the reference's
  snapshot says the reference had applied that member (``pgherd.mesh_progress``, written
  by the apply workers in the same commits as the rows);
- from a newcomer to anyone that did not copy from it, the slot is made before the copy,
  and the target starts it at the end of the newcomer's copy transaction (what the
  newcomer wrote before was replaced by the copy, or, in an empty table, is nothing).

Rows written by the copy carry a replication origin of their own (``pgherd_<mesh>.copy``):
the newcomer's own streams skip them (they are not its changes), and a change that later
meets one is applied as a change that follows it (model/conflict.py: a baseline version).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from pgherd.model.mesh import MeshSpec


class SlotStart(StrEnum):
    """How a pair's slot on the source is made when nodes join."""

    FRESH = "fresh"  # now: the pair's changes from here on (or it exists already)
    COPY = "copy"  # a copy of the slot that feeds the reference: the same position
    SNAPSHOT = "snapshot"  # by the target's copy, with the snapshot the rows are read in


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JoinPlan(_Value):
    """Who joins, and from whom each newcomer copies."""

    newcomers: tuple[str, ...]
    copies: dict[str, tuple[str, ...]]  # newcomer -> the members it copies rows from
    reference: str | None = None  # add-node: the member whose slots the others copy
    merge: bool = False  # the newcomers keep their rows and copy only the sources' own

    def slot_start(self, source: str, target: str) -> SlotStart:
        if target in self.newcomers:
            if source in self.copies.get(target, ()):
                return SlotStart.SNAPSHOT
            if source not in self.newcomers and self.reference is not None:
                return SlotStart.COPY
        return SlotStart.FRESH

    def started_after_copy(self, spec: MeshSpec) -> list[tuple[str, str]]:
        """The pairs (newcomer → target) whose target starts at the end of the newcomer's
        copy transaction (every pair from a newcomer that is not a copy's source)."""
        return [
            (source, target)
            for source, target in spec.pairs()
            if source in self.newcomers and self.slot_start(source, target) is SlotStart.FRESH
        ]

    def progress_from_reference(self, spec: MeshSpec, newcomer: str) -> tuple[str, ...]:
        """The members whose stream into ``newcomer`` starts where the reference's snapshot
        says the reference had applied them (the COPY pairs)."""
        return tuple(
            s for s in spec.sources_of(newcomer) if self.slot_start(s, newcomer) is SlotStart.COPY
        )


def plan_add(existing: Sequence[str], newcomer: str, reference: str) -> JoinPlan:
    """``mesh add-node``: the newcomer copies from the reference, a member."""
    if reference not in existing:
        raise ValueError(f"{reference} is not a member")
    return JoinPlan(newcomers=(newcomer,), copies={newcomer: (reference,)}, reference=reference)


def plan_create_from(nodes: Sequence[str], source: str) -> JoinPlan:
    """``mesh create --initial-copy-from SOURCE``: every other member's rows are replaced by
    a copy of the source's."""
    if source not in nodes:
        raise ValueError(f"{source} is not one of the nodes")
    others = tuple(n for n in nodes if n != source)
    return JoinPlan(newcomers=others, copies={n: (source,) for n in others}, reference=source)


def plan_merge(nodes: Sequence[str]) -> JoinPlan:
    """``mesh create --merge``: every member keeps its rows and copies every other member's
    own (tables that hold disjoint keys)."""
    return JoinPlan(
        newcomers=tuple(nodes),
        copies={n: tuple(o for o in nodes if o != n) for n in nodes},
        merge=True,
    )


# ---- the copy, as the newcomer's agent runs and reports it -------------------------------


class CopyRequest(_Value):
    """What a newcomer's agent copies: the mesh (as it will be), the sources, whether the
    newcomer's rows are kept (merge) or replaced, and the members whose start position it
    takes from the (first) source's snapshot."""

    spec: MeshSpec
    sources: tuple[str, ...] = Field(min_length=1)
    merge: bool = False
    progress_of: tuple[str, ...] = ()


class CopyState(StrEnum):
    COPYING = "copying"
    DONE = "done"
    FAILED = "failed"


class TableProgress(_Value):
    table: str
    source: str
    rows: int = 0
    estimate: int | None = None  # the source's reltuples, when it has statistics
    done: bool = False


class CopyStatus(_Value):
    """``GET /mesh/NAME/copy``: where the newcomer's copy stands."""

    mesh: str
    node: str
    state: CopyState
    tables: tuple[TableProgress, ...] = ()
    started_at: float | None = None
    finished_at: float | None = None
    commit_lsn: str | None = None  # the end of the copy transaction, once done
    error: str | None = None
    hint: str | None = None  # what to do about the error

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)


def progress_line(status: CopyStatus, now: float) -> str:
    """One line of progress for people: the table being copied, rows, rate."""
    elapsed = max(now - (status.started_at or now), 1e-6)
    current = next((t for t in status.tables if not t.done), None)
    rate = f"{status.rows / elapsed:,.0f} rows/s"
    if status.state is CopyState.DONE:
        return f"{status.node}: copied {status.rows:,} rows in {elapsed:.1f} s ({rate})"
    if current is None:
        return f"{status.node}: {status.state} ({status.rows:,} rows, {rate})"
    of = ""
    if current.estimate:
        of = f" of ~{current.estimate:,} ({min(100, 100 * current.rows // current.estimate)} %)"
    return (
        f"{status.node}: copying {current.table} from {current.source}: "
        f"{current.rows:,} rows{of}, {rate}"
    )
