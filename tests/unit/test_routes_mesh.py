"""The agent's /mesh endpoints: token required, bodies validated, errors as JSON."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI

from pgherd.api.app import secure
from pgherd.api.credentials import operator_only
from pgherd.api.routes_mesh import mesh_router
from pgherd.errors import Refused
from pgherd.model.mesh import Chunk, MeshNodeReport, MeshSpec, MeshWorkerRow, NodeFacts

SPEC = MeshSpec(name="shop", nodes=("a", "b"), tables=("public.t",))


class FakeMesh:
    """Remembers what it was asked; answers like a member node."""

    def __init__(self) -> None:
        self.started: list[MeshSpec] = []

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

    def prepare(self, spec: MeshSpec) -> list[str]:
        return [f"publication pgherd_{spec.name}"]

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

    def conflicts(self, name: str, limit: int) -> list[dict[str, Any]]:
        return [{"kind": "insert_exists", "limit": limit}]

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
    http = client(FakeMesh())
    assert http.get("/mesh/workers", headers=AUTH).json()[0]["state"] == "running"
    assert http.get("/mesh/shop/conflicts?limit=7", headers=AUTH).json() == [
        {"kind": "insert_exists", "limit": 7}
    ]
    gone = http.delete("/mesh/nope", headers=AUTH)
    assert gone.status_code == 409
    assert gone.json()["hint"] == "see mesh status"
    facts = http.post("/mesh/inspect", json={"dbname": "db", "tables": ["public.t"]}, headers=AUTH)
    assert facts.json()["tables"] == {"public.t": None}
