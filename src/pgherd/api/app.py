"""The agent's HTTP API.

Reading (``/health``, ``/status``) is open; acting (``POST /postgres/...``) needs the
cluster's bearer token. Errors come back as ``{"error": ..., "hint": ...}`` with 409 for a
refusal and 500 for a failure, so the CLI can print them as it prints its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

from pgherd import metrics
from pgherd.api import (
    routes_agent,
    routes_archive,
    routes_ha,
    routes_history,
    routes_logical,
    routes_metrics,
    routes_ops,
)
from pgherd.api.auth import authorized
from pgherd.api.routes_agent import ReloadPort
from pgherd.api.routes_archive import ArchivePort
from pgherd.api.routes_history import HistoryPort
from pgherd.api.routes_mesh import MeshPort, mesh_router
from pgherd.api.routes_ops import OperationsPort
from pgherd.errors import PgherdError, Refused
from pgherd.model.doctor import NodeFacts
from pgherd.model.status import NodeStatus, PgState
from pgherd.pg.local_node import LocalNode


class AgentPort(Protocol):
    """What the API needs from an agent (a fake implements it in unit tests)."""

    token: str

    def status(self) -> NodeStatus: ...

    def facts(self) -> NodeFacts: ...

    def start_postgres(self) -> None: ...

    def stop_postgres(self, mode: str) -> None: ...

    def restart_postgres(self) -> None: ...


Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def create_app(
    agent: AgentPort, lifespan: Lifespan | None = None, mesh: MeshPort | None = None
) -> FastAPI:
    app = FastAPI(title="pgherd agent", version="1", lifespan=lifespan)
    if mesh is not None:
        app.include_router(mesh_router(mesh, agent.token))

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        # One error shape for every failure: {"error": ..., "hint": ...}.
        detail: object = exc.detail  # typed str, but our handlers raise it with a dict
        body = detail if isinstance(detail, dict) else {"error": str(detail), "hint": ""}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(PgherdError)
    async def _pgherd_error(_request: Request, exc: PgherdError) -> JSONResponse:
        status = 409 if isinstance(exc, Refused) else 500
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status)

    @app.get("/health")
    def health() -> JSONResponse:
        status = agent.status()
        body = {"state": status.state, "role": status.role}
        return JSONResponse(body, status_code=200 if status.state is PgState.RUNNING else 503)

    @app.get("/status")
    def get_status() -> NodeStatus:
        return agent.status()

    @app.get("/facts")
    def get_facts() -> NodeFacts:
        """Files and settings of the node, for ``pgherd doctor``."""
        return agent.facts()

    needs_token = authorized(agent.token)

    @app.post("/postgres/start", dependencies=needs_token)
    def start() -> NodeStatus:
        agent.start_postgres()
        return agent.status()

    @app.post("/postgres/stop", dependencies=needs_token)
    def stop(mode: Literal["smart", "fast", "immediate"] = "fast") -> NodeStatus:
        agent.stop_postgres(mode)
        return agent.status()

    @app.post("/postgres/restart", dependencies=needs_token)
    def restart() -> NodeStatus:
        agent.restart_postgres()
        return agent.status()

    return app


def agent_app(
    agent: AgentPort,
    lifespan: Lifespan | None,
    mesh: MeshPort | None,
    local: LocalNode,
    operations: OperationsPort,
    history: HistoryPort,
    history_interval: float,
    reloader: ReloadPort,
    checks: routes_ha.HaPort,
    metrics_sources: Sequence[metrics.Collector],
    archive: ArchivePort | None = None,
) -> FastAPI:
    """Every route an agent serves, each area's router over its port. The one place
    that lists them: the agent serves this, and tests/unit/test_clients_match_routes.py
    checks the clients against it."""
    app = create_app(agent, lifespan, mesh=mesh)
    app.include_router(routes_logical.router(local, agent.token))
    app.include_router(routes_ops.ops_router(operations, agent.token))
    app.include_router(routes_archive.router(lambda: local.instance, agent.token, archive))
    app.include_router(routes_history.router(history, history_interval, agent.token))
    app.include_router(routes_ha.router(checks, agent.token))
    app.include_router(routes_agent.router(reloader, agent.token))
    app.include_router(
        routes_metrics.router(metrics_sources, local.config.cluster, local.node.name)
    )
    return app
