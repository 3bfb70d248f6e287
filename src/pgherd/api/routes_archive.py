"""The agent's archive endpoints: WAL switch, restore points, replay control, archiver.

Reading (``GET /replay``, ``GET /archiver``) is open like ``/status``; acting needs an
operator's or a peer's credential.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter
from pydantic import Field

from pgherd.api.auth import authorized
from pgherd.model.status import Frozen
from pgherd.pg import archive_sql
from pgherd.pg.archive_sql import ArchiverState, ReplayState, RestorePointMade, WalSwitch
from pgherd.pg.instance import Instance


class RestorePointRequest(Frozen):
    # PostgreSQL keeps at most 63 bytes of a restore point's name (MAXFNAMELEN - 1).
    name: str = Field(min_length=1, max_length=63)


def router(instance: Callable[[], Instance]) -> APIRouter:
    api = APIRouter()
    needs_token = authorized()

    @api.get("/replay")
    def replay() -> ReplayState:
        with instance().connect() as conn:
            return archive_sql.replay_state(conn)

    @api.post("/replay/pause", dependencies=needs_token)
    def pause() -> ReplayState:
        with instance().connect() as conn:
            return archive_sql.pause_replay(conn)

    @api.post("/replay/resume", dependencies=needs_token)
    def resume() -> ReplayState:
        with instance().connect() as conn:
            return archive_sql.resume_replay(conn)

    @api.post("/wal/switch", dependencies=needs_token)
    def switch() -> WalSwitch:
        with instance().connect() as conn:
            return archive_sql.switch_wal(conn)

    @api.post("/restore-point", dependencies=needs_token)
    def restore_point(request: RestorePointRequest) -> RestorePointMade:
        with instance().connect() as conn:
            return archive_sql.create_restore_point(conn, request.name)

    @api.get("/archiver")
    def archiver() -> ArchiverState:
        with instance().connect() as conn:
            return archive_sql.archiver_state(conn)

    return api
