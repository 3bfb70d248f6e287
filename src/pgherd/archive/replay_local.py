"""Replay control of a restore in progress: a server ``pgherd restore`` started in a
directory on this machine (not a configured node), reached over its own socket."""

from __future__ import annotations

from pathlib import Path

from pgherd import config as config_mod
from pgherd.errors import Refused
from pgherd.pg import archive_sql, binaries, osuser, process
from pgherd.pg.archive_sql import ReplayState
from pgherd.pg.instance import Instance


def act(into: Path, verb: str, config_file: Path | None) -> ReplayState:
    into = into.absolute()
    if not into.is_dir():
        raise Refused(f"{into} is not a directory", "give the --into directory of a restore")
    pm = process.running_postmaster(into)
    if pm is None or pm.port is None:
        raise Refused(f"no PostgreSQL runs in {into}", "is this the --into of a restore?")
    os_user, superuser = "postgres", "postgres"
    path = config_mod.config_path(config_file)
    if path.exists():
        config = config_mod.load(path)
        os_user, superuser = config.os_user, config.superuser
    instance = Instance(
        data_dir=into,
        pgbin=binaries.find(None),
        user=osuser.resolve(os_user),
        port=pm.port,
        socket_dir=Path(pm.socket_dir or into),
        log_file=into / "pgherd-restore.log",
        superuser=superuser,
    )
    with instance.connect() as conn:
        if verb == "pause":
            return archive_sql.pause_replay(conn)
        if verb == "resume":
            return archive_sql.resume_replay(conn)
        return archive_sql.replay_state(conn)
