"""``pgherd restore-point create``: pg_create_restore_point on the primary, recorded in the
archive's catalog. Shared by the CLI and the console."""

from __future__ import annotations

import re

from pgherd.archive.backup import archive_of, archives_of, source_status
from pgherd.clients.archive import ArchiveAgentClient
from pgherd.config import ClusterConfig
from pgherd.errors import InvalidInput
from pgherd.model.recovery_target import RestorePoint
from pgherd.pg.archive_sql import RestorePointMade

NAME = re.compile(r"[A-Za-z0-9_.-]{1,63}")


def check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise InvalidInput(
            f"restore point name {name!r} is not allowed", "use 1-63 letters, digits, _ . -"
        )


def create(
    config: ClusterConfig, name: str, token: str, node: str | None = None
) -> tuple[str, RestorePointMade]:
    """(the node it was made on, what PostgreSQL returned); refused on a standby."""
    check_name(name)
    archive = archive_of(config)
    if any(p.name == name for p in archive.restore_points()):
        raise InvalidInput(
            f"the archive already has a restore point named {name!r}",
            "choose another name: recovery stops at the first point of a name",
        )
    target = config.node(source_status(config, node).name)
    made = ArchiveAgentClient(target, token).restore_point(name)
    point = RestorePoint(made.name, made.lsn, made.timeline, made.time)
    for each in archives_of(config):
        each.add_restore_point(point)
    return target.name, made
