"""The agent's /mesh endpoints: what ``pgherd mesh …`` asks a member node to do or report.

Every endpoint needs a credential: reads a viewer's (conflicts and checksums show table
contents), acting an operator's or a peer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Protocol

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from pgherd.api.auth import authorized
from pgherd.errors import Refused
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


class MeshPort(Protocol):
    def specs(self) -> list[MeshSpec]: ...

    def inspect(self, dbname: str, tables: Sequence[str]) -> NodeFacts: ...

    def prepare(self, spec: MeshSpec, plan: JoinPlan | None = None) -> list[str]: ...

    def start_copy(self, request: CopyRequest) -> CopyStatus: ...

    def copy_status(self, name: str) -> CopyStatus: ...

    def set_progress(self, spec: MeshSpec, source: str, lsn: str) -> None: ...

    def abandon(self, spec: MeshSpec, nodes: Sequence[str]) -> list[str]: ...

    def set_sequences(self, spec: MeshSpec, settings: Sequence[SequenceSetting]) -> list[str]: ...

    def start(self, spec: MeshSpec) -> None: ...

    def drop(self, name: str) -> list[str]: ...

    def status(self, name: str) -> MeshNodeReport: ...

    def worker_rows(self) -> tuple[MeshWorkerRow, ...]: ...

    def conflicts(self, name: str, which: ConflictFilter) -> list[MeshConflict]: ...

    def ddl_log(self, name: str, limit: int) -> list[MeshDdl]: ...

    def boundaries(self, name: str, table: str, chunk_rows: int) -> list[str]: ...

    def checksums(self, name: str, table: str, bounds: Sequence[str]) -> list[Chunk]: ...

    def table_checksum(self, dbname: str, table: str) -> Chunk: ...

    def table_ranges(
        self, dbname: str, table: str, chunk_rows: int, bounds: Sequence[str] | None
    ) -> tuple[list[str], list[Chunk]]: ...

    def key_digests(
        self, dbname: str, table: str, start: str | None, end: str | None, limit: int
    ) -> list[tuple[str, str]]: ...


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class InspectRequest(_Body):
    dbname: str
    tables: list[str]


class TableChecksumRequest(_Body):
    dbname: str
    table: str


class PrepareRequest(_Body):
    spec: MeshSpec
    plan: JoinPlan | None = None  # nodes joining: how each slot that feeds them is made


class ProgressRequest(_Body):
    spec: MeshSpec
    source: str
    lsn: str


class AbandonRequest(_Body):
    spec: MeshSpec
    nodes: list[str]


class RangesRequest(_Body):
    dbname: str
    table: str
    chunk_rows: int = Field(default=10_000, ge=1)
    boundaries: list[str] | None = None


class KeysRequest(_Body):
    dbname: str
    table: str
    start: str | None = None
    end: str | None = None
    limit: int = Field(default=1000, ge=1, le=100_000)


class SequencesRequest(_Body):
    spec: MeshSpec
    settings: list[SequenceSetting]


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

    @router.post("/ranges", dependencies=acting)
    def table_ranges(body: RangesRequest) -> RangeChecksums:
        """Checksums of a table by key range before a mesh exists (create's comparison)."""
        bounds, chunks = mesh.table_ranges(
            body.dbname, body.table, body.chunk_rows, body.boundaries
        )
        return RangeChecksums(boundaries=tuple(bounds), chunks=tuple(chunks))

    @router.post("/keys", dependencies=acting)
    def key_digests(body: KeysRequest) -> KeyDigests:
        """Keys in a range with an md5 of each row: which rows differ between nodes."""
        found = mesh.key_digests(body.dbname, body.table, body.start, body.end, body.limit)
        return KeyDigests(rows=tuple(found))

    @router.post("/{name}/prepare", dependencies=acting)
    def prepare(name: str, body: PrepareRequest) -> MeshPrepared:
        """The publication, the slots for the other members and their origins."""
        _same(name, body.spec)
        return MeshPrepared(created=tuple(mesh.prepare(body.spec, body.plan)))

    @router.post("/{name}/copy", dependencies=acting)
    def start_copy(name: str, body: CopyRequest) -> CopyStatus:
        """Start this node's initial copy from the given members; it runs on in the agent."""
        _same(name, body.spec)
        return mesh.start_copy(body)

    @router.get("/{name}/copy")
    def copy_status(name: str) -> CopyStatus:
        return mesh.copy_status(name)

    @router.post("/{name}/progress", dependencies=acting)
    def set_progress(name: str, body: ProgressRequest) -> MeshStarted:
        """Start a source's stream into this node no earlier than an LSN (the end of the
        source's initial copy)."""
        _same(name, body.spec)
        mesh.set_progress(body.spec, body.source, body.lsn)
        return MeshStarted(mesh=name)

    @router.post("/{name}/abandon", dependencies=acting)
    def abandon(name: str, body: AbandonRequest) -> MeshDropped:
        """Undo a join that failed: what serves the pairs with the given nodes."""
        _same(name, body.spec)
        return MeshDropped(dropped=tuple(mesh.abandon(body.spec, body.nodes)))

    @router.post("/{name}/sequences", dependencies=acting)
    def sequences(name: str, body: SequencesRequest) -> MeshSequencesSet:
        """Give this member its own sequence values: ALTER SEQUENCE … INCREMENT BY …
        RESTART WITH … (model/mesh_sequences.py)."""
        _same(name, body.spec)
        return MeshSequencesSet(done=tuple(mesh.set_sequences(body.spec, body.settings)))

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
    def conflicts(name: str, which: Annotated[ConflictFilter, Query()]) -> list[MeshConflict]:
        """Conflicts met on this member, newest first, filtered by table (schema.table),
        kind and resolution when given."""
        return mesh.conflicts(name, which)

    @router.get("/{name}/ddl")
    def ddl_log(name: str, limit: int = Query(default=100, ge=1, le=10_000)) -> list[MeshDdl]:
        """Schema changes this member ran for the mesh (pgherd.mesh_ddl), newest first."""
        return mesh.ddl_log(name, limit)

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
