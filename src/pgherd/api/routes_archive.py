"""The agent's archive endpoints: WAL switch, restore points, replay control, archiver,
the WAL pusher's figures and backups of this node.

Reading (``GET /replay``, ``GET /archiver``, ``GET /archive/pusher``) is open like
``/status``; acting needs an operator's or a peer's credential. ``POST /backup`` takes a
bundled backup of this node, where its data directory is (a CLI on another machine, the
leader's schedule with ``from_standby``), and answers when it is done, with its catalog
entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, Protocol

from fastapi import APIRouter
from pydantic import Field

from pgherd.api.auth import authorized
from pgherd.errors import Refused
from pgherd.model.archive_api import BackupMade, PusherState
from pgherd.model.status import Frozen
from pgherd.pg import archive_sql
from pgherd.pg.archive_sql import ArchiverState, ReplayState, RestorePointMade, WalSwitch
from pgherd.pg.instance import Instance


class RestorePointRequest(Frozen):
    # PostgreSQL keeps at most 63 bytes of a restore point's name (MAXFNAMELEN - 1).
    name: str = Field(min_length=1, max_length=63)


class BackupRequest(Frozen):
    type: Literal["full", "differential", "incremental"] = "full"
    repository: str | None = Field(default=None, min_length=1, max_length=63)
    checksum: bool = False  # read and hash every file (trust no size and time)


class ArchivePort(Protocol):
    """What the archive endpoints need from the agent beside its PostgreSQL."""

    def take_backup(
        self, kind: str, repository: str | None, checksum: bool = False
    ) -> BackupMade: ...

    def pusher_status(self) -> PusherState: ...


def router(instance: Callable[[], Instance], archive: ArchivePort | None = None) -> APIRouter:
    api = APIRouter()
    needs_token = authorized()

    @api.post("/backup", dependencies=needs_token)
    def backup(request: BackupRequest) -> BackupMade:
        if archive is None:
            raise Refused("this agent takes no backups", "ask the node's own agent (pgherd agent)")
        return archive.take_backup(request.type, request.repository, request.checksum)

    @api.get("/archive/pusher")
    def pusher() -> PusherState:
        return archive.pusher_status() if archive is not None else PusherState(running=False)

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
