"""Replication slots' state files (``pg_replslot/NAME/state``): read on a primary, written
into a stopped standby's data directory. A logical slot's state (its position, catalog
horizon, plugin and database) is all PostgreSQL needs to load it at start, which is how a
standby before PostgreSQL 16 gets a logical slot (model/failover_slots.py)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping
from pathlib import Path

from pgherd.errors import InvalidInput, Refused
from pgherd.pg.instance import STANDBY_SIGNAL
from pgherd.pg.osuser import OsUser

_NAME = re.compile(r"^[a-z0-9_]{1,63}$")


def _slot_dir(data_dir: Path, name: str) -> Path:
    if not _NAME.match(name):
        raise InvalidInput(f"{name!r} is not a slot name", "slot names are a-z, 0-9 and _")
    return data_dir / "pg_replslot" / name


def read_state(data_dir: Path, name: str) -> bytes:
    """The state file of slot ``name`` (the server writes it at each checkpoint and when
    the slot changes; a copy holds a position at or before the live one)."""
    path = _slot_dir(data_dir, name) / "state"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise Refused(f"no slot {name} here", "list the slots in pg_replication_slots") from None


def install_states(data_dir: Path, user: OsUser, states: Mapping[str, bytes]) -> None:
    """Write each slot's state into a STOPPED server's data directory, replacing a slot of
    that name: each in a temporary directory first, fsynced, then renamed into place (the
    server loads only complete slot directories)."""
    if not (data_dir / STANDBY_SIGNAL).exists():
        # The node was promoted between the decision and the stop: its own slots are the
        # live ones now, which a copy from the old primary must not replace.
        raise Refused(
            f"{data_dir} is no longer a standby's: the slot copies were not installed",
            "nothing to do: the slots of a primary are its own",
        )
    root = data_dir / "pg_replslot"
    for name, data in states.items():
        final = _slot_dir(data_dir, name)
        staging = root / f"{name}.tmp"
        if staging.exists():
            shutil.rmtree(staging)
        user.make_dir(staging)
        fd = os.open(staging / "state", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        user.chown(staging / "state")
        _fsync_dir(staging)
        if final.exists():
            shutil.rmtree(final)
        os.rename(staging, final)
    _fsync_dir(root)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
