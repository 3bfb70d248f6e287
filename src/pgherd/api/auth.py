"""What a route needs from its caller, declared on the route.

The :class:`~pgherd.api.guard.Guard` middleware already refused a request whose method or
path needs more than its credential gives, before the body was read. ``dependencies=
authorized()`` on an acting route says the same again where the route is written (a
second line, should a route ever act on a ``GET``) and puts the bearer scheme in the
OpenAPI document.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.params import Depends as DependsParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from pgherd.api.guard import UNAUTHORIZED
from pgherd.model.access import Access, Grant, permits

_bearer = HTTPBearer(auto_error=False, description="a viewer, operator or node credential")


def principal_of(request: Request) -> Grant | None:
    """The grant the caller proved (None for an open request without a credential)."""
    found: Grant | None = getattr(request.state, "principal", None)
    return found


def _require_act(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    principal = principal_of(request)
    if principal is None or not permits(principal.role, Access.ACT):
        raise HTTPException(401, detail=UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})


def authorized() -> list[DependsParam]:
    """``dependencies=authorized()`` on a route or router: only an operator or a peer."""
    return [Depends(_require_act)]
