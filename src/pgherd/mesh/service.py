"""The agent's mesh side: what the API's /mesh endpoints call (api/routes_mesh.py)."""

from __future__ import annotations

from collections.abc import Sequence

from pgherd.errors import Refused
from pgherd.mesh import node_ops, node_sequences, store
from pgherd.mesh.initial_copy import CopyJobs
from pgherd.mesh.workers import MeshWorkers
from pgherd.model.lsn import Lsn
from pgherd.model.mesh import (
    Chunk,
    ConflictFilter,
    MeshConflict,
    MeshDdl,
    MeshNodeReport,
    MeshSpec,
    MeshWorkerRow,
    NodeFacts,
    OutgoingSlot,
)
from pgherd.model.mesh_copy import CopyRequest, CopyStatus, JoinPlan
from pgherd.model.mesh_members import local_member
from pgherd.model.mesh_sequences import SequenceSetting
from pgherd.pg.local_node import LocalNode


class MeshService:
    def __init__(self, local: LocalNode, workers: MeshWorkers) -> None:
        self.local = local
        self.workers = workers
        self.copies = CopyJobs(local)

    def specs(self) -> list[MeshSpec]:
        return store.load_specs(self.local.node)

    def spec(self, name: str) -> MeshSpec:
        return store.load_spec(self.local.node, name)

    def inspect(self, dbname: str, tables: Sequence[str]) -> NodeFacts:
        names = tuple(s.name for s in self.specs())
        return node_ops.inspect(self.local, dbname, tables, names)

    def prepare(self, spec: MeshSpec, plan: JoinPlan | None = None) -> list[str]:
        self._require_member(spec)
        return node_ops.prepare(self.local, spec, plan)

    def start_copy(self, request: CopyRequest) -> CopyStatus:
        """Start this node's initial copy (a thread); its progress through copy_status."""
        self._require_member(request.spec)
        if request.spec.name in {s.name for s in self.specs()}:
            raise Refused(
                f"{self.local.node.name} already runs mesh {request.spec.name}",
                "a member's rows are not replaced; drop the mesh here first",
            )
        return self.copies.start(request)

    def copy_status(self, name: str) -> CopyStatus:
        found = self.copies.status(name)
        if found is None:
            raise Refused(
                f"no initial copy of mesh {name} on {self.local.node.name}",
                "pgherd mesh add-node or create --initial-copy-from starts one",
            )
        return found

    def set_progress(self, spec: MeshSpec, source: str, lsn: str) -> None:
        """Start ``source``'s stream into this node at ``lsn`` or later."""
        self._require_member(spec)
        node_ops.set_progress(self.local, spec, source, Lsn.parse(lsn).value)

    def abandon(self, spec: MeshSpec, nodes: Sequence[str]) -> list[str]:
        """Undo a join that failed: what serves the pairs with ``nodes`` (everything when
        this node is one of them); the spec is kept only if this node still runs it."""
        self._require_member(spec)
        if node_ops.member_of(self.local, spec) in nodes:
            self.workers.stop_mesh(spec.name)
            store.remove_spec(self.local.node, spec.name)
        return node_ops.drop(self.local, spec, only=nodes)

    def set_sequences(self, spec: MeshSpec, settings: Sequence[SequenceSetting]) -> list[str]:
        """Give this member its own sequence values (settings decided by the CLI from every
        member's sequences)."""
        self._require_member(spec)
        with node_ops.connect(self.local, spec.dbname) as conn:
            return node_sequences.apply(conn, settings)

    def start(self, spec: MeshSpec) -> None:
        """Keep ``spec``: the workers that apply into this node start on the next tick."""
        self._require_member(spec)
        store.save_spec(self.local.node, spec)

    def drop(self, name: str) -> list[str]:
        spec = self.spec(name)
        store.remove_spec(self.local.node, name)
        self.workers.stop_mesh(name)
        if self.local.instance.standby_configured:
            # A standby of a cluster member: its primary drops the slots, origins and
            # publication (the WAL brings the last two here; the slot keeper drops the
            # copies of the slots).
            return []
        return node_ops.drop(self.local, spec)

    def status(self, name: str) -> MeshNodeReport:
        spec = self.spec(name)
        return MeshNodeReport(
            spec=spec,
            workers=tuple(w for w in self.workers.rows() if w.mesh == name),
            slots=tuple(
                OutgoingSlot.model_validate(s) for s in node_ops.outgoing_slots(self.local, spec)
            ),
        )

    def worker_rows(self) -> tuple[MeshWorkerRow, ...]:
        return self.workers.rows()

    def ddl_log(self, name: str, limit: int) -> list[MeshDdl]:
        return node_ops.ddl_log(self.local, self.spec(name), limit)

    def conflicts(self, name: str, which: ConflictFilter) -> list[MeshConflict]:
        return node_ops.conflicts(self.local, self.spec(name), which)

    def boundaries(self, name: str, table: str, chunk_rows: int) -> list[str]:
        spec = self.spec(name)
        self._require_table(spec, table)
        return node_ops.boundaries(self.local, spec.dbname, table, chunk_rows)

    def checksums(self, name: str, table: str, bounds: Sequence[str]) -> list[Chunk]:
        spec = self.spec(name)
        self._require_table(spec, table)
        return node_ops.checksums(self.local, spec.dbname, table, bounds)

    def table_checksum(self, dbname: str, table: str) -> Chunk:
        return node_ops.checksums(self.local, dbname, table, [])[0]

    def table_ranges(
        self, dbname: str, table: str, chunk_rows: int, bounds: Sequence[str] | None
    ) -> tuple[list[str], list[Chunk]]:
        """Checksums by key range before a mesh exists (bounds computed here when None)."""
        if bounds is None:
            bounds = node_ops.boundaries(self.local, dbname, table, chunk_rows)
        return list(bounds), node_ops.checksums(self.local, dbname, table, bounds)

    def key_digests(
        self, dbname: str, table: str, start: str | None, end: str | None, limit: int
    ) -> list[tuple[str, str]]:
        return node_ops.key_digests(self.local, dbname, table, start, end, limit)

    def _require_member(self, spec: MeshSpec) -> None:
        config = self.local.config
        if local_member(spec.nodes, self.local.node.name, config.cluster) is None:
            raise Refused(
                f"{self.local.node.name} (of cluster {config.cluster}) is not a member of "
                f"mesh {spec.name}",
                f"its members are {', '.join(spec.nodes)}",
            )

    @staticmethod
    def _require_table(spec: MeshSpec, table: str) -> None:
        if table not in spec.tables:
            raise Refused(
                f"{table} is not a table of mesh {spec.name}",
                f"its tables are {', '.join(spec.tables)}",
            )
