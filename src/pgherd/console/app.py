"""The console's FastAPI application: login, security headers, and the page and action
routers (``pages.py``, ``posts.py``) over the state they share (``context.py``)."""

from __future__ import annotations

import math
import secrets
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from pgherd.config import ClusterConfig
from pgherd.console import pages, posts, security, sessions, state
from pgherd.console.context import Console, templates
from pgherd.console.forms import Form
from pgherd.console.jobs import Jobs
from pgherd.console.sessions import COOKIE, LOGIN_COOKIE, Sessions
from pgherd.errors import PgherdError, UnknownNode
from pgherd.model.events import Outcome

HERE = Path(__file__).parent


def create_app(
    config: ClusterConfig, token: str, https: bool = False, sessions_file: Path | None = None
) -> FastAPI:
    """``sessions_file``: keep sessions there, so that they survive a restart (the
    console's server passes the config's; tests keep them in memory)."""
    app = FastAPI(title="pgherd console", docs_url=None, redoc_url=None, openapi_url=None)
    console = Console(
        config=config,
        token=token,
        sessions=Sessions(config.console.session_minutes, sessions_file),
        cache=state.StateCache(lambda: state.read(config, token)),
        jobs=Jobs(lambda user, job: console.operation(user, job)),
        templates=templates(),
        https=https,
    )
    app.state.console = console

    @app.exception_handler(security.Denied)
    async def _denied(request: Request, exc: security.Denied) -> Response:
        return security.denied_response(request, exc)

    @app.exception_handler(PgherdError)
    async def _error(request: Request, exc: PgherdError) -> Response:
        # e.g. /node/NAME for a node the config does not list: the CLI's one-line error
        status = 404 if isinstance(exc, UnknownNode) else 409
        return security.denied_response(request, security.Denied(status, exc.one_line()))

    @app.middleware("http")
    async def _headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        for key, value in security.SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        if https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.get("/login", response_class=HTMLResponse)
    def login_page(request: Request, next: str = "/", failed: str = "") -> Response:
        csrf = secrets.token_urlsafe(24)
        response = console.render(
            request, "login.html", None, csrf=csrf, next=security.safe_next(next), failed=failed
        )
        _set_cookie(response, LOGIN_COOKIE, csrf, https, max_age=3600)
        return response

    @app.post("/login")
    async def login(request: Request) -> Response:
        form = Form.parse(await request.body())
        expected = request.cookies.get(LOGIN_COOKIE)
        given = form.get(security.CSRF_FIELD)
        if not expected or not given or not secrets.compare_digest(expected, given):
            raise security.Denied(403, "the login form's CSRF token is missing or wrong")
        target = security.safe_next(form.get("next"))
        user, address = form.get("user"), request.client.host if request.client else "?"
        wait = console.failures.wait(user, address)
        response: Response
        if wait > 0:  # the password is not even checked (nor its scrypt paid for)
            console.audit("login", user, address, Outcome.REFUSED, "throttled")
            response = console.render(
                request,
                "login.html",
                None,
                csrf=expected,
                next=target,
                failed=f"too many failed logins: try again in {math.ceil(wait)} s",
            )
            response.status_code = 429
            response.headers["Retry-After"] = str(math.ceil(wait))
            return response
        found = await run_in_threadpool(
            sessions.authenticate, config, token, user, form.get("password")
        )
        if found is None:
            console.failures.failed(user, address)
            console.audit("login", user, address, Outcome.REFUSED, "wrong user name or password")
            response = console.render(
                request,
                "login.html",
                None,
                csrf=expected,
                next=target,
                failed="wrong user name or password",
            )
            response.status_code = 401
            return response
        console.failures.succeeded(user, address)
        console.audit("login", found[0], address, Outcome.SUCCEEDED, f"as {found[1]}")
        session = console.sessions.open(*found)
        response = RedirectResponse(target, status_code=303)
        _set_cookie(response, COOKIE, session.id, https, max_age=console.sessions.seconds)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session, _ = await security.checked_post(request)
        console.sessions.close(session.id)
        address = request.client.host if request.client else "?"
        console.audit("logout", session.user, address, Outcome.SUCCEEDED, "logged out")
        response: Response = RedirectResponse("/login", status_code=303)
        if request.headers.get("hx-request"):
            response = Response(status_code=204, headers={"HX-Redirect": "/login"})
        response.delete_cookie(COOKIE, path="/")
        return response

    app.mount("/static", StaticFiles(directory=str(HERE / "static")), name="static")
    app.include_router(pages.router())
    app.include_router(posts.router())
    return app


def _set_cookie(response: Response, name: str, value: str, https: bool, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=https,
    )
