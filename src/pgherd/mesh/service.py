"""The agent's mesh side: what the API's /mesh endpoints call (api/routes_mesh.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pgherd.errors import Refused
from pgherd.mesh import node_ops, store
from pgherd.mesh.workers import MeshWorkers
from pgherd.model.mesh import (
    Chunk,
    MeshNodeReport,
    MeshSpec,
    MeshWorkerRow,
    NodeFacts,
    OutgoingSlot,
)
from pgherd.pg.local_node import LocalNode


class MeshService:
    def __init__(self, local: LocalNode, workers: MeshWorkers) -> None:
        self.local = local
        self.workers = workers

    def specs(self) -> list[MeshSpec]:
        return store.load_specs(self.local.node)

    def spec(self, name: str) -> MeshSpec:
        return store.load_spec(self.local.node, name)

    def inspect(self, dbname: str, tables: Sequence[str]) -> NodeFacts:
        names = tuple(s.name for s in self.specs())
        return node_ops.inspect(self.local, dbname, tables, names)

    def prepare(self, spec: MeshSpec) -> list[str]:
        self._require_member(spec)
        return node_ops.prepare(self.local, spec)

    def start(self, spec: MeshSpec) -> None:
        """Keep ``spec``: the workers that apply into this node start on the next tick."""
        self._require_member(spec)
        store.save_spec(self.local.node, spec)

    def drop(self, name: str) -> list[str]:
        spec = self.spec(name)
        store.remove_spec(self.local.node, name)
        self.workers.stop_mesh(name)
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

    def conflicts(self, name: str, limit: int) -> list[dict[str, Any]]:
        return node_ops.conflicts(self.local, self.spec(name), limit)

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

    def _require_member(self, spec: MeshSpec) -> None:
        if self.local.node.name not in spec.nodes:
            raise Refused(
                f"{self.local.node.name} is not a member of mesh {spec.name}",
                f"its members are {', '.join(spec.nodes)}",
            )

    @staticmethod
    def _require_table(spec: MeshSpec, table: str) -> None:
        if table not in spec.tables:
            raise Refused(
                f"{table} is not a table of mesh {spec.name}",
                f"its tables are {', '.join(spec.tables)}",
            )
