"""The agent's HTTP API.

Reading (``/health``, ``/status``) is open unless ``api.auth_reads``; acting (``POST
/postgres/...``) needs an operator's or a peer's credential, checked by api/guard.py before
the body is read. Errors come back as ``{"error": ..., "hint": ...}`` (api/errors.py), so
the CLI can print them as it prints its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from pgherd import metrics
from pgherd.api import (
    errors,
    routes_agent,
    routes_archive,
    routes_ha,
    routes_history,
    routes_logical,
    routes_metrics,
    routes_ops,
)
from pgherd.api.audit import Audit, Sink
from pgherd.api.auth import authorized
from pgherd.api.credentials import operator_only
from pgherd.api.guard import MAX_BODY, Guard
from pgherd.api.routes_agent import ReloadPort
from pgherd.api.routes_archive import ArchivePort
from pgherd.api.routes_history import HistoryPort
from pgherd.api.routes_mesh import MeshPort, mesh_router
from pgherd.api.routes_ops import OperationsPort
from pgherd.clients.credential import Credential, token_of
from pgherd.model.access import Grants
from pgherd.model.doctor import NodeFacts
from pgherd.model.status import NodeStatus, PgState
from pgherd.pg.local_node import LocalNode


class AgentPort(Protocol):
    """What the API needs from an agent (a fake implements it in unit tests)."""

    @property
    def token(self) -> Credential:
        """The agent's own credential, for its calls to other agents."""

    def status(self) -> NodeStatus: ...

    def facts(self) -> NodeFacts: ...

    def start_postgres(self) -> None: ...

    def stop_postgres(self, mode: str) -> None: ...

    def restart_postgres(self) -> None: ...


Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def secure(
    app: FastAPI,
    grants: Callable[[], Grants],
    auth_reads: bool = False,
    max_body: int = MAX_BODY,
    bind_peers: bool = False,
) -> FastAPI:
    """The guard (credentials and body size, before the body is read) and the one error
    shape, on ``app``: every app that serves agent routes has both. ``bind_peers``: a
    node's credential only with that node's client certificate (``tls.client_certs``)."""
    app.add_middleware(
        Guard, grants=grants, auth_reads=auth_reads, max_body=max_body, bind_peers=bind_peers
    )
    errors.install(app)
    return app


def create_app(
    agent: AgentPort,
    lifespan: Lifespan | None = None,
    mesh: MeshPort | None = None,
    grants: Callable[[], Grants] | None = None,
    auth_reads: bool = False,
    max_body: int = MAX_BODY,
    audit: Sink | None = None,
    node: str = "",
    bind_peers: bool = False,
) -> FastAPI:
    """``grants``: the credentials accepted, asked for on every request (so that a
    rotation takes effect without a restart); by default the agent's token, as operator.
    ``audit``: where the record of every acting call goes (api/audit.py), for ``node``."""
    app = FastAPI(title="pgherd agent", version="1", lifespan=lifespan)
    fixed = operator_only(token_of(agent.token) or "")
    secure(app, grants or (lambda: fixed), auth_reads, max_body, bind_peers)
    if audit is not None:  # added last: the outermost, so the guard's refusals are seen
        app.add_middleware(Audit, node=node, sink=audit)
    if mesh is not None:
        app.include_router(mesh_router(mesh))

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

    needs_token = authorized()

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
    grants: Callable[[], Grants] | None = None,
    auth_reads: bool = False,
    audit: Sink | None = None,
    bind_peers: bool = False,
) -> FastAPI:
    """Every route an agent serves, each area's router over its port. The one place
    that lists them: the agent serves this, and tests/unit/test_clients_match_routes.py
    checks the clients against it."""
    app = create_app(
        agent,
        lifespan,
        mesh=mesh,
        grants=grants,
        auth_reads=auth_reads,
        audit=audit,
        node=local.node.name,
        bind_peers=bind_peers,
    )
    app.include_router(routes_logical.router(local))
    app.include_router(routes_ops.ops_router(operations))
    app.include_router(routes_archive.router(lambda: local.instance, archive))
    app.include_router(routes_history.router(history, history_interval))
    app.include_router(routes_ha.router(checks))
    app.include_router(routes_agent.router(reloader))
    app.include_router(
        routes_metrics.router(metrics_sources, local.config.cluster, local.node.name)
    )
    return app
