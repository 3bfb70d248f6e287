"""The console's actions (POST): every one needs a session, its CSRF token and the
operator role (``security.operator_post``), and answers with a fragment for htmx.

An action from the Actions page is a preview first (the checks and the plan, nothing
changed), then, once the operator confirms, a background job whose steps the page shows
as they finish. The forms build the CLI's requests with the CLI's rules (``forms.py``).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from pgherd.archive import restore_points
from pgherd.clients.logical import LogicalClient
from pgherd.console import forms, plans
from pgherd.console.context import Console
from pgherd.console.forms import Form
from pgherd.console.plans import ActionKind, ActionRequest
from pgherd.console.security import operator_post
from pgherd.errors import InvalidInput, PgherdError
from pgherd.logical import loops


def _console(request: Request) -> Console:
    console: Console = request.app.state.console
    return console


def action_request(console: Console, form: Form) -> ActionRequest:
    try:
        kind = ActionKind(form.get("kind"))
    except ValueError:
        raise InvalidInput(
            f"unknown action {form.get('kind')!r}", f"choose one of {', '.join(ActionKind)}"
        ) from None
    node = form.get("node")
    console.config.node(node)
    upstream = form.get("upstream") or None
    if upstream is not None:
        console.config.node(upstream)
    return ActionRequest(
        kind=kind,
        node=node,
        upstream=upstream if kind is ActionKind.FOLLOW else None,
        siblings_follow=form.flag("siblings_follow") and kind is ActionKind.SWITCHOVER,
    )


def router() -> APIRouter:
    api = APIRouter()

    def result(
        request: Request, ok: bool, message: str, status: int = 200, **more: object
    ) -> Response:
        console = _console(request)
        response = console.render(request, "_result.html", None, ok=ok, message=message, **more)
        response.status_code = status
        if ok:  # the live parts re-read now instead of at their next tick
            response.headers["HX-Trigger"] = "refresh-logical"
        return response

    @api.post("/actions/preview", response_class=HTMLResponse)
    async def preview(request: Request) -> Response:
        session, form = await operator_post(request)
        console = _console(request)
        try:
            wanted = action_request(console, form)
        except PgherdError as exc:
            return result(request, False, exc.one_line())
        op = console.operation(session.user)
        found = await run_in_threadpool(plans.preview, op, wanted)
        return console.render(request, "_preview.html", session, preview=found, form=form)

    @api.post("/actions/run", response_class=HTMLResponse)
    async def run(request: Request) -> Response:
        session, form = await operator_post(request)
        console = _console(request)
        try:
            wanted = action_request(console, form)
            job = console.jobs.start(wanted, session.user)
        except PgherdError as exc:
            return result(request, False, exc.one_line())
        console.cache.get(fresh=True)
        return console.render(request, "_job.html", session, job=job)

    @api.post("/logical/publications", response_class=HTMLResponse)
    async def create_publication(request: Request) -> Response:
        _, form = await operator_post(request)
        console = _console(request)
        try:
            node, spec = forms.publication(form)
            client = LogicalClient(console.config.node(node), console.token)
            made = await run_in_threadpool(client.create_publication, spec)
        except PgherdError as exc:
            return result(request, False, exc.one_line())
        info = made.publication
        return result(
            request,
            True,
            f"created publication {info.name!r} on {node} (database {info.dbname!r}): "
            f"{len(info.tables)} tables, publish {','.join(info.publish)}",
            warnings=list(made.warnings),
        )

    @api.post("/logical/subscriptions", response_class=HTMLResponse)
    async def create_subscription(request: Request) -> Response:
        _, form = await operator_post(request)
        console = _console(request)
        try:
            node, spec = forms.subscription(console.config, form)
            await run_in_threadpool(loops.refuse_loops, console.config, console.token, node, spec)
            client = LogicalClient(console.config.node(node), console.token)
            info = await run_in_threadpool(client.create_subscription, spec)
        except PgherdError as exc:
            return result(request, False, exc.one_line())
        return result(
            request,
            True,
            f"created subscription {info.name!r} on {node}: {', '.join(info.publications)} "
            f"from {info.host}:{info.port}/{info.source_dbname}, slot {info.slot_name}",
        )

    @api.post("/archive/restore-points", response_class=HTMLResponse)
    async def restore_point(request: Request) -> Response:
        _, form = await operator_post(request)
        console = _console(request)
        try:
            where, made = await run_in_threadpool(
                restore_points.create, console.config, form.get("name"), console.token
            )
        except PgherdError as exc:
            return result(request, False, exc.one_line())
        return result(
            request,
            True,
            f"restore point {made.name!r} at {made.lsn} on timeline {made.timeline} ({where})",
        )

    return api
