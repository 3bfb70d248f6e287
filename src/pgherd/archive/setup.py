"""Creating an archive for a cluster (``pgherd archive init``, ``lab up --archive``)."""

from __future__ import annotations

from pathlib import Path

from pgherd.archive.repository import open_repository
from pgherd.archive.store import Identity, WalArchive
from pgherd.config import ClusterConfig
from pgherd.config_lite import LiteConfig, as_lite
from pgherd.errors import ArchiveError, Refused
from pgherd.model.status_lite import LiteStatus
from pgherd.pg import osuser


def init(
    config: ClusterConfig | LiteConfig, system_identifier: str, pg_major: int, segment_size: int
) -> bool:
    """Stamp every repository with the cluster's identity (a local one is created owned
    by the OS user: archive_command writes there as it). True if any was created;
    refused for a repository that holds another cluster's archive. Either form of the
    config (an agent's node holds the lite one)."""
    config = as_lite(config)
    if config.archive is None:
        raise Refused("pgherd.yaml has no archive section", "add `archive: {path: DIR}`")
    user = osuser.resolve(config.os_user)
    identity = Identity(system_identifier, pg_major, segment_size, config.cluster)
    created = False
    for spec in config.archive.specs():
        if spec.path is not None:
            path = Path(spec.path)
            osuser.require_reachable(path.parent, user)
            user.make_dir(path)
        try:
            repository = open_repository(spec)
        except OSError as exc:
            raise ArchiveError(
                f"repository {spec.name}: {exc.strerror or exc}", "fix archive: in pgherd.yaml"
            ) from None
        try:
            created |= WalArchive(repository.storage).initialise(identity)
        except OSError as exc:
            raise ArchiveError(
                f"repository {spec.describe()}: {exc.strerror or exc}",
                "check that it is reachable and writable",
            ) from None
    return created


def init_from_status(config: ClusterConfig | LiteConfig, status: LiteStatus) -> tuple[bool, str]:
    if not status.system_identifier or not status.version_num:
        raise Refused(f"{status.name} did not report its identity", "is PostgreSQL running?")
    created = init(config, status.system_identifier, status.version_num // 10000, 16 * 1024**2)
    assert config.archive is not None
    return created, ", ".join(s.describe() for s in config.archive.specs())
