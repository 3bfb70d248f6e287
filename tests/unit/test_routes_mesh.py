"""The agent's /mesh endpoints: token required, bodies validated, errors as JSON."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from pgherd.api.app import secure
from pgherd.api.credentials import operator_only
from pgherd.api.routes_mesh import mesh_router
from pgherd.errors import Refused
from pgherd.model.conflict import ConflictKind, Policy, Resolution
from pgherd.model.mesh import (
    Chunk,
    ConflictFilter,
    MeshConflict,
    MeshDdl,
    MeshNodeReport,
    MeshSpec,
    MeshWorkerRow,
    NodeFacts,
)
from pgherd.model.mesh_copy import CopyRequest, CopyState, CopyStatus, JoinPlan
from pgherd.model.mesh_sequences import SequenceSetting

SPEC = MeshSpec(name="shop", nodes=("a", "b"), tables=("public.t",))
CONFLICT = MeshConflict(
    id=3,
    at=datetime(2026, 12, 6, 11, 0, tzinfo=UTC),
    source_node="b",
    target_node="a",
    table_name="public.t",
    kind=ConflictKind.UPDATE_MISSING,
    key='{"id": 30}',
    remote_row='{"id": 30, "v": 1}',
    remote_lsn="0/3000060",
    policy=Policy.LAST_UPDATE_WINS,
    resolution=Resolution.SKIP,
    reason="no row with that key",
)


class FakeMesh:
    """Remembers what it was asked; answers like a member node."""

    def __init__(self) -> None:
        self.started: list[MeshSpec] = []
        self.progress: list[tuple[str, str]] = []
        self.asked: list[ConflictFilter] = []

    def specs(self) -> list[MeshSpec]:
        return [SPEC, *self.started]

    def inspect(self, dbname: str, tables: Sequence[str]) -> NodeFacts:
        return NodeFacts(
            node="a",
            version_num=150004,
            wal_level="logical",
            track_commit_timestamp=True,
            free_slots=3,
            free_origins=3,
            tables={t: None for t in tables},
        )

    def prepare(self, spec: MeshSpec, plan: JoinPlan | None = None) -> list[str]:
        return [f"publication pgherd_{spec.name}"]

    def start_copy(self, request: CopyRequest) -> CopyStatus:
        return CopyStatus(mesh=request.spec.name, node="a", state=CopyState.COPYING)

    def copy_status(self, name: str) -> CopyStatus:
        return CopyStatus(mesh=name, node="a", state=CopyState.DONE, commit_lsn="0/10")

    def set_progress(self, spec: MeshSpec, source: str, lsn: str) -> None:
        self.progress.append((source, lsn))

    def abandon(self, spec: MeshSpec, nodes: Sequence[str]) -> list[str]:
        return [f"slot pgherd_{spec.name}_{n}" for n in nodes]

    def table_ranges(
        self, dbname: str, table: str, chunk_rows: int, bounds: Sequence[str] | None
    ) -> tuple[list[str], list[Chunk]]:
        found = list(bounds) if bounds is not None else ["[5]"]
        return found, [Chunk(rows=1, digest="d") for _ in range(len(found) + 1)]

    def key_digests(
        self, dbname: str, table: str, start: str | None, end: str | None, limit: int
    ) -> list[tuple[str, str]]:
        return [("[1]", "x")][:limit]

    def set_sequences(self, spec: MeshSpec, settings: Sequence[SequenceSetting]) -> list[str]:
        return [f"sequence {s.sequence}" for s in settings]

    def start(self, spec: MeshSpec) -> None:
        self.started.append(spec)

    def drop(self, name: str) -> list[str]:
        if name != "shop":
            raise Refused(f"a is not a member of a mesh named {name}", "see mesh status")
        return ["slot pgherd_shop_b"]

    def status(self, name: str) -> MeshNodeReport:
        return MeshNodeReport(spec=SPEC, workers=(), slots=())

    def worker_rows(self) -> tuple[MeshWorkerRow, ...]:
        return (MeshWorkerRow(mesh="shop", source="b", target="a", state="running"),)

    def conflicts(self, name: str, which: ConflictFilter) -> list[MeshConflict]:
        self.asked.append(which)
        return [CONFLICT]

    def ddl_log(self, name: str, limit: int) -> list[MeshDdl]:
        return [MeshDdl(origin_node="a", id=1, at="now", statement="ALTER TABLE t ADD c int")]

    def boundaries(self, name: str, table: str, chunk_rows: int) -> list[str]:
        return ["[100]"]

    def checksums(self, name: str, table: str, bounds: Sequence[str]) -> list[Chunk]:
        return [Chunk(rows=1, digest="d") for _ in range(len(bounds) + 1)]

    def table_checksum(self, dbname: str, table: str) -> Chunk:
        return Chunk(rows=0, digest="")


def client(mesh: FakeMesh) -> Any:
    with warnings.catch_warnings():
        # Starlette warns that its test client wants httpx2; httpx is what is installed.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    app = secure(FastAPI(), lambda: operator_only("secret"))
    app.include_router(mesh_router(mesh))

    return TestClient(app)


AUTH = {"Authorization": "Bearer secret"}


def test_every_mesh_endpoint_needs_the_token() -> None:
    http = client(FakeMesh())
    for method, path in [("GET", "/mesh"), ("GET", "/mesh/shop"), ("DELETE", "/mesh/shop")]:
        assert http.request(method, path).status_code == 401
        assert http.request(method, path, headers={"Authorization": "Bearer no"}).status_code == 401


def test_start_keeps_the_spec_and_refuses_a_mismatched_name() -> None:
    mesh = FakeMesh()
    http = client(mesh)
    body = SPEC.model_dump(mode="json")
    assert http.put("/mesh/shop", json=body, headers=AUTH).json() == {"mesh": "shop"}
    assert mesh.started == [SPEC]
    wrong = http.put("/mesh/other", json=body, headers=AUTH)
    assert wrong.status_code == 409
    assert "the path names mesh other" in wrong.json()["error"]
    invalid = http.put("/mesh/shop", json=body | {"policy": "whatever"}, headers=AUTH)
    assert invalid.status_code == 422


def test_checksums_compute_boundaries_on_the_reference_node_only() -> None:
    http = client(FakeMesh())
    first = http.post("/mesh/shop/checksums", json={"table": "public.t"}, headers=AUTH).json()
    assert first["boundaries"] == ["[100]"]
    assert len(first["chunks"]) == 2
    given = http.post(
        "/mesh/shop/checksums", json={"table": "public.t", "boundaries": []}, headers=AUTH
    ).json()
    assert given == {"boundaries": [], "chunks": [{"rows": 1, "digest": "d"}]}


def test_reads_and_refusals() -> None:
    mesh = FakeMesh()
    http = client(mesh)
    assert http.get("/mesh/workers", headers=AUTH).json()[0]["state"] == "running"
    found = http.get("/mesh/shop/conflicts?limit=7", headers=AUTH).json()
    assert [MeshConflict.model_validate(c) for c in found] == [CONFLICT]
    http.get("/mesh/shop/conflicts?table=public.t&resolution=skip", headers=AUTH)
    assert mesh.asked == [
        ConflictFilter(limit=7),
        ConflictFilter(table="public.t", resolution=Resolution.SKIP),
    ]
    for bad in ("kind=no_such_kind", "resolution=maybe", "limit=0", "limit=10001"):
        refused = http.get(f"/mesh/shop/conflicts?{bad}", headers=AUTH)
        assert refused.status_code == 422, bad
        assert set(refused.json()) == {"error", "hint"}, bad
    gone = http.delete("/mesh/nope", headers=AUTH)
    assert gone.status_code == 409
    assert gone.json()["hint"] == "see mesh status"
    assert http.get("/mesh/shop/ddl", headers=AUTH).json()[0]["id"] == 1
    facts = http.post("/mesh/inspect", json={"dbname": "db", "tables": ["public.t"]}, headers=AUTH)
    assert facts.json()["tables"] == {"public.t": None}


def test_a_join_prepares_with_a_plan_copies_and_sets_where_streams_start() -> None:
    mesh = FakeMesh()
    http = client(mesh)
    spec = SPEC.model_dump(mode="json")
    plan = {"newcomers": ["b"], "copies": {"b": ["a"]}, "reference": "a"}
    prepared = http.post("/mesh/shop/prepare", json={"spec": spec, "plan": plan}, headers=AUTH)
    assert prepared.json() == {"created": ["publication pgherd_shop"]}
    bad_plan = http.post(
        "/mesh/shop/prepare", json={"spec": spec, "plan": {"copies": {}}}, headers=AUTH
    )
    assert bad_plan.status_code == 422
    copy = http.post("/mesh/shop/copy", json={"spec": spec, "sources": ["a"]}, headers=AUTH)
    assert copy.json()["state"] == "copying"
    no_source = http.post("/mesh/shop/copy", json={"spec": spec, "sources": []}, headers=AUTH)
    assert no_source.status_code == 422
    assert http.get("/mesh/shop/copy", headers=AUTH).json()["commit_lsn"] == "0/10"
    body = {"spec": spec, "source": "b", "lsn": "0/10"}
    assert http.post("/mesh/shop/progress", json=body, headers=AUTH).json() == {"mesh": "shop"}
    assert mesh.progress == [("b", "0/10")]
    abandoned = http.post("/mesh/shop/abandon", json={"spec": spec, "nodes": ["b"]}, headers=AUTH)
    assert abandoned.json() == {"dropped": ["slot pgherd_shop_b"]}


def test_ranges_and_keys_before_a_mesh_exists() -> None:
    http = client(FakeMesh())
    ranges = http.post("/mesh/ranges", json={"dbname": "db", "table": "public.t"}, headers=AUTH)
    assert ranges.json()["boundaries"] == ["[5]"]
    keys = http.post("/mesh/keys", json={"dbname": "db", "table": "public.t"}, headers=AUTH)
    assert keys.json() == {"rows": [["[1]", "x"]]}
