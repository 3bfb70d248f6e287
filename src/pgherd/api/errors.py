"""Every error the agent API answers has one shape, ``{"error": ..., "hint": ...}``, and
none repeats what the caller sent: a 10 MB body, a token or a password typed into the
wrong field must not come back in a response or go into a log.

Status codes: 400 a body that is not JSON; 401/403 the credential (api/guard.py); 409 a
refusal (nothing changed); 413 too large; 422 input that is well-formed but wrong (a
field out of range, an unknown field, an unknown node); 500 a failure on the server's
side (PostgreSQL, a program), with its reason; a bug answers 500 "internal error" and
leaves its traceback in the agent's log only.
"""

from __future__ import annotations

import logging
import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException  # FastAPI's and the router's (404, 405)

from pgherd.errors import InvalidInput, PgherdError, Refused, UnknownNode

log = logging.getLogger("pgherd.api")

# A field name is shown back only when it looks like one: an unknown field's name is
# input too, and may be anything.
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,39}$")


def status_of(exc: PgherdError) -> int:
    if isinstance(exc, Refused):
        return 409
    if isinstance(exc, InvalidInput | UnknownNode):
        return 422
    return 500


def describe(exc: RequestValidationError) -> str:
    """The first problem as ``where: what``, without the value that was sent."""
    errors = exc.errors()
    if not errors:
        return "the request is not valid"
    first = errors[0]
    if first.get("type") == "json_invalid":
        return "the body is not valid JSON"
    where = ".".join(_part(p) for p in first.get("loc", ()) if p != "body") or "the body"
    message = str(first.get("msg", "is not valid")).removeprefix("Value error, ")
    more = len(errors) - 1
    text = f"{where}: {message[:200]}"
    return text + (f" (and {more} more)" if more else "")


def _part(part: object) -> str:
    if isinstance(part, int):
        return str(part)
    text = str(part)
    return text if _FIELD.match(text) else "<field>"


HINT_400 = "send a JSON body encoded as UTF-8"


def install(app: FastAPI) -> None:
    """The exception handlers that give every error the one shape."""

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        detail: object = exc.detail  # typed str, but our handlers raise it with a dict
        if isinstance(detail, dict):
            body = {"error": str(detail.get("error", "")), "hint": str(detail.get("hint", ""))}
        else:
            hint = HINT_400 if exc.status_code == 400 else ""
            body = {"error": str(detail), "hint": hint}
        return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        bad_json = any(e.get("type") == "json_invalid" for e in exc.errors()[:1])
        status = 400 if bad_json else 422
        hint = HINT_400 if bad_json else "see the API's schema: GET /openapi.json"
        return JSONResponse({"error": describe(exc), "hint": hint}, status_code=status)

    @app.exception_handler(PgherdError)
    async def _pgherd_error(_request: Request, exc: PgherdError) -> JSONResponse:
        return JSONResponse({"error": exc.message, "hint": exc.hint}, status_code=status_of(exc))

    @app.exception_handler(Exception)
    async def _bug(request: Request, exc: Exception) -> JSONResponse:
        # Starlette re-raises it after this answer, and the server logs the traceback.
        log.error(
            "internal error on %s %s: %s", request.method, request.url.path, type(exc).__name__
        )
        return JSONResponse(
            {"error": "internal error in the agent", "hint": "see the agent's log"},
            status_code=500,
        )
