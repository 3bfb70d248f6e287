"""The console's pages (GET): each page is a frame, its live parts are fragments that
htmx re-fetches (``hx-trigger="every Ns"``) and swaps in place: no page reloads."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from pgherd.console import topology, views
from pgherd.console.context import Console
from pgherd.console.plans import ActionKind
from pgherd.console.security import Denied, session_of
from pgherd.console.sessions import Session
from pgherd.model import cluster as cluster_model
from pgherd.model.conflict import ConflictKind, Resolution
from pgherd.model.history import SampleKind
from pgherd.model.status import Role

SessionDep = Annotated[Session, Depends(session_of)]
REFRESH = {"overview": 2, "node": 3, "logical": 5, "events": 5, "mesh": 5, "banner": 15}


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def router() -> APIRouter:
    api = APIRouter()

    # ---- overview ------------------------------------------------------------------------

    @api.get("/", response_class=HTMLResponse)
    def overview(request: Request, session: SessionDep) -> Response:
        console = _console(request)
        return console.render(
            request,
            "overview.html",
            session,
            page="overview",
            refresh=REFRESH,
            **_overview(console),
        )

    @api.get("/fragments/overview", response_class=HTMLResponse)
    def overview_fragment(request: Request, session: SessionDep) -> Response:
        console = _console(request)
        return console.render(request, "_overview.html", session, **_overview(console))

    @api.get("/fragments/banner", response_class=HTMLResponse)
    def banner(request: Request, session: SessionDep) -> Response:
        console = _console(request)
        return console.render(
            request, "_banner.html", session, findings=views.findings(console.config)
        )

    # ---- node ----------------------------------------------------------------------------

    @api.get("/node/{name}", response_class=HTMLResponse)
    def node(request: Request, name: str, session: SessionDep) -> Response:
        console = _console(request)
        console.config.node(name)
        return console.render(
            request,
            "node.html",
            session,
            page="node",
            name=name,
            refresh=REFRESH,
            **_node(console, name),
        )

    @api.get("/fragments/node/{name}", response_class=HTMLResponse)
    def node_fragment(request: Request, name: str, session: SessionDep) -> Response:
        console = _console(request)
        console.config.node(name)
        return console.render(request, "_node.html", session, name=name, **_node(console, name))

    # ---- logical replication -------------------------------------------------------------

    @api.get("/logical", response_class=HTMLResponse)
    def logical(request: Request, session: SessionDep, db: str = "postgres") -> Response:
        console = _console(request)
        current = console.cache.get()
        return console.render(
            request,
            "logical.html",
            session,
            page="logical",
            db=db,
            refresh=REFRESH,
            tree=views.logical_tree(current, db),
            state=current,
            primaries=views.writable_nodes(current),
        )

    @api.get("/fragments/logical", response_class=HTMLResponse)
    def logical_fragment(request: Request, session: SessionDep, db: str = "postgres") -> Response:
        console = _console(request)
        current = console.cache.get()
        return console.render(
            request, "_logical.html", session, db=db, tree=views.logical_tree(current, db)
        )

    @api.get("/fragments/tables", response_class=HTMLResponse)
    def tables(
        request: Request, session: SessionDep, node: str = "", db: str = "postgres"
    ) -> Response:
        console = _console(request)
        found, error = [], None
        if node:
            try:
                found = views.tables(console.config, node, db)
            except Exception as exc:  # shown in the form, not a 500
                error = str(getattr(exc, "message", exc))
        return console.render(request, "_tables.html", session, tables=found, error=error)

    # ---- mesh -----------------------------------------------------------------------------

    @api.get("/mesh", response_class=HTMLResponse)
    def mesh(
        request: Request,
        session: SessionDep,
        name: str = "",
        table: str = "",
        kind: str = "",
        resolution: str = "",
    ) -> Response:
        """A mesh's pairs and its conflict log, filtered by table and by how the policy
        resolved them (the filter form re-fetches the fragment)."""
        console = _console(request)
        page = views.mesh_page(console.config, console.token, name, table, kind, resolution)
        template = "_mesh.html" if request.headers.get("hx-request") else "mesh.html"
        return console.render(
            request,
            template,
            session,
            page="mesh",
            mesh=page,
            table=table,
            kind=kind,
            resolution=resolution,
            kinds=[k.value for k in ConflictKind],
            resolutions=[r.value for r in Resolution if r is not Resolution.APPLY],
            refresh=REFRESH,
        )

    # ---- archive, events -----------------------------------------------------------------

    @api.get("/archive", response_class=HTMLResponse)
    def archive(request: Request, session: SessionDep) -> Response:
        console = _console(request)
        return console.render(
            request, "archive.html", session, page="archive", **views.archive_page(console.config)
        )

    @api.get("/events", response_class=HTMLResponse)
    def events(
        request: Request,
        session: SessionDep,
        operation: str = "",
        node: str = "",
        outcome: str = "",
    ) -> Response:
        console = _console(request)
        found, error = views.events(
            console.config, console.token, operation=operation, node=node, outcome=outcome
        )
        template = "_events.html" if request.headers.get("hx-request") else "events.html"
        return console.render(
            request,
            template,
            session,
            page="events",
            events=found,
            error=error,
            operations=views.event_kinds(found),
            operation=operation,
            node=node,
            outcome=outcome,
            refresh=REFRESH,
        )

    # ---- actions ---------------------------------------------------------------------------

    @api.get("/actions", response_class=HTMLResponse)
    def actions(request: Request, session: SessionDep, kind: str = "", node: str = "") -> Response:
        console = _console(request)
        current = console.cache.get()
        return console.render(
            request,
            "actions.html",
            session,
            page="actions",
            state=current,
            kinds=list(ActionKind),
            chosen_kind=kind,
            chosen_node=node,
            jobs=console.jobs.recent()[:10],
        )

    @api.get("/fragments/job/{job_id}", response_class=HTMLResponse)
    def job(request: Request, job_id: str, session: SessionDep) -> Response:
        console = _console(request)
        found = console.jobs.get(job_id)
        if found is None:
            raise Denied(404, "no such action")
        return console.render(request, "_job.html", session, job=found)

    # ---- JSON ------------------------------------------------------------------------------

    @api.get("/api/state")
    def api_state(request: Request, session: SessionDep) -> JSONResponse:
        console = _console(request)
        current = console.cache.get()
        body = cluster_model.view_json(console.config.cluster, current.view)
        body["leader"] = current.leader.name if current.leader else None
        body["paused"] = current.leader.paused if current.leader else None
        body["maintenance"] = current.leader.maintenance if current.leader else False
        body["subscriptions"] = [
            {"node": s.node, "name": s.info.name, "source": s.source, "lag_bytes": s.lag_bytes}
            for s in current.subscriptions
        ]
        return JSONResponse(body)

    @api.get("/api/history")
    def api_history(
        request: Request,
        session: SessionDep,
        subject: str,
        kind: SampleKind = SampleKind.STANDBY,
        minutes: float = 60,
    ) -> JSONResponse:
        console = _console(request)
        return JSONResponse(views.lag_series(console.config, kind, subject, min(minutes, 24 * 60)))

    return api


def _overview(console: Console) -> dict[str, Any]:
    current = console.cache.get()
    return {
        "state": current,
        "picture": topology.layout(current),
        "running_job": console.jobs.running(),
    }


def _node(console: Console, name: str) -> dict[str, Any]:
    current = console.cache.get()
    status = current.status(name)
    row = next(r for r in current.view.rows if r.name == name)
    found, error = views.events(console.config, console.token, limit=200, node=name)
    return {
        "status": status,
        "row": row,
        "facts": views.facts(console.config.node(name)),
        "events": found[:10],
        "events_error": error,
        "is_standby": status.role is Role.STANDBY,
        "subscriptions": [s for s in current.subscriptions if s.node == name],
        "node_config": console.config.node(name),
    }
