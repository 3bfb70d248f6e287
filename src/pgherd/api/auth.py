"""Bearer-token protection for the agent API's acting endpoints."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from fastapi.params import Depends as DependsParam


def token_checker(token: str) -> Callable[[str | None], None]:
    def require_token(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not secrets.compare_digest(given, token):
            raise HTTPException(
                status_code=401,
                detail={"error": "missing or wrong API token", "hint": "send the cluster's token"},
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token


def authorized(token: str) -> list[DependsParam]:
    """``dependencies=authorized(token)`` on a route or router makes it need the token."""
    return [Depends(token_checker(token))]
