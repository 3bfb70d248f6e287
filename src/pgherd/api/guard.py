"""The agent API's front door: who is calling, and how much they may send, decided before
a byte of the body is read.

FastAPI reads and parses a request's body before it runs a route's dependencies, so a
token checked there comes too late: a 10 MB body without a token was read, parsed and
answered with a 422 that echoed it. This ASGI middleware runs first:

1. it finds the credential (``Authorization: Bearer …``) among the agent's grants; a
   wrong, expired or malformed one is 401, whatever the route;
2. with ``tls.client_certs`` (``bind_peers``), it refuses a node's credential that did
   not come with that node's client certificate (401: model/access.py);
3. it refuses a request whose route needs more than the caller has (401 without a
   credential, 403 with one too weak: a viewer acting);
4. it refuses a body larger than ``max_body`` (413): at once when ``Content-Length``
   says so, else as soon as the bytes received pass it.

The caller's grant is left in ``request.state.principal`` for the routes (the audit log).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgherd.model.access import (
    Access,
    Grant,
    Grants,
    bearer,
    peer_certificate_problem,
    permits,
    required_access,
)
from pgherd.tls.certs import common_name

MAX_BODY = 1024 * 1024  # bytes: a clone request (a node's status) is a few kB


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` when a body without a length outgrows the limit; FastAPI
    passes an HTTPException through its body reader untouched."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=_too_large(limit))


def _too_large(limit: int) -> dict[str, str]:
    return {
        "error": f"the request body is larger than {limit} bytes",
        "hint": "send a smaller body: no agent request needs more",
    }


UNAUTHORIZED = {
    "error": "missing or wrong API token",
    "hint": "send a viewer, operator or node credential as Authorization: Bearer TOKEN",
}


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        grants: Callable[[], Grants],
        auth_reads: bool = False,
        max_body: int = MAX_BODY,
        clock: Callable[[], float] = time.time,
        bind_peers: bool = False,
    ) -> None:
        self.app = app
        self.bind_peers = bind_peers
        self.grants = grants
        self.auth_reads = auth_reads
        self.max_body = max_body
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        need = required_access(scope["method"], scope["path"], self.auth_reads)
        token = bearer(headers.get(b"authorization"))
        principal: Grant | None = None
        if token is not None:
            principal = self.grants().check(token, self.clock())
            scope.setdefault("state", {})["principal"] = principal  # for the audit, too
            if principal is None:
                await _answer(send, 401, UNAUTHORIZED, {"www-authenticate": "Bearer"})
                return
            if self.bind_peers:
                problem = peer_certificate_problem(principal, _certificate_name(scope))
                if problem is not None:
                    await _answer(send, 401, _unbound(problem), {"www-authenticate": "Bearer"})
                    return
        if need is not Access.OPEN:
            if principal is None:
                await _answer(send, 401, UNAUTHORIZED, {"www-authenticate": "Bearer"})
                return
            if not permits(principal.role, need):
                await _answer(send, 403, _forbidden(principal))
                return
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit() or len(length) > 12:
                await _answer(send, 400, _bad_length())
                return
            if int(length) > self.max_body:
                await _answer(send, 413, _too_large(self.max_body))
                return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, self._limited(receive), send)

    def _limited(self, receive: Receive) -> Receive:
        received = 0
        limit = self.max_body

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        return limited


def _certificate_name(scope: Scope) -> str | None:
    """The common name of the client certificate the connection presented (the ASGI TLS
    extension: api/serving.py), None without one."""
    tls = (scope.get("extensions") or {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or []
    return common_name(str(chain[0]).encode()) if chain else None


def _unbound(problem: str) -> dict[str, str]:
    return {
        "error": problem,
        "hint": "a node's token is for its own agent, which presents the node's certificate "
        "(tls.client_certs: docs/security.md)",
    }


def _forbidden(principal: Grant) -> dict[str, str]:
    return {
        "error": f"the {principal.role} credential {principal.name!r} cannot act",
        "hint": "act with an operator credential (docs/security.md: credentials)",
    }


def _bad_length() -> dict[str, str]:
    return {"error": "the Content-Length header is not a number", "hint": "send a valid one"}


async def _answer(
    send: Send, status: int, body: dict[str, str], extra: dict[str, str] | None = None
) -> None:
    payload = json.dumps(body).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"connection", b"close"),  # the body we did not read must not be taken as a request
    ]
    headers += [(k.encode(), v.encode()) for k, v in (extra or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
