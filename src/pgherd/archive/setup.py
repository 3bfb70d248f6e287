"""Creating an archive for a cluster (``pgherd archive init``, ``lab up --archive``)."""

from __future__ import annotations

from pathlib import Path

from pgherd.archive.store import Identity, WalArchive
from pgherd.config import ClusterConfig
from pgherd.errors import Refused
from pgherd.model.status import NodeStatus
from pgherd.pg import osuser


def init(config: ClusterConfig, system_identifier: str, pg_major: int, segment_size: int) -> bool:
    """Make archive.path (owned by the OS user: archive_command writes there as it) and
    stamp it with the cluster's identity. True if it was created."""
    if config.archive is None:
        raise Refused("pgherd.yaml has no archive section", "add `archive: {path: DIR}`")
    path = config.archive.path
    user = osuser.resolve(config.os_user)
    osuser.require_reachable(path.parent, user)
    user.make_dir(path)
    identity = Identity(system_identifier, pg_major, segment_size, config.cluster)
    return WalArchive.local(path).initialise(identity)


def init_from_status(config: ClusterConfig, status: NodeStatus) -> tuple[bool, Path]:
    if not status.system_identifier or not status.version_num:
        raise Refused(f"{status.name} did not report its identity", "is PostgreSQL running?")
    created = init(config, status.system_identifier, status.version_num // 10000, 16 * 1024**2)
    assert config.archive is not None
    return created, config.archive.path
