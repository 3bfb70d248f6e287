"""A mesh: nodes that replicate a set of tables to each other, every pair both ways.

Pure values and decisions: the mesh's spec (what every member's agent keeps), the names of
what it creates on each node, the checks ``mesh create`` and ``mesh add-node`` make
before changing anything, and the comparison behind ``mesh verify``.

For each ordered pair (source → target) there is a logical slot on the source (named for
the target), one publication per node (the mesh's tables), and a replication origin on
the target (named for the source), which records how far the target applied and marks the
rows it wrote so that they are not sent on (loop prevention).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from itertools import pairwise
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pgherd.model.conflict import TIME_RESOLUTION_US, ConflictKind, Policy, Resolution
from pgherd.model.mesh_sequences import DEFAULT_STEP, MAX_STEP, SequenceFact

# pydantic-free, for the quick commands' reader of GET /status; found here as always.
from pgherd.model.status_lite import WorkerState as WorkerState

MeshName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,19}$")]
MemberName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")]
TableName = Annotated[str, Field(pattern=r"^[^.\s]+\.[^.\s]+$")]
MAX_NAME = 63  # NAMEDATALEN - 1: slots, origins and publications are names
MIN_VERSION = 140000


class Topology(StrEnum):
    """Which members stream to which (docs/mesh.md, "Topologies").

    - ``full``: every ordered pair; a change travels one hop (each member hears each
      other directly), so a worker drops every transaction its source only applied.
    - ``star``: the first node is the hub, the others leaves; the hub passes on to each
      leaf what it applied from the others.
    - ``chain``: each node with the next, both ways; a node passes on what it applied from
      one neighbour to the other.

    Star and chain are trees, so a change reaches every member by one path only and
    cannot come back: a worker passes on a transaction whose origin is a neighbour of its
    source other than its target, and drops the rest (its target's own changes)."""

    FULL = "full"
    STAR = "star"
    CHAIN = "chain"


class MeshSpec(BaseModel):
    """What a mesh is; every member's agent keeps a copy and runs workers from it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: MeshName
    dbname: str = "postgres"
    policy: Policy = Policy.LAST_UPDATE_WINS
    nodes: tuple[MemberName, ...] = Field(min_length=2)  # in priority order, highest first
    tables: tuple[TableName, ...] = Field(min_length=1)  # schema.table
    time_resolution_us: int = TIME_RESOLUTION_US
    # Member k (from 1, in ``nodes`` order) draws sequence values ≡ k (mod sequence_step):
    # model/mesh_sequences.py. Fixed at create: it bounds how many members the mesh takes.
    sequence_step: int = Field(default=DEFAULT_STEP, ge=1, le=MAX_STEP)
    topology: Topology = Topology.FULL

    @model_validator(mode="after")
    def _check(self) -> Self:
        if len(set(self.nodes)) != len(self.nodes):
            raise ValueError("a node is listed twice")
        if len(set(self.tables)) != len(self.tables):
            raise ValueError("a table is listed twice")
        for node in self.nodes:
            if len(slot_name(self.name, node)) > MAX_NAME:
                raise ValueError(f"mesh and node names too long for a slot name: {node}")
        return self

    def pairs(self) -> list[tuple[str, str]]:
        """Every ordered (source, target) pair that streams, by the topology."""
        nodes = self.nodes
        if self.topology is Topology.STAR:
            hub = nodes[0]
            return [(hub, leaf) for leaf in nodes[1:]] + [(leaf, hub) for leaf in nodes[1:]]
        if self.topology is Topology.CHAIN:
            links = list(pairwise(nodes))
            return [*links, *((b, a) for a, b in links)]
        return [(s, t) for s in nodes for t in nodes if s != t]

    def sources_of(self, target: str) -> list[str]:
        """The members whose stream ``target`` applies, in node order."""
        sources = {s for s, t in self.pairs() if t == target}
        return [n for n in self.nodes if n in sources]

    def forwarded(self, source: str, target: str) -> frozenset[str]:
        """The members whose changes ``source`` applied and passes on to ``target`` (their
        origin on ``source`` names them): none in a full mesh; in a tree, the source's
        other neighbours (what they sent it, including what they passed on)."""
        if self.topology is Topology.FULL:
            return frozenset()
        return frozenset(n for n in self.sources_of(source) if n != target)


def publication_name(mesh: str) -> str:
    return f"pgherd_{mesh}"


def slot_name(mesh: str, target: str) -> str:
    """The slot on a source node that feeds ``target``."""
    return f"pgherd_{mesh}_{target}"


def origin_name(mesh: str, source: str) -> str:
    """The replication origin on a target node for changes from ``source``."""
    return f"pgherd_{mesh}_{source}"


def copy_origin_name(mesh: str) -> str:
    """The replication origin of the rows a node's initial copy wrote (model/mesh_copy.py);
    the dot keeps it apart from every node's origin."""
    return f"pgherd_{mesh}.copy"


def qualify(table: str) -> str:
    """``schema.table``; a bare name is in ``public``. Names are taken as written (lower
    case unless the user quotes nothing: pgherd does not fold case)."""
    name = table.strip()
    if not name:
        raise ValueError("an empty table name")
    return name if "." in name else f"public.{name}"


# ---- checks before create -----------------------------------------------------------------


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ColumnDef(_Value):
    name: str
    type: str  # format_type(atttypid, atttypmod)
    not_null: bool


class TableDef(_Value):
    name: str  # schema.table
    columns: tuple[ColumnDef, ...]
    primary_key: tuple[str, ...]
    replica_identity: str  # d, n, f, i

    def shape(self) -> tuple[object, ...]:
        """What must be equal on every node (column order aside)."""
        return (tuple(sorted((c.name, c.type, c.not_null) for c in self.columns)), self.primary_key)


class NodeFacts(_Value):
    """What a member's agent reports before a mesh is created or extended."""

    node: str
    version_num: int
    wal_level: str
    track_commit_timestamp: bool
    free_slots: int
    free_origins: int
    tables: dict[str, TableDef | None]  # None: the table does not exist there
    meshes: tuple[str, ...] = ()
    sequences: tuple[SequenceFact, ...] = ()  # those the tables use (model/mesh_sequences.py)


class ConflictCount(_Value):
    """Conflicts of one kind resolved one way by an apply worker (its status file)."""

    kind: str
    resolution: str
    count: int


class MeshWorkerRow(_Value):
    """One apply worker (source → target) as the target's agent reports it."""

    mesh: str
    source: str
    target: str
    state: WorkerState
    pid: int | None = None
    restarts: int = 0
    lag_bytes: int | None = None
    lag_seconds: float | None = None
    transactions: int = 0
    rows: int = 0
    conflicts: int = 0
    conflict_counts: tuple[ConflictCount, ...] = ()  # by kind and resolution
    last_conflict: str | None = None
    error: str | None = None


def create_problems(
    spec: MeshSpec,
    facts: Sequence[NodeFacts],
    adding: bool = False,
    absent_ok: Collection[str] = (),
) -> list[str]:
    """Why ``spec`` cannot be set up on these nodes; empty when it can.

    Every node must have logical WAL, commit timestamps, room for its slots and origins,
    and every table with a primary key, REPLICA IDENTITY DEFAULT and the same definition
    everywhere (compared with the first node's). A node in ``absent_ok`` may lack tables:
    its initial copy creates them from a source's definitions.
    """
    problems: list[str] = []
    others = len(spec.nodes) - 1
    for fact in facts:
        where = fact.node
        if fact.version_num < MIN_VERSION:
            problems.append(
                f"{where}: PostgreSQL {fact.version_num} is older than 14 (the mesh needs "
                "binary pgoutput and pg_xact_commit_timestamp_origin)"
            )
        if fact.wal_level != "logical":
            problems.append(f"{where}: wal_level is {fact.wal_level}, not logical")
        if not fact.track_commit_timestamp:
            problems.append(f"{where}: track_commit_timestamp is off")
        if not adding and spec.name in fact.meshes:
            problems.append(f"{where}: already a member of a mesh named {spec.name}")
        if fact.free_slots < others:
            problems.append(
                f"{where}: needs {others} free replication slots, has {fact.free_slots}"
            )
        if fact.free_origins < others:
            problems.append(
                f"{where}: needs {others} free replication origins "
                f"(max_replication_slots), has {fact.free_origins}"
            )
        problems.extend(_table_problems(spec, fact, fact.node in absent_ok))
    problems.extend(_definition_differences(spec, facts))
    return problems


def _table_problems(spec: MeshSpec, fact: NodeFacts, absent_ok: bool = False) -> list[str]:
    problems = []
    for table in spec.tables:
        found = fact.tables.get(table)
        if found is None:
            if not absent_ok:
                problems.append(f"{fact.node}: table {table} does not exist")
        elif not found.primary_key:
            problems.append(f"{fact.node}: table {table} has no primary key")
        elif found.replica_identity != "d":
            problems.append(
                f"{fact.node}: table {table} has REPLICA IDENTITY "
                f"{_IDENTITY.get(found.replica_identity, found.replica_identity)}, "
                "not DEFAULT (the primary key)"
            )
    return problems


_IDENTITY = {"d": "DEFAULT", "n": "NOTHING", "f": "FULL", "i": "USING INDEX"}


def _definition_differences(spec: MeshSpec, facts: Sequence[NodeFacts]) -> list[str]:
    problems = []
    for table in spec.tables:
        defs = [(f.node, f.tables.get(table)) for f in facts]
        present = [(node, d) for node, d in defs if d is not None]
        if len(present) < 2:
            continue
        first_node, first = present[0]
        for node, other in present[1:]:
            if other.shape() != first.shape():
                problems.append(
                    f"table {table} differs between {first_node} and {node}: "
                    f"{describe_difference(first, other)}"
                )
    return problems


def describe_difference(a: TableDef, b: TableDef) -> str:
    cols_a = {c.name: c for c in a.columns}
    cols_b = {c.name: c for c in b.columns}
    for name in sorted(set(cols_a) | set(cols_b)):
        if name not in cols_b:
            return f"column {name} is missing on the second"
        if name not in cols_a:
            return f"column {name} is missing on the first"
        if cols_a[name] != cols_b[name]:
            ca, cb = cols_a[name], cols_b[name]
            return (
                f"column {name} is {ca.type}{' NOT NULL' if ca.not_null else ''} vs "
                f"{cb.type}{' NOT NULL' if cb.not_null else ''}"
            )
    return f"primary key ({', '.join(a.primary_key)}) vs ({', '.join(b.primary_key)})"


# ---- verify -------------------------------------------------------------------------------


class Chunk(_Value):
    """Rows of one key range on one node: count and a digest of their contents."""

    rows: int
    digest: str


class OutgoingSlot(_Value):
    """A slot on a member that feeds another member: active, and the WAL it keeps."""

    slot_name: str
    active: bool
    confirmed_flush_lsn: str | None = None
    current_lsn: str | None = None
    retained_bytes: int | None = None


class MeshNodeReport(_Value):
    """One member's side of a mesh: its spec, the workers applying into it, and the slots
    it keeps for the others (``GET /mesh/NAME``)."""

    spec: MeshSpec
    workers: tuple[MeshWorkerRow, ...]
    slots: tuple[OutgoingSlot, ...]


class MeshPrepared(_Value):
    """What a member created for a mesh: its publication, slots and origins."""

    created: tuple[str, ...]


class MeshSequencesSet(_Value):
    """What a member changed on its sequences (``ALTER SEQUENCE`` statements, described)."""

    done: tuple[str, ...]


class MeshDdl(_Value):
    """A schema change logged for a mesh (``pgherd.mesh_ddl``): made on ``origin_node``,
    run by every other member's worker at its place in that node's stream."""

    origin_node: str
    id: int
    at: str
    statement: str
    dropped_columns: tuple[str, ...] = ()


class ConflictFilter(_Value):
    """Which logged conflicts to read: the newest ``limit``, only those on ``table``
    (schema.table), of ``kind``, resolved by ``resolution``, when given. One value from
    the CLI through the agents' API to the query, so a filter cannot lose a field on the
    way."""

    limit: int = Field(default=100, ge=1, le=10_000)
    table: str | None = None
    kind: ConflictKind | None = None
    resolution: Resolution | None = None


class MeshConflict(_Value):
    """A conflict a member's worker met and logged in ``pgherd.conflicts``: which change
    (``source_node``'s, at ``remote_lsn``) met which local row, what the policy decided,
    and why. Rows are JSON text, as the table keeps them."""

    id: int
    at: datetime
    source_node: str
    target_node: str
    table_name: str
    kind: ConflictKind
    key: str | None = None
    local_row: str | None = None
    local_node: str | None = None
    local_commit_ts: datetime | None = None
    remote_row: str | None = None
    remote_commit_ts: datetime | None = None
    remote_lsn: str | None = None
    policy: Policy
    resolution: Resolution
    reason: str | None = None


class MeshStarted(_Value):
    mesh: str


class MeshDropped(_Value):
    """What a member dropped with a mesh."""

    dropped: tuple[str, ...]


class RangeChecksums(_Value):
    """A table's key ranges on one member (``boundaries``: each range's first key) and
    the rows and digest of each."""

    boundaries: tuple[str, ...]
    chunks: tuple[Chunk, ...]


@dataclass(frozen=True)
class RangeDifference:
    table: str
    start: str | None  # the range's first key (None: from the start)
    end: str | None  # the next range's first key (None: to the end)
    rows: Mapping[str, int]  # rows in the range per node


def differing_ranges(
    table: str,
    boundaries: Sequence[str],
    chunks: Mapping[str, Sequence[Chunk]],
) -> list[RangeDifference]:
    """Key ranges whose contents differ between nodes.

    ``boundaries`` are the first keys of ranges 2..n (range i runs from boundary i-1 to
    boundary i); ``chunks[node][i]`` describes range i on ``node``.
    """
    starts: list[str | None] = [None, *boundaries]
    ends: list[str | None] = [*boundaries, None]
    found = []
    for i, (start, end) in enumerate(zip(starts, ends, strict=True)):
        seen = {node: per_node[i] for node, per_node in chunks.items()}
        if len({(c.rows, c.digest) for c in seen.values()}) > 1:
            found.append(
                RangeDifference(table, start, end, {node: c.rows for node, c in seen.items()})
            )
    return found


class KeyDigests(_Value):
    """Keys of a table (JSON arrays, in key order) with an md5 of each row."""

    rows: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class KeyDifference:
    table: str
    key: str  # a JSON array
    digests: Mapping[str, str | None]  # per node; None: the key is not there


def differing_keys(
    table: str, rows: Mapping[str, Sequence[tuple[str, str]]], limit: int = 5
) -> list[KeyDifference]:
    """The first keys (in the first node's key order, then the others') whose rows differ
    between nodes or are missing on some; ``rows[node]`` are (key, digest) pairs."""
    by_node = {node: dict(found) for node, found in rows.items()}
    keys: list[str] = []
    seen: set[str] = set()
    for found in rows.values():
        for key, _digest in found:
            if key not in seen:
                seen.add(key)
                keys.append(key)
    differences = []
    for key in keys:
        digests = {node: by_node[node].get(key) for node in by_node}
        if len(set(digests.values())) > 1:
            differences.append(KeyDifference(table, key, digests))
            if len(differences) == limit:
                break
    return differences


def describe_keys(differences: Sequence[KeyDifference]) -> str:
    """``key [1] differs (node2 lacks it), key [7] differs`` for a refusal or a report."""
    parts = []
    for d in differences:
        missing = [node for node, digest in d.digests.items() if digest is None]
        parts.append(f"{d.key}" + (f" (not on {', '.join(missing)})" if missing else ""))
    return ", ".join(parts)
