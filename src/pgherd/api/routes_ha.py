"""Load-balancer checks and the HA loop's state, on every agent.

As HAProxy's ``option httpchk`` (and other proxies) expect: 200 when the node should get
that kind of traffic, 503 when not; the body says why. Open, like ``/health``.

- ``GET /primary``: PostgreSQL runs as the primary and (under automatic failover) this
  agent holds the leader lease now. A primary whose lease may have lapsed gets no writes.
- ``GET /replica``: PostgreSQL runs as a standby that streams from its upstream.
- ``GET /read-only``: either of the two: the node answers reads.
- ``GET /ha``: the HA loop's mode, leader, lease, last decision (docs/failover.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from pgherd.model.ha_report import HaReport
from pgherd.model.status import PgState, Role


@dataclass(frozen=True)
class Serving:
    """What the load-balancer checks need to know about the node right now."""

    pg: PgState
    role: Role
    leader_lease: bool  # holds the lease (automatic), or runs as the primary (manual)
    streaming: bool
    detail: dict[str, Any]


class HaPort(Protocol):
    def serving(self) -> Serving: ...

    def ha_state(self) -> HaReport: ...


def _answer(ok: bool, serving: Serving, why: str) -> JSONResponse:
    body = {
        "state": str(serving.pg),
        "role": str(serving.role),
        "ok": ok,
        "reason": why,
        **serving.detail,
    }
    return JSONResponse(body, status_code=200 if ok else 503)


def is_primary(serving: Serving) -> tuple[bool, str]:
    if serving.pg is not PgState.RUNNING:
        return False, f"PostgreSQL is {serving.pg}"
    if serving.role is not Role.PRIMARY:
        return False, f"it runs as a {serving.role}"
    if not serving.leader_lease:
        return False, "it runs as a primary without the leader lease"
    return True, "the primary, holding the leader lease"


def is_replica(serving: Serving) -> tuple[bool, str]:
    if serving.pg is not PgState.RUNNING:
        return False, f"PostgreSQL is {serving.pg}"
    if serving.role is not Role.STANDBY:
        return False, f"it runs as a {serving.role}"
    if not serving.streaming:
        return False, "a standby that does not stream from its upstream"
    return True, "a streaming standby"


def router(ha: HaPort) -> APIRouter:
    api = APIRouter()

    @api.get("/primary")
    def primary() -> JSONResponse:
        serving = ha.serving()
        ok, why = is_primary(serving)
        return _answer(ok, serving, why)

    @api.get("/replica")
    def replica() -> JSONResponse:
        serving = ha.serving()
        ok, why = is_replica(serving)
        return _answer(ok, serving, why)

    @api.get("/read-only")
    def read_only() -> JSONResponse:
        serving = ha.serving()
        ok, why = is_primary(serving)
        if not ok:
            ok, why = is_replica(serving)
            if not ok and serving.pg is PgState.RUNNING and serving.role is Role.STANDBY:
                ok, why = True, "a standby (not streaming: reads may be stale)"
        return _answer(ok, serving, why)

    @api.get("/ha")
    def state() -> HaReport:
        return ha.ha_state()

    return api
