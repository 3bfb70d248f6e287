"""pg_rewind on this (stopped) node from a running source, usually the new primary."""

from __future__ import annotations

import time

from pgherd.config_lite import DataNode
from pgherd.errors import CommandFailed, Refused, last_lines
from pgherd.model.node_ops import RewindResult
from pgherd.pg import conninfo
from pgherd.pg import rewind as pg_rewind
from pgherd.pg.local_node import LocalNode
from pgherd.pg.run import run


def source_conninfo(local: LocalNode, source: DataNode) -> str:
    """How pg_rewind on this node connects to ``source``: as the superuser, JIT off."""
    return conninfo.keyword(
        source.host,
        source.port,
        local.config.superuser,
        local.config.passfile,
        dbname="postgres",
        application_name=f"pgherd_rewind_{local.node.name}",
        options=pg_rewind.SOURCE_SESSION_OPTIONS,
        sslrootcert=local.config.ca_file,
    )


def rewind(local: LocalNode, source: DataNode, timeout: float = 3600) -> RewindResult:
    name = local.node.name
    if local.instance.is_running:
        raise Refused(
            f"PostgreSQL runs on {name}; pg_rewind needs it stopped",
            f"stop it first: pgherd node stop {name}",
        )
    if not local.pgbin["pg_rewind"].is_file():
        raise Refused(
            f"pg_rewind is not installed in {local.pgbin.bindir}",
            "install PostgreSQL's client programs, or rejoin with --force-clone",
        )
    archived = local.config.archive is not None
    argv = pg_rewind.argv(
        local.pgbin, local.node.data_dir, source_conninfo(local, source), archived
    )
    started = time.monotonic()
    done = run(argv, local.user, timeout=timeout, check=False)
    seconds = time.monotonic() - started
    output = f"{done.stdout}\n{done.stderr}"
    if done.returncode != 0:
        hint = (
            "the WAL it needs is gone (wal_keep_size too small); rejoin with --force-clone"
            if pg_rewind.missing_wal(output)
            else "see the message; pgherd node rejoin --force-clone copies the node anew"
        )
        raise CommandFailed("pg_rewind", done.returncode, output, hint)
    parsed = pg_rewind.parse_output(output)
    return RewindResult(
        name=name,
        source=source.name,
        rewound=parsed.rewound,
        diverged_at=parsed.diverged_at,
        diverged_timeline=parsed.diverged_timeline,
        copied_mb=parsed.copied_mb,
        source_mb=parsed.source_mb,
        seconds=round(seconds, 4),
        output=last_lines(output, 4),
    )
