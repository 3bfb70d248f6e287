"""The CLI's calls to a member's /mesh endpoints (api/routes_mesh.py)."""

from __future__ import annotations

from pgherd.clients.agent import AgentClient
from pgherd.config import NodeConfig
from pgherd.model.mesh import (
    Chunk,
    ConflictFilter,
    KeyDigests,
    MeshConflict,
    MeshDdl,
    MeshDropped,
    MeshNodeReport,
    MeshPrepared,
    MeshSequencesSet,
    MeshSpec,
    MeshStarted,
    MeshWorkerRow,
    NodeFacts,
    RangeChecksums,
)
from pgherd.model.mesh_copy import CopyRequest, CopyStatus, JoinPlan
from pgherd.model.mesh_sequences import SequenceSetting


class MeshClient(AgentClient):
    def __init__(self, node: NodeConfig, token: str, timeout: float = 60.0) -> None:
        super().__init__(node, token, timeout)

    def specs(self) -> list[MeshSpec]:
        return [MeshSpec.model_validate(s) for s in self._request("GET", "/mesh")]

    def workers(self) -> list[MeshWorkerRow]:
        """The apply workers this node's agent runs (every mesh)."""
        return [MeshWorkerRow.model_validate(r) for r in self._request("GET", "/mesh/workers")]

    def inspect(self, dbname: str, tables: list[str]) -> NodeFacts:
        body = {"dbname": dbname, "tables": tables}
        return NodeFacts.model_validate(self._request("POST", "/mesh/inspect", body=body))

    def prepare(self, spec: MeshSpec, plan: JoinPlan | None = None) -> list[str]:
        body = {
            "spec": spec.model_dump(mode="json"),
            "plan": plan.model_dump(mode="json") if plan is not None else None,
        }
        data = self._request("POST", f"/mesh/{spec.name}/prepare", 120, body=body)
        return list(MeshPrepared.model_validate(data).created)

    def start_copy(self, request: CopyRequest) -> CopyStatus:
        body = request.model_dump(mode="json")
        data = self._request("POST", f"/mesh/{request.spec.name}/copy", 120, body=body)
        return CopyStatus.model_validate(data)

    def copy_status(self, name: str) -> CopyStatus:
        return CopyStatus.model_validate(self._request("GET", f"/mesh/{name}/copy"))

    def set_progress(self, spec: MeshSpec, source: str, lsn: str) -> None:
        body = {"spec": spec.model_dump(mode="json"), "source": source, "lsn": lsn}
        MeshStarted.model_validate(self._request("POST", f"/mesh/{spec.name}/progress", body=body))

    def abandon(self, spec: MeshSpec, nodes: list[str]) -> list[str]:
        body = {"spec": spec.model_dump(mode="json"), "nodes": nodes}
        data = self._request("POST", f"/mesh/{spec.name}/abandon", 120, body=body)
        return list(MeshDropped.model_validate(data).dropped)

    def table_ranges(
        self, dbname: str, table: str, chunk_rows: int, boundaries: list[str] | None = None
    ) -> tuple[list[str], list[Chunk]]:
        """Checksums by key range of a table (the mesh need not exist)."""
        body = {
            "dbname": dbname,
            "table": table,
            "chunk_rows": chunk_rows,
            "boundaries": boundaries,
        }
        found = RangeChecksums.model_validate(self._request("POST", "/mesh/ranges", 600, body=body))
        return list(found.boundaries), list(found.chunks)

    def key_digests(
        self, dbname: str, table: str, start: str | None, end: str | None, limit: int
    ) -> list[tuple[str, str]]:
        body = {"dbname": dbname, "table": table, "start": start, "end": end, "limit": limit}
        data = self._request("POST", "/mesh/keys", 600, body=body)
        return [tuple(r) for r in KeyDigests.model_validate(data).rows]  # type: ignore[misc]

    def set_sequences(self, spec: MeshSpec, settings: list[SequenceSetting]) -> list[str]:
        body = {
            "spec": spec.model_dump(mode="json"),
            "settings": [s.model_dump(mode="json") for s in settings],
        }
        data = self._request("POST", f"/mesh/{spec.name}/sequences", 120, body=body)
        return list(MeshSequencesSet.model_validate(data).done)

    def start(self, spec: MeshSpec) -> None:
        data = self._request("PUT", f"/mesh/{spec.name}", body=spec.model_dump(mode="json"))
        MeshStarted.model_validate(data)

    def drop(self, name: str) -> list[str]:
        data = self._request("DELETE", f"/mesh/{name}", 120)
        return list(MeshDropped.model_validate(data).dropped)

    def mesh_status(self, name: str) -> MeshNodeReport:
        return MeshNodeReport.model_validate(self._request("GET", f"/mesh/{name}"))

    def conflicts(self, name: str, which: ConflictFilter) -> list[MeshConflict]:
        params = {"limit": str(which.limit)}
        if which.table:
            params["table"] = which.table
        if which.kind:
            params["kind"] = which.kind.value
        if which.resolution:
            params["resolution"] = which.resolution.value
        data = self._request("GET", f"/mesh/{name}/conflicts", params=params)
        return [MeshConflict.model_validate(c) for c in data]

    def ddl_log(self, name: str, limit: int = 100) -> list[MeshDdl]:
        """The schema changes this member ran for the mesh, newest first."""
        data = self._request("GET", f"/mesh/{name}/ddl", params={"limit": str(limit)})
        return [MeshDdl.model_validate(d) for d in data]

    def checksums(
        self, name: str, table: str, chunk_rows: int, boundaries: list[str] | None = None
    ) -> tuple[list[str], list[Chunk]]:
        body = {"table": table, "chunk_rows": chunk_rows, "boundaries": boundaries}
        data = self._request("POST", f"/mesh/{name}/checksums", 600, body=body)
        found = RangeChecksums.model_validate(data)
        return list(found.boundaries), list(found.chunks)

    def table_checksum(self, dbname: str, table: str) -> Chunk:
        """Rows and digest of a whole table (the mesh need not exist yet)."""
        body = {"dbname": dbname, "table": table}
        return Chunk.model_validate(self._request("POST", "/mesh/checksum", 600, body=body))
