"""Who may see and do what: every page and API call needs a session; every POST needs
the session's CSRF token; acting needs the operator role.

Refusals: a page without a session redirects to the login page (an htmx request gets
``HX-Redirect`` instead, so the whole page goes there, not a fragment); ``/api/…`` answers
401; a POST without the right CSRF token answers 403, and so does a viewer's action.
"""

from __future__ import annotations

from urllib.parse import quote

from fastapi import Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from pgherd.console.forms import Form
from pgherd.console.sessions import COOKIE, Session, Sessions

CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf"


class Denied(Exception):
    """Raised by the checks below; turned into a response by :func:`denied_response`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def session_of(request: Request) -> Session:
    sessions: Sessions = request.app.state.console.sessions
    session = sessions.get(request.cookies.get(COOKIE))
    if session is None:
        raise Denied(401, "log in first")
    return session


async def checked_post(request: Request) -> tuple[Session, Form]:
    """The session and the form of a POST that carries the session's CSRF token."""
    session = session_of(request)
    form = Form.parse(await request.body())
    given = request.headers.get(CSRF_HEADER) or form.get(CSRF_FIELD) or None
    if not session.csrf_ok(given):
        raise Denied(403, "the form's CSRF token is missing or wrong: reload the page")
    return session, form


async def operator_post(request: Request) -> tuple[Session, Form]:
    session, form = await checked_post(request)
    if not session.can_act:
        raise Denied(403, f"{session.user} is a viewer: only an operator can act")
    return session, form


def denied_response(request: Request, exc: Denied) -> Response:
    path = request.url.path
    if exc.status == 401 and not path.startswith("/api/"):
        target = f"/login?next={quote(path)}" if request.method == "GET" else "/login"
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method == "GET":
            return RedirectResponse(target, status_code=303)
    if request.headers.get("hx-request") and exc.status == 403:
        # htmx swaps nothing on a 4xx by default: the page's script shows the text.
        return Response(exc.message, status_code=403, media_type="text/plain")
    return JSONResponse({"error": exc.message}, status_code=exc.status)


def safe_next(target: str | None) -> str:
    """Only a path of this site (no scheme, no ``//host``) may follow a login."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "form-action 'self'; base-uri 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
