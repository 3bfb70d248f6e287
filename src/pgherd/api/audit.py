"""The audit trail of the agent's API: every acting call, who made it, from where, and how
it ended, handed to a sink (the agent writes them to the cluster's events).

Outermost of the middlewares, so that a call the guard refused (a wrong token, a viewer
acting, an oversized body) is recorded too: those are the calls an operator most wants
to see. ``POST /events`` is not recorded: it is how records reach the event log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pgherd.model.access import READ_METHODS, Grant
from pgherd.model.events import Event, Outcome

NOT_AUDITED = {("POST", "/events")}

Sink = Callable[[Event], None]


def outcome_of(status: int) -> Outcome:
    if status < 400:
        return Outcome.SUCCEEDED
    if status < 500:
        return Outcome.REFUSED
    return Outcome.FAILED


def record(node: str, method: str, path: str, who: Grant | None, client: str, status: int) -> Event:
    """One audited call as a cluster event: ``api POST /ops/promote`` on ``node``, asked by
    ``operator (operator) from 10.0.0.9``, its outcome and status."""
    asker = f"{who.name} ({who.role})" if who is not None else "no valid credential"
    return Event(
        operation=f"api {method} {path}"[:200],
        node=node,
        requested_by=f"{asker} from {client}",
        outcome=outcome_of(status),
        reason=f"HTTP {status}",
    ).finish(outcome_of(status), f"HTTP {status}")


class Audit:
    def __init__(self, app: ASGIApp, node: str, sink: Sink) -> None:
        self.app = app
        self.node = node
        self.sink = sink

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "")
        path = scope.get("path", "")
        if scope["type"] != "http" or method in READ_METHODS or (method, path) in NOT_AUDITED:
            await self.app(scope, receive, send)
            return
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            state: dict[str, Any] = scope.get("state") or {}
            client = scope.get("client")
            where = str(client[0]) if client else "?"
            self.sink(record(self.node, method, path, state.get("principal"), where, status))
