"""The agent's /mesh endpoints: what ``pgherd mesh …`` asks a member node to do or report.

Every endpoint needs a credential: reads a viewer's (conflicts and checksums show table
contents), acting an operator's or a peer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from pgherd.api.auth import authorized
from pgherd.errors import Refused
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


class MeshPort(Protocol):
    def specs(self) -> list[MeshSpec]: ...

    def inspect(self, dbname: str, tables: Sequence[str]) -> NodeFacts: ...

    def prepare(self, spec: MeshSpec) -> list[str]: ...

    def start(self, spec: MeshSpec) -> None: ...

    def drop(self, name: str) -> list[str]: ...

    def status(self, name: str) -> MeshNodeReport: ...

    def worker_rows(self) -> tuple[MeshWorkerRow, ...]: ...

    def conflicts(self, name: str, limit: int) -> list[dict[str, Any]]: ...

    def boundaries(self, name: str, table: str, chunk_rows: int) -> list[str]: ...

    def checksums(self, name: str, table: str, bounds: Sequence[str]) -> list[Chunk]: ...

    def table_checksum(self, dbname: str, table: str) -> Chunk: ...


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InspectRequest(_Body):
    dbname: str
    tables: list[str]


class TableChecksumRequest(_Body):
    dbname: str
    table: str


class ChecksumRequest(_Body):
    table: str
    chunk_rows: int = Field(default=10_000, ge=1, le=100_000_000)
    boundaries: list[str] | None = None  # None: compute them here (the reference node)


def mesh_router(mesh: MeshPort) -> APIRouter:
    router = APIRouter(prefix="/mesh")
    acting = authorized()

    @router.get("")
    def list_meshes() -> list[MeshSpec]:
        return mesh.specs()

    @router.get("/workers")
    def workers() -> list[MeshWorkerRow]:
        return list(mesh.worker_rows())

    @router.post("/inspect", dependencies=acting)
    def inspect(body: InspectRequest) -> NodeFacts:
        """This node's settings and the tables' definitions, for the checks of create."""
        return mesh.inspect(body.dbname, body.tables)

    @router.post("/checksum", dependencies=acting)
    def table_checksum(body: TableChecksumRequest) -> Chunk:
        """Rows and digest of a whole table, before a mesh exists (create, add-node)."""
        return mesh.table_checksum(body.dbname, body.table)

    @router.post("/{name}/prepare", dependencies=acting)
    def prepare(name: str, spec: MeshSpec) -> MeshPrepared:
        """The publication, the slots for the other members and their origins."""
        _same(name, spec)
        return MeshPrepared(created=tuple(mesh.prepare(spec)))

    @router.put("/{name}", dependencies=acting)
    def start(name: str, spec: MeshSpec) -> MeshStarted:
        """Keep the spec and run the workers that apply into this node."""
        _same(name, spec)
        mesh.start(spec)
        return MeshStarted(mesh=name)

    @router.delete("/{name}", dependencies=acting)
    def drop(name: str) -> MeshDropped:
        return MeshDropped(dropped=tuple(mesh.drop(name)))

    @router.get("/{name}")
    def status(name: str) -> MeshNodeReport:
        return mesh.status(name)

    @router.get("/{name}/conflicts")
    def conflicts(
        name: str, limit: int = Query(default=100, ge=1, le=10_000)
    ) -> list[dict[str, Any]]:
        return mesh.conflicts(name, limit)

    @router.post("/{name}/checksums", dependencies=acting)
    def checksums(name: str, body: ChecksumRequest) -> RangeChecksums:
        bounds = body.boundaries
        if bounds is None:
            bounds = mesh.boundaries(name, body.table, body.chunk_rows)
        chunks = mesh.checksums(name, body.table, bounds)
        return RangeChecksums(boundaries=tuple(bounds), chunks=tuple(chunks))

    return router


def _same(name: str, spec: MeshSpec) -> None:
    if spec.name != name:
        raise Refused(f"the path names mesh {name} but the body {spec.name}")
