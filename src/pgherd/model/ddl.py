"""``pgherd ddl``: which nodes a schema change goes to, and in which order. Pure.

PostgreSQL's logical replication does not carry DDL, and a subscriber whose table lacks a
column the publisher sends stops with "missing replicated column". So the order matters:

- a change that *adds* (a table, a column, a wider type, an index, a constraint) goes to
  the subscribers first: they can take rows of both the old and the new shape; then the
  publisher, which starts sending the new shape.
- a change that *drops* a column goes to the publisher first: it stops sending the
  column, then the subscribers drop it.

Members of a mesh (multi-master, docs/mesh.md) that hold a touched table run the change
too, as subscribers do: each of them both sends and receives the table, so no order keeps
every worker running; the one that meets a column its target lacks stops and retries
until the change reaches it.

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
    """A node that runs the statement, and the subscriptions refreshed after it."""

    node: str
    dbname: str
    role: str  # publisher | subscriber | mesh member
    subscriptions: tuple[str, ...] = ()


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
    if how is Order.PUBLISHER_FIRST:
        return [publisher, *subscribers]
    return [*subscribers, publisher]


def mesh_targets(
    specs: Sequence[MeshSpec], publisher: str, dbname: str, effect: DdlEffect
) -> list[DdlTarget]:
    """The other members of every mesh of ``publisher`` in ``dbname`` that replicates a
    table the change touches."""
    touched = {f"{t.schema_name}.{t.name}" for t in effect.touched}
    members: set[str] = set()
    for spec in specs:
        if publisher in spec.nodes and spec.dbname == dbname and touched & set(spec.tables):
            members.update(n for n in spec.nodes if n != publisher)
    return [DdlTarget(node=n, dbname=dbname, role="mesh member") for n in sorted(members)]
