"""Load-balancer checks and the HA loop's state, on every agent (Patroni's names).

As HAProxy's ``option httpchk`` (and Kubernetes probes, keepalived, pgbouncer setups)
expect: 200 when the node should get that kind of traffic, 503 when not; the body says
why (``model/serving.py`` decides). Open, like ``/health``, except ``POST /ha/cycle``.

- ``GET /primary`` (alias ``/read-write``): the primary that may take writes now — it holds
  the leader lease, or failsafe keeps it writable while the store is down; 503 from the
  moment it is being demoted.
- ``GET /replica[?lag=16MB]``: a running standby, not tagged ``noloadbalance``, streaming
  (or re-pointed within the last few seconds), within ``lag`` of the leader when asked.
- ``GET /read-only[?lag=]``: either of the two.
- ``GET /liveness``: the agent's loop runs; ``GET /readiness[?lag=]``: the node serves
  what its role promises.
- ``GET /cluster``: every member (role, state, timeline, lag) as this agent knows them.
- ``GET /history``: the timeline history, ``[[timeline, switch LSN in bytes, reason], …]``.
- ``GET /failsafe``, ``GET /quorum``: what failsafe and the synchronous quorum see now.
- ``GET /ha``: the HA loop's mode, leader, lease, last decision (docs/failover.md).
- ``POST /ha/cycle`` (acting: an operator's or a peer's credential): run an HA cycle now
  (an operation just moved the lease).
"""

from __future__ import annotations

from typing import Any, Protocol

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from pgherd.api.auth import authorized
from pgherd.errors import InvalidInput
from pgherd.model import serving as decide
from pgherd.model.ha_report import HaReport
from pgherd.model.serving import Answer, Serving
from pgherd.model.size import parse_size


class HaPort(Protocol):
    def serving(self) -> Serving: ...

    def ha_state(self) -> HaReport: ...

    def members(self) -> dict[str, Any]: ...

    def timeline_history(self) -> list[list[Any]]: ...

    def failsafe_state(self) -> tuple[bool, dict[str, Any]]: ...

    def quorum_state(self) -> tuple[bool, dict[str, Any]]: ...

    def cycle_now(self) -> None: ...


def _answer(found: Answer, serving: Serving) -> JSONResponse:
    body = {
        "state": str(serving.pg),
        "role": str(serving.role),
        "ok": found.ok,
        "reason": found.reason,
        **serving.detail,
    }
    if serving.lag_bytes is not None:
        body["lag"] = serving.lag_bytes
    return JSONResponse(body, status_code=200 if found.ok else 503)


def _lag(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return parse_size(text, "lag")
    except InvalidInput as exc:
        raise _BadLag(exc.one_line()) from None


class _BadLag(Exception):
    pass


LagQuery = Query(
    default=None, description="the most a standby may trail the leader: 16MB, 1GB, bytes"
)


def router(ha: HaPort) -> APIRouter:
    api = APIRouter(tags=["ha"])

    def checked(lag: str | None, answer: Any) -> JSONResponse:
        try:
            limit = _lag(lag)
        except _BadLag as exc:
            # the one error shape (api/errors.py): the check's URL is wrong, not the node
            return JSONResponse(
                {"error": str(exc), "hint": "fix the check's URL (docs/haproxy.md)"},
                status_code=400,
            )
        serving = ha.serving()
        return _answer(answer(serving, limit), serving)

    @api.get("/primary")
    @api.get("/read-write")
    def primary() -> JSONResponse:
        serving = ha.serving()
        return _answer(decide.primary(serving), serving)

    @api.get("/replica")
    def replica(lag: str | None = LagQuery) -> JSONResponse:
        return checked(lag, decide.replica)

    @api.get("/read-only")
    def read_only(lag: str | None = LagQuery) -> JSONResponse:
        return checked(lag, decide.read_only)

    @api.get("/liveness")
    def liveness() -> JSONResponse:
        serving = ha.serving()
        return _answer(decide.liveness(serving), serving)

    @api.get("/readiness")
    def readiness(lag: str | None = LagQuery) -> JSONResponse:
        return checked(lag, decide.readiness)

    @api.get("/cluster")
    def cluster() -> dict[str, Any]:
        return ha.members()

    @api.get("/history")
    def history() -> list[list[Any]]:
        return ha.timeline_history()

    @api.get("/failsafe")
    def failsafe() -> JSONResponse:
        ok, body = ha.failsafe_state()
        return JSONResponse(body, status_code=200 if ok else 503)

    @api.get("/quorum")
    def quorum() -> JSONResponse:
        ok, body = ha.quorum_state()
        return JSONResponse(body, status_code=200 if ok else 503)

    @api.get("/ha")
    def state() -> HaReport:
        return ha.ha_state()

    @api.post("/ha/cycle", dependencies=authorized())
    def cycle() -> HaReport:
        """Wake the HA loop (it cycles at once); the answer is the state before that cycle."""
        ha.cycle_now()
        return ha.ha_state()

    return api
