"""``pgherd ddl``: which nodes a schema change goes to, and in which order. Pure.

PostgreSQL's logical replication does not carry DDL, and a subscriber whose table lacks a
column the publisher sends stops with "missing replicated column". So the order matters:

- a change that *adds* (a table, a column, a wider type, an index, a constraint) goes to
  the subscribers first: they can take rows of both the old and the new shape; then the
  publisher, which starts sending the new shape.
- a change that *drops* a column goes to the publisher first: it stops sending the
  column, then the subscribers drop it.

Members of a mesh (multi-master, docs/mesh.md) that hold a touched table get the change
through the mesh's own stream: it runs on the node named, logged in the same transaction
in ``pgherd.mesh_ddl``, a table the mesh replicates like its rows, and every other
member's worker from that node runs it at that place in the stream, after the rows written
before it and before those written after (a mesh's members both send and receive, so no
order of running it on each would keep every worker going).

The publisher tells what a change touches by running it in a transaction that is rolled
back (its dry run): new tables, added and dropped columns, tables it locks exclusively.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pgherd.model.mesh import MeshSpec
from pgherd.model.status import Frozen


class TouchedTable(Frozen):
    schema_name: str
    name: str
    publications: tuple[str, ...] = ()  # publications of the publisher that include it
    new: bool = False


class DdlEffect(Frozen):
    """What a statement does on the publisher, learnt from its dry run."""

    touched: tuple[TouchedTable, ...] = ()
    added_columns: tuple[str, ...] = ()
    dropped_columns: tuple[str, ...] = ()
    changed_columns: tuple[str, ...] = ()

    @property
    def published(self) -> tuple[TouchedTable, ...]:
        return tuple(t for t in self.touched if t.publications)

    @property
    def publications(self) -> set[str]:
        return {p for t in self.touched for p in t.publications}


class Order(StrEnum):
    SUBSCRIBERS_FIRST = "subscribers first"
    PUBLISHER_FIRST = "publisher first"


def order(effect: DdlEffect) -> tuple[Order, str]:
    """The order that keeps replication running, and the reason, for the report."""
    if effect.dropped_columns:
        return (
            Order.PUBLISHER_FIRST,
            f"it drops {', '.join(effect.dropped_columns)}: the publisher stops sending "
            "them before the subscribers drop them",
        )
    return (
        Order.SUBSCRIBERS_FIRST,
        "it adds or changes structure: the subscribers accept the new shape before the "
        "publisher sends it",
    )


class DdlTarget(Frozen):
    """A node that runs the statement, and the subscriptions refreshed after it; a mesh
    member gets it through the mesh's stream (``meshes``), not from pgherd directly."""

    node: str
    dbname: str
    role: str  # publisher | subscriber | mesh member
    subscriptions: tuple[str, ...] = ()
    meshes: tuple[str, ...] = ()  # the meshes whose stream carries it to this member

    @property
    def by_stream(self) -> bool:
        return bool(self.meshes)


class DdlApplied(Frozen):
    """The change ran on a node; ``captured``: (mesh, id) of the rows that log it in
    ``pgherd.mesh_ddl`` for the mesh's other members."""

    message: str
    captured: tuple[tuple[str, int], ...] = ()


class StepOutcome(Frozen):
    node: str
    role: str
    ok: bool
    message: str


class DdlReport(Frozen):
    publisher: str
    order: Order
    reason: str
    effect: DdlEffect
    steps: tuple[StepOutcome, ...]
    not_run: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.steps) and not self.not_run


def sequence_of(
    publisher: DdlTarget, subscribers: Sequence[DdlTarget], how: Order
) -> list[DdlTarget]:
    """The nodes pgherd runs the statement on, in order (mesh members get it from the
    publisher's stream instead)."""
    direct = [t for t in subscribers if not t.by_stream]
    if how is Order.PUBLISHER_FIRST:
        return [publisher, *direct]
    return [*direct, publisher]


def touched_meshes(
    specs: Sequence[MeshSpec], publisher: str, dbname: str, effect: DdlEffect
) -> list[str]:
    """The meshes of ``publisher`` in ``dbname`` that replicate a table the change
    touches: the change is logged for them and their stream carries it."""
    touched = {f"{t.schema_name}.{t.name}" for t in effect.touched}
    return sorted(
        spec.name
        for spec in specs
        if publisher in spec.nodes and spec.dbname == dbname and touched & set(spec.tables)
    )


def mesh_targets(
    specs: Sequence[MeshSpec], publisher: str, dbname: str, effect: DdlEffect
) -> list[DdlTarget]:
    """The other members of every mesh of ``publisher`` in ``dbname`` that replicates a
    table the change touches, each with the meshes whose stream brings it the change."""
    wanted = set(touched_meshes(specs, publisher, dbname, effect))
    members: dict[str, set[str]] = {}
    for spec in specs:
        if spec.name in wanted:
            for node in spec.nodes:
                if node != publisher:
                    members.setdefault(node, set()).add(spec.name)
    return [
        DdlTarget(node=n, dbname=dbname, role="mesh member", meshes=tuple(sorted(m)))
        for n, m in sorted(members.items())
    ]
