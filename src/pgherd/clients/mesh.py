"""The CLI's calls to a member's /mesh endpoints (api/routes_mesh.py)."""

from __future__ import annotations

from typing import Any

from pgherd.clients.agent import AgentClient
from pgherd.config import NodeConfig
from pgherd.model.mesh import (
    Chunk,
    MeshDropped,
    MeshNodeReport,
    MeshPrepared,
    MeshSpec,
    MeshStarted,
    MeshWorkerRow,
    NodeFacts,
    RangeChecksums,
)


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

    def prepare(self, spec: MeshSpec) -> list[str]:
        data = self._request(
            "POST", f"/mesh/{spec.name}/prepare", 120, body=spec.model_dump(mode="json")
        )
        return list(MeshPrepared.model_validate(data).created)

    def start(self, spec: MeshSpec) -> None:
        data = self._request("PUT", f"/mesh/{spec.name}", body=spec.model_dump(mode="json"))
        MeshStarted.model_validate(data)

    def drop(self, name: str) -> list[str]:
        data = self._request("DELETE", f"/mesh/{name}", 120)
        return list(MeshDropped.model_validate(data).dropped)

    def mesh_status(self, name: str) -> MeshNodeReport:
        return MeshNodeReport.model_validate(self._request("GET", f"/mesh/{name}"))

    def conflicts(self, name: str, limit: int) -> list[dict[str, Any]]:
        return list(self._request("GET", f"/mesh/{name}/conflicts", params={"limit": str(limit)}))

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
