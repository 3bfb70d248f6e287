"""The agent's HTTP API.

Reading (``/health``, ``/status``) is open; acting (``POST /postgres/...``) needs the
cluster's bearer token. Errors come back as ``{"error": ..., "hint": ...}`` with 409 for a
refusal and 500 for a failure, so the CLI can print them as it prints its own.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from typing import Annotated, Literal, Protocol

from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

from pgherd.errors import PgherdError, Refused
from pgherd.model.doctor import NodeFacts
from pgherd.model.status import NodeStatus, PgState


class AgentPort(Protocol):
    """What the API needs from an agent (a fake implements it in unit tests)."""

    token: str

    def status(self) -> NodeStatus: ...

    def facts(self) -> NodeFacts: ...

    def start_postgres(self) -> None: ...

    def stop_postgres(self, mode: str) -> None: ...

    def restart_postgres(self) -> None: ...


Lifespan = Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]


def create_app(agent: AgentPort, lifespan: Lifespan | None = None) -> FastAPI:
    app = FastAPI(title="pgherd agent", version="1", lifespan=lifespan)

    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given, agent.token):
            raise HTTPException(
                status_code=401,
                detail={"error": "missing or wrong API token", "hint": "send the cluster's token"},
                headers={"WWW-Authenticate": "Bearer"},
            )

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

    authorized = [Depends(require_token)]

    @app.post("/postgres/start", dependencies=authorized)
    def start() -> NodeStatus:
        agent.start_postgres()
        return agent.status()

    @app.post("/postgres/stop", dependencies=authorized)
    def stop(mode: Literal["smart", "fast", "immediate"] = "fast") -> NodeStatus:
        agent.stop_postgres(mode)
        return agent.status()

    @app.post("/postgres/restart", dependencies=authorized)
    def restart() -> NodeStatus:
        agent.restart_postgres()
        return agent.status()

    return app
