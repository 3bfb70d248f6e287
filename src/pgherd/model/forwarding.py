"""Native subscriptions that pass changes on, and the loops they can make. Pure.

A subscriber applies what it receives under a replication origin, and its own publications
send those changes on to its subscribers unless a subscription asks for ``origin = none``
(PostgreSQL 16+: "send me only what the publisher made itself"). So A → B → C cascades by
default, which is what ``subscription create --forward`` asks for explicitly; and a cycle
A → B → A sends a change back to where it was made, where it fails (a duplicate key) or,
worse, applies again.

A change made on a node of a cycle travels its first edge (it is the publisher's own
change), then on along every edge that forwards. It comes back to its maker only if every
edge but the first forwards; any node of the cycle can be the maker, so the cycle loops
when at most one of its edges filters by origin. Only edges that carry a common table
make a cycle for that table (``*`` and ``schema.*`` stand for FOR ALL TABLES and FOR
TABLES IN SCHEMA publications).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Edge:
    """A subscription: ``subscriber`` receives ``tables`` from ``publisher``; ``forwards``:
    it takes the publisher's received changes too (``origin = any``, PostgreSQL's default
    and the only behaviour before 16)."""

    name: str
    publisher: str
    subscriber: str
    tables: frozenset[str]
    forwards: bool


@dataclass(frozen=True)
class Loop:
    """A cycle of subscriptions through which a change of ``tables`` would come back."""

    edges: tuple[Edge, ...]
    tables: frozenset[str]

    def describe(self) -> str:
        path = " → ".join([self.edges[0].publisher, *(e.subscriber for e in self.edges)])
        return f"{path} ({', '.join(sorted(self.tables))})"


def loops(existing: Sequence[Edge], new: Edge) -> list[Loop]:
    """The loops that ``new`` would close: cycles through it whose edges share a table and
    of which at most one filters by origin."""
    found: list[Loop] = []

    def walk(node: str, path: list[Edge], tables: frozenset[str]) -> None:
        if node == new.publisher:
            cycle = (new, *path)
            if sum(not e.forwards for e in cycle) <= 1:
                found.append(Loop(cycle, tables))
            return
        visited = {e.publisher for e in path}
        for edge in existing:
            if edge.publisher != node or edge.subscriber in visited or edge.subscriber == node:
                continue
            shared = common(tables, edge.tables)
            if shared:
                walk(edge.subscriber, [*path, edge], shared)

    walk(new.subscriber, [], new.tables)
    return found


def common(a: frozenset[str], b: frozenset[str]) -> frozenset[str]:
    """The tables (schema.table) two publications both carry; ``*`` stands for every table
    (FOR ALL TABLES), ``schema.*`` for a schema's (FOR TABLES IN SCHEMA)."""
    if "*" in a:
        return b
    if "*" in b:
        return a

    def covered(table: str, by: frozenset[str]) -> bool:
        return table in by or f"{table.split('.', 1)[0]}.*" in by

    found = {t for t in a if covered(t, b)} | {t for t in b if covered(t, a)}
    return frozenset(found)
