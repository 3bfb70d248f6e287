"""``pgherd connstr NODE [--replication]``: a libpq URI for psql and scripts."""

from __future__ import annotations

import sys
from pathlib import Path

from pgherd import config_cache
from pgherd.config_lite import config_path
from pgherd.pg import conninfo


def run(node: str, replication: bool, config_file: Path | None) -> int:
    config = config_cache.load(config_path(config_file))
    target = config.node(node)
    user = config.replication_user if replication else config.superuser
    sys.stdout.write(conninfo.uri(target.host, target.port, user, config.passfile) + "\n")
    return 0
