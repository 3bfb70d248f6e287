"""``pgherd standby clone``: a new standby from a running upstream, with its own slot.

Runs on the new standby's machine (pg_basebackup writes locally); learns about the
upstream from its agent, never by logging in to it. Imports no pydantic: the command is
a quick one (cli/quick/clone.py), and the agents' rejoin uses it too, so it takes either
form of the config and of the upstream's status.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pgherd.config_lite import LiteConfig, Validated, as_lite
from pgherd.errors import DataDirNotEmpty, IdentityMismatch, Refused
from pgherd.model.status_lite import PgState
from pgherd.pg import basebackup, conninfo
from pgherd.pg.basebackup import Progress
from pgherd.pg.local_node import LocalNode


class _Slot(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def slot_type(self) -> str: ...

    @property
    def active(self) -> bool: ...


class UpstreamStatus(Protocol):
    """What a clone reads of its upstream's status (NodeStatus or LiteStatus)."""

    @property
    def name(self) -> str: ...

    @property
    def state(self) -> PgState: ...

    @property
    def system_identifier(self) -> str | None: ...

    @property
    def slots(self) -> Sequence[_Slot]: ...


@dataclass(frozen=True)
class CloneResult:
    node: str
    upstream: str
    bytes_copied: int
    seconds: float
    slot: str
    slot_created: bool
    system_identifier: str


def check_target(local: LocalNode, force: bool) -> None:
    """Refuse a data directory that holds something, unless ``force`` (and nothing runs)."""
    data_dir = local.node.data_dir
    if not data_dir.exists() or not any(data_dir.iterdir()):
        return
    what = "a PostgreSQL cluster" if local.instance.exists else "files"
    if not force:
        raise DataDirNotEmpty(
            f"{data_dir} is not empty (it holds {what})",
            "choose an empty directory, or pass --force to replace its contents",
        )
    pm = local.instance.postmaster()
    if pm is not None:
        raise Refused(
            f"PostgreSQL (pid {pm.pid}) is running in {data_dir}",
            f"stop it first: pgherd node stop {local.node.name}",
        )


def slot_plan(upstream: UpstreamStatus, slot: str) -> bool:
    """Whether the clone must create its slot (False: an inactive one is reused)."""
    for existing in upstream.slots:
        if existing.name == slot:
            if existing.active:
                raise Refused(
                    f"replication slot {slot!r} on {upstream.name} is in use by a connected "
                    "standby",
                    "is another copy of this node running? stop it, or choose another node name",
                )
            if existing.slot_type != "physical":
                raise Refused(
                    f"{upstream.name} has a {existing.slot_type} slot named {slot!r}",
                    "drop it, or choose another node name",
                )
            return False
    return True


def clone(
    config: Validated | LiteConfig,
    node_name: str,
    upstream_status: UpstreamStatus,
    force: bool,
    on_progress: Callable[[Progress], None],
    prefix: Sequence[str] = (),
) -> CloneResult:
    """Copy ``upstream_status``'s node into this node's data directory with its own slot.
    ``prefix``: what pg_basebackup's command line starts with (the agent's
    ``setpriv --pdeathsig``, so that a copy never outlives the agent that started it)."""
    config = as_lite(config)
    local = LocalNode.open(config, node_name)
    upstream = config.node(upstream_status.name)
    if upstream.name == local.node.name:
        raise Refused(f"{node_name} cannot be cloned from itself", "pick another --upstream")
    if upstream_status.state is not PgState.RUNNING:
        raise Refused(
            f"the upstream {upstream.name} is {upstream_status.state}",
            f"start it first: pgherd node start {upstream.name}",
        )
    check_target(local, force)
    create_slot = slot_plan(upstream_status, local.node.name)
    local.prepare_home()
    empty_directory(local.node.data_dir)
    local.user.make_dir(local.node.data_dir)

    started = time.monotonic()
    last: list[Progress] = []

    def progress(p: Progress) -> None:
        last[:] = [p]
        on_progress(p)

    source = conninfo.keyword(
        upstream.host,
        upstream.port,
        config.replication_user,
        config.passfile,
        application_name=f"pgherd_clone_{node_name}",
        sslrootcert=config.ca_file,
    )
    args = [
        *prefix,
        *basebackup.argv(local.pgbin, source, local.node.data_dir, node_name, create_slot),
    ]
    basebackup.run_basebackup(args, local.user, progress)
    seconds = time.monotonic() - started

    (local.node.data_dir / "backup_manifest").unlink(missing_ok=True)
    local.write_config(upstream=upstream)
    control = local.instance.controldata()
    if upstream_status.system_identifier and control.system_identifier != (
        upstream_status.system_identifier
    ):
        raise IdentityMismatch(
            f"the clone's system identifier {control.system_identifier} differs from "
            f"{upstream.name}'s {upstream_status.system_identifier}",
            "the upstream changed during the clone; re-clone with --force",
        )
    return CloneResult(
        node=node_name,
        upstream=upstream.name,
        bytes_copied=last[0].done_bytes if last else 0,
        seconds=seconds,
        slot=node_name,
        slot_created=create_slot,
        system_identifier=control.system_identifier,
    )


def empty_directory(directory: Path) -> None:
    """Remove what a directory holds, keep the directory (it may be a mount point)."""
    if not directory.exists():
        return
    for entry in directory.iterdir():
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
