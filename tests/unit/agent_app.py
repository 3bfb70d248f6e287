"""The whole agent API as ``pgherd agent run`` assembles it, with fakes behind the ports.

For the hostile-input tests and the schemathesis run: every route is there, guarded and
with the one error shape. The logical-replication and archive routes talk to PostgreSQL
directly (no port); here they get a node whose server is not running, so that a request
that passes validation ends in the agent's own "cannot connect" error, never in a crash.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI

from pgherd.api import routes_archive, routes_ha, routes_history, routes_logical, routes_ops
from pgherd.api.app import create_app
from pgherd.api.audit import Sink
from pgherd.errors import QueryFailed, UnknownNode
from pgherd.ha.history_store import HistoryStore
from pgherd.model.access import Grant, Grants, Role, digest
from pgherd.pg.instance import Instance
from pgherd.pg.local_node import LocalNode
from tests.unit.fake_agent import TOKEN, FakeAgent
from tests.unit.test_ops_api import FakeOperations
from tests.unit.test_routes_mesh import FakeMesh
from tests.unit.test_serving import PRIMARY, FakeHa

VIEWER = "v1ewer-t0ken"
PEER = "n0de2-peer-t0ken"
EXPIRED = "0ld-rotated-t0ken"
NODES = ("node1", "node2", "node3")

GRANTS = Grants.of(
    [
        Grant("operator", Role.OPERATOR, digest(TOKEN)),
        Grant("viewer", Role.VIEWER, digest(VIEWER)),
        Grant("node2", Role.PEER, digest(PEER)),
        Grant("operator", Role.OPERATOR, digest(EXPIRED), not_after=time.time() - 60),
    ]
)


class KnownNodesOperations(FakeOperations):
    """Refuses an upstream or a rewind source that the cluster does not list, as the
    agent's own operations do (pgherd.yaml is read there)."""

    def follow(self, upstream: str, start: bool) -> None:
        if upstream not in NODES:
            raise UnknownNode(upstream, list(NODES))
        super().follow(upstream, start)

    def rewind(self, source: str, timeout: float) -> Any:
        if source not in NODES:
            raise UnknownNode(source, list(NODES))
        return super().rewind(source, timeout)


class ServerDown:
    """Stands for a LocalNode or an Instance whose PostgreSQL is not running."""

    def __getattr__(self, name: str) -> Any:
        raise QueryFailed("cannot connect to PostgreSQL: it is not running", "start it")


def full_app(home: Path, auth_reads: bool = False, audit: Sink | None = None) -> FastAPI:
    agent = FakeAgent()
    app = create_app(
        agent,
        mesh=FakeMesh(),
        grants=lambda: GRANTS,
        auth_reads=auth_reads,
        audit=audit,
        node="node1",
    )
    down = ServerDown()
    app.include_router(routes_logical.router(cast(LocalNode, down)))
    app.include_router(routes_ops.ops_router(KnownNodesOperations()))
    app.include_router(routes_archive.router(lambda: cast(Instance, down)))
    app.include_router(routes_history.router(HistoryStore(home / "history.sqlite", "node1"), 5))
    app.include_router(routes_ha.router(FakeHa(PRIMARY)))
    return app
