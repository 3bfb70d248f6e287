"""Facts about the node's files and settings that doctor's checks read."""

from __future__ import annotations

import pwd
from pathlib import Path

from pgherd.errors import PgherdError
from pgherd.model.doctor import NodeFacts
from pgherd.pg import conf, hba
from pgherd.pg.local_node import LocalNode

CONFIG_FILES = (
    "postgresql.conf",
    "postgresql.auto.conf",
    "pg_hba.conf",
    "pg_ident.conf",
    conf.INCLUDE_FILE,
)
SETTINGS = (
    "wal_level",
    "max_wal_senders",
    "max_replication_slots",
    "hot_standby",
    "wal_log_hints",
    "password_encryption",
    "data_checksums",
    "ssl",
)


def _owner(path: Path) -> str:
    uid = path.stat().st_uid
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def gather(local: LocalNode, running: bool) -> NodeFacts:
    data_dir = local.node.data_dir
    base = {"name": local.node.name, "os_user": local.user.name, "data_dir": str(data_dir)}
    if not local.instance.exists:
        return NodeFacts(**base, data_dir_exists=False)
    foreign = tuple(
        (str(data_dir / f), _owner(data_dir / f))
        for f in CONFIG_FILES
        if (data_dir / f).exists() and _owner(data_dir / f) != local.user.name
    )
    hba_path = data_dir / "pg_hba.conf"
    trust = tuple(hba.trust_over_tcp(hba_path.read_text())) if hba_path.exists() else ()
    settings = _settings(local, running)
    checksums = settings.get("data_checksums")
    return NodeFacts(
        **base,
        data_dir_exists=True,
        data_dir_owner=_owner(data_dir),
        data_dir_mode=data_dir.stat().st_mode & 0o777,
        foreign_owned_files=foreign,
        hba_trust_tcp=trust,
        settings=settings,
        data_checksums=None if checksums is None else checksums == "on",
    )


def _settings(local: LocalNode, running: bool) -> dict[str, str]:
    if running:
        try:
            with local.instance.connect() as conn:
                rows = conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name = ANY(%s)", (list(SETTINGS),)
                ).fetchall()
            return {str(name): str(value) for name, value in rows}
        except PgherdError:
            pass
    written = conf.read_include(local.node.data_dir)
    return {k: v for k, v in written.items() if k in SETTINGS}
